// SPDX-License-Identifier: BSD-2-Clause
#include "milter/control_protocol.h"

#include "config/log_escape.h"

namespace pm {

std::optional<std::string> encode_control_request(const std::vector<std::string>& words,
                                                  std::string& why) {
    if (words.empty()) {
        why = "no command";
        return std::nullopt;
    }
    if (words.size() > kMaxArguments) {
        why = "more than " + std::to_string(kMaxArguments) + " arguments";
        return std::nullopt;
    }
    std::string out(kControlMagic);
    out += '\0';
    for (const auto& w : words) {
        if (w.find('\0') != std::string::npos) {
            why = "an argument cannot hold a NUL byte";
            return std::nullopt;
        }
        out += w;
        out += '\0';
    }
    if (out.size() > kMaxRequestBytes) {
        why = "the request is over " + std::to_string(kMaxRequestBytes) + " bytes";
        return std::nullopt;
    }
    return out;
}

std::optional<std::vector<std::string>> parse_control_request(std::string_view bytes,
                                                              std::string& why) {
    if (bytes.size() > kMaxRequestBytes) {
        why = "request over " + std::to_string(kMaxRequestBytes) + " bytes";
        return std::nullopt;
    }
    std::vector<std::string> words;
    bool magic = false;
    while (!bytes.empty()) {
        auto nul = bytes.find('\0');
        if (nul == std::string_view::npos) {
            why = "request not ended by a NUL byte";
            return std::nullopt;
        }
        std::string_view word = bytes.substr(0, nul);
        bytes.remove_prefix(nul + 1);
        if (!magic) {
            if (word != kControlMagic) break;
            magic = true;
            continue;
        }
        if (words.size() == kMaxArguments) {
            why = "more than " + std::to_string(kMaxArguments) + " words";
            return std::nullopt;
        }
        words.emplace_back(word);
    }
    if (!magic) {
        why = "not a policy-milter control request";
        return std::nullopt;
    }
    if (words.empty() || words[0].empty()) {
        why = "no command";
        return std::nullopt;
    }
    return words;
}

std::string encode_control_reply(const ControlReply& reply) {
    std::string out = reply.ok ? "ok\n" : "error\n";
    for (const auto& line : reply.lines) {
        append_escaped_log_line(out, line);
        out += '\n';
    }
    return out;
}

std::optional<ControlReply> parse_control_reply(std::string_view bytes) {
    ControlReply reply;
    if (bytes.starts_with("ok\n"))
        reply.ok = true;
    else if (!bytes.starts_with("error\n"))
        return std::nullopt;
    bytes.remove_prefix(reply.ok ? 3 : 6);
    if (!bytes.empty() && bytes.back() != '\n') return std::nullopt;  // cut short
    while (!bytes.empty()) {
        auto lf = bytes.find('\n');
        reply.lines.emplace_back(bytes.substr(0, lf));
        bytes.remove_prefix(lf + 1);
    }
    return reply;
}

}  // namespace pm
