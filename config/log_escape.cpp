// SPDX-License-Identifier: BSD-2-Clause
#include "config/log_escape.h"

#include <optional>
#include <string>
#include <string_view>

namespace pm {

namespace {

bool needs_hex(unsigned char c) {
    return c < 0x20 || c >= 0x7F;
}

void append_hex(std::string& out, unsigned char c) {
    static constexpr char kDigits[] = "0123456789abcdef";
    out += "\\x";
    out += kDigits[c >> 4];
    out += kDigits[c & 0xF];
}

// Appends `text`, each byte for which `special` holds replaced by `escape`; runs of
// ordinary bytes (nearly all of them) are appended at once.
template <class Special, class Escape>
void append_escaping(std::string& out, std::string_view text, Special special, Escape escape) {
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (!special(c)) continue;
        out.append(text.data() + start, i - start);
        escape(c);
        start = i + 1;
    }
    out.append(text.data() + start, text.size() - start);
}

// The bytes a bare token may not hold as they are: each would end the token or its
// brackets, or open a quoted value (a forged key needs one of them).
bool token_special(unsigned char c) {
    switch (c) {
        case ' ':
        case '<':
        case '>':
        case '[':
        case ']':
        case '"':
        case '\\': return true;
        default: return needs_hex(c);
    }
}

}  // namespace

void append_log_value(std::string& out, std::string_view value, LogValue kind) {
    if (kind == LogValue::Token)
        return append_escaping(out, value, token_special,
                               [&out](unsigned char c) { append_hex(out, c); });
    append_escaping(
        out, value, [](unsigned char c) { return needs_hex(c) || c == '\\' || c == '"'; },
        [&out](unsigned char c) {
            if (needs_hex(c)) return append_hex(out, c);
            out += '\\';
            out += static_cast<char>(c);
        });
}

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // append_hex writes lower case only
}

}  // namespace

std::optional<std::string> unescape_log_value(std::string_view text, LogValue kind) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c != '\\') {
            bool reserved = kind == LogValue::Token ? token_special(c) : needs_hex(c) || c == '"';
            if (reserved) return std::nullopt;
            out += static_cast<char>(c);
            continue;
        }
        if (i + 1 >= text.size()) return std::nullopt;
        char next = text[i + 1];
        if (kind == LogValue::Quoted && (next == '\\' || next == '"')) {
            out += next;
            ++i;
            continue;
        }
        if (next != 'x' || i + 3 >= text.size()) return std::nullopt;
        int hi = hex_digit(text[i + 2]), lo = hex_digit(text[i + 3]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi << 4 | lo);
        i += 3;
    }
    return out;
}

void append_escaped_log_line(std::string& out, std::string_view line) {
    append_escaping(out, line, needs_hex, [&out](unsigned char c) { append_hex(out, c); });
}

std::string escape_log_line(std::string_view line) {
    std::string out;
    out.reserve(line.size());
    append_escaped_log_line(out, line);
    return out;
}

}  // namespace pm
