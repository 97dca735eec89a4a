// SPDX-License-Identifier: BSD-2-Clause
#include "policy/decision.h"

#include <algorithm>

namespace pm {

namespace {

// Control characters become spaces and non-ASCII bytes '?', up to `max_octets`.
std::string printable_ascii(std::string_view text, std::size_t max_octets) {
    std::string out;
    out.reserve(std::min(text.size(), max_octets));
    for (char ch : text) {
        if (out.size() == max_octets) break;
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7F)
            out += ' ';
        else if (c >= 0x80)
            out += '?';
        else
            out += ch;
    }
    return out;
}

}  // namespace

std::string sanitize_reply_text(std::string_view text, std::size_t prefix_length) {
    return printable_ascii(text, kMaxReplyLine - 2 - prefix_length);  // 2: the CRLF
}

std::string sanitize_text(std::string_view text, std::size_t max_octets) {
    return printable_ascii(text, max_octets);
}

std::string Reply::line() const {
    return std::to_string(code) + ' ' + enhanced.to_string() + ' ' + text;
}

std::string_view verdict_name(Verdict v) {
    return v == Verdict::Continue ? "continue" : action_name(static_cast<ActionKind>(v));
}

std::string_view action_name(ActionKind kind) {
    switch (kind) {
        case ActionKind::Pass: return "pass";
        case ActionKind::Accept: return "accept";
        case ActionKind::Reject: return "reject";
        case ActionKind::Tempfail: return "tempfail";
        case ActionKind::Discard: return "discard";
        case ActionKind::Quarantine: return "quarantine";
        case ActionKind::AddHeader: return "add-header";
        case ActionKind::Greylist: return "greylist";
    }
    return "pass";
}

bool action_is_terminal(ActionKind kind) {
    return kind != ActionKind::AddHeader && kind != ActionKind::Greylist;
}

std::string_view limit_unit_name(LimitUnit unit) {
    switch (unit) {
        case LimitUnit::Messages: return "messages";
        case LimitUnit::Recipients: return "recipients";
        case LimitUnit::Bytes: return "bytes";
    }
    return "messages";
}

}  // namespace pm
