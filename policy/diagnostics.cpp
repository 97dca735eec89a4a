// SPDX-License-Identifier: BSD-2-Clause
#include "policy/diagnostics.h"

#include <algorithm>
#include <cstdio>
#include <iterator>

#include "policy/facts.h"  // ascii_lower

namespace pm {

std::string SourceLocation::to_string() const {
    std::string out = file ? *file : std::string("<input>");
    if (line > 0) {
        out += ':' + std::to_string(line);
        if (column > 0) out += ':' + std::to_string(column);
    }
    return out;
}

std::string Diagnostic::to_string() const {
    return where.to_string() + (severity == Severity::Error ? ": error: " : ": warning: ") +
           message;
}

void Diagnostics::error(const SourceLocation& where, std::string message) {
    items_.push_back({Severity::Error, where, visible_text(message)});
    ++errors_;
}

void Diagnostics::warning(const SourceLocation& where, std::string message) {
    items_.push_back({Severity::Warning, where, visible_text(message)});
}

void Diagnostics::file_error(const std::string& file, std::string message) {
    error(SourceLocation{std::make_shared<const std::string>(file), 0, 0}, std::move(message));
}

void Diagnostics::file_warning(const std::string& file, std::string message) {
    warning(SourceLocation{std::make_shared<const std::string>(file), 0, 0}, std::move(message));
}

std::ostream& operator<<(std::ostream& out, const Diagnostic& d) {
    return out << d.to_string();
}

namespace {

// Characters shown by code point: those that look like a space or like nothing at all,
// and the direction marks that make text read other than it is stored.
struct CodePointRange {
    long first, last;
};
constexpr CodePointRange kInvisible[] = {
    {0x7F, 0xA0},        // DEL, C1 controls, no-break space
    {0xAD, 0xAD},        // soft hyphen
    {0x034F, 0x034F},    // combining grapheme joiner
    {0x061C, 0x061C},    // Arabic letter mark
    {0x115F, 0x1160},    // Hangul fillers
    {0x1680, 0x1680},    // Ogham space mark
    {0x180E, 0x180E},    // Mongolian vowel separator
    {0x2000, 0x200F},    // spaces, zero widths, direction marks
    {0x2028, 0x202F},    // line and paragraph separators, embeddings, narrow no-break space
    {0x205F, 0x206F},    // medium mathematical space, word joiner, invisible operators
    {0x3000, 0x3000},    // ideographic space
    {0x3164, 0x3164},    // Hangul filler
    {0xFE00, 0xFE0F},    // variation selectors
    {0xFEFF, 0xFEFF},    // byte-order mark
    {0xFFA0, 0xFFA0},    // halfwidth Hangul filler
    {0xFFF0, 0xFFFB},    // specials, interlinear annotation
    {0xE0000, 0xE0FFF},  // tags, variation selectors supplement
};

bool is_invisible(long cp) {
    if (cp < 0x20) return true;  // C0 controls
    return std::any_of(std::begin(kInvisible), std::end(kInvisible),
                       [cp](const CodePointRange& r) { return cp >= r.first && cp <= r.last; });
}

std::string u_plus(long cp) {
    char buf[sizeof "U+" + 2 * sizeof(unsigned long)];  // every hex digit, and the NUL
    std::snprintf(buf, sizeof buf, "U+%04lX", static_cast<unsigned long>(cp));
    return buf;
}

// Edit distance counting a swap of two neighbours as one edit (optimal string alignment).
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t change = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + change});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.size()][b.size()];
}

}  // namespace

std::pair<long, std::size_t> decode_utf8(std::string_view text) {
    if (text.empty()) return {-1, 1};
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    unsigned char b0 = byte(0);
    if (b0 < 0x80) return {b0, 1};
    std::size_t n = b0 >= 0xF0 && b0 <= 0xF4 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC2 && b0 < 0xE0 ? 2 : 0;
    if (n == 0 || (b0 >= 0xF5) || text.size() < n) return {-1, 1};
    long cp = b0 & (0x7F >> n);
    for (std::size_t i = 1; i < n; ++i) {
        if ((byte(i) & 0xC0) != 0x80) return {-1, 1};
        cp = (cp << 6) | (byte(i) & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return {-1, 1};
    return {cp, n};
}

std::string code_point_name(long cp) {
    std::string out = u_plus(cp);
    const char* name = nullptr;
    switch (cp) {
        case 0x09: name = "tab"; break;
        case 0x0D: name = "carriage return"; break;
        case 0xA0: name = "no-break space"; break;
        case 0xAD: name = "soft hyphen"; break;
        case 0x200B: name = "zero width space"; break;
        case 0x200C: name = "zero width non-joiner"; break;
        case 0x200D: name = "zero width joiner"; break;
        case 0x2028: name = "line separator"; break;
        case 0x2029: name = "paragraph separator"; break;
        case 0x202F: name = "narrow no-break space"; break;
        case 0x2060: name = "word joiner"; break;
        case 0x3000: name = "ideographic space"; break;
        case 0xFEFF: name = "byte-order mark"; break;
        default: break;
    }
    if (name) out += std::string(" (") + name + ")";
    return out;
}

std::string visible_text(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7F) {  // the common case, at the cost of one compare
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        auto [cp, n] = decode_utf8(text.substr(i));
        if (cp < 0) {
            char buf[sizeof "<0xFF>"];
            std::snprintf(buf, sizeof buf, "<0x%02X>", static_cast<unsigned char>(text[i]));
            out += buf;
        } else if (is_invisible(cp)) {
            out += '<' + u_plus(cp) + '>';
        } else {
            out.append(text.substr(i, n));
        }
        i += n;
    }
    return out;
}

std::string closest_match(std::string_view word_as_written,
                          const std::vector<std::string_view>& candidates) {
    // An invisible character (a no-break space, a byte-order mark) is the mistake itself:
    // without it the word may be exactly right.
    std::string seen;
    for (std::size_t i = 0; i < word_as_written.size();) {
        auto [cp, n] = decode_utf8(word_as_written.substr(i));
        if (cp < 0 || !is_invisible(cp)) seen.append(word_as_written.substr(i, n));
        i += n;
    }
    std::string_view word = seen;
    // Same but for case, or for '_', '-' and '.' among themselves (client_ip,
    // soft_bounce): surely meant.
    auto fold = [](std::string_view s) {
        std::string out = ascii_lower(s);
        for (char& ch : out)
            if (ch == '_' || ch == '-') ch = '.';
        return out;
    };
    std::string folded = fold(word);
    for (auto c : candidates)
        if (fold(c) == folded) return std::string(c);
    std::string best;
    std::size_t best_distance = 3;
    // Very short words are two edits from many things: suggest only one edit away.
    if (word.size() <= 3) best_distance = 2;
    std::string lower = ascii_lower(word);
    for (auto c : candidates) {
        // More than two letters longer or shorter is more than two edits: skip the
        // table, whose size would grow with a hostile word's length.
        if (lower.size() > c.size() + 2 || c.size() > lower.size() + 2) continue;
        std::size_t distance = edit_distance(lower, c);
        if (distance < best_distance) {
            best = std::string(c);
            best_distance = distance;
        }
    }
    return best;
}

}  // namespace pm
