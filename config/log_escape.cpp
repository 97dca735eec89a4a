// SPDX-License-Identifier: BSD-2-Clause
#include "config/log_escape.h"

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

}  // namespace

void append_log_value(std::string& out, std::string_view value, bool quoted) {
    append_escaping(
        out, value,
        [quoted](unsigned char c) { return needs_hex(c) || c == '\\' || (quoted && c == '"'); },
        [&out](unsigned char c) {
            if (needs_hex(c)) return append_hex(out, c);
            out += '\\';
            out += static_cast<char>(c);
        });
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
