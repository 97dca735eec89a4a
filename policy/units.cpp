// SPDX-License-Identifier: BSD-2-Clause
#include "policy/units.h"

#include <cctype>
#include <charconv>

namespace pm {

bool parse_size(std::string_view text, std::uint64_t& out) {
    std::uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || ptr == text.data()) return false;
    std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
    std::uint64_t mult = 1;
    if (unit.empty())
        mult = 1;
    else if (unit == "K" || unit == "KB")
        mult = 1ull << 10;
    else if (unit == "M" || unit == "MB")
        mult = 1ull << 20;
    else if (unit == "G" || unit == "GB")
        mult = 1ull << 30;
    else
        return false;
    if (n > UINT64_MAX / mult) return false;
    out = n * mult;
    return true;
}

bool parse_duration(std::string_view text, std::uint64_t& seconds) {
    std::uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || ptr == text.data() || ptr + 1 != text.data() + text.size())
        return false;
    std::uint64_t mult = 0;
    switch (*ptr) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        default: return false;
    }
    if (n == 0 || n > UINT64_MAX / mult) return false;
    seconds = n * mult;
    return true;
}

namespace {
bool starts_with_digit(std::string_view t) {
    return !t.empty() && t[0] >= '0' && t[0] <= '9';
}
std::string with_case(std::string_view text, bool upper) {
    std::string out(text);
    for (char& c : out)
        c = upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
                  : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}
}  // namespace

std::string size_problem(std::string_view text) {
    std::uint64_t n = 0;
    if (!starts_with_digit(text)) return {};
    if (std::string upper = with_case(text, true); parse_size(upper, n))
        return "units are upper case: " + upper;
    if (text.find_first_of(".,") != std::string_view::npos)
        return "sizes are whole numbers: write 1536K, not 1.5M";
    auto unit_at = text.find_first_not_of("0123456789");
    if (unit_at != std::string_view::npos)
        return "unit '" + std::string(text.substr(unit_at)) +
               "' is not one of K, KB, M, MB, G, GB (powers of 1024)";
    return "the number is too large";
}

std::string duration_problem(std::string_view text) {
    std::uint64_t n = 0;
    if (!starts_with_digit(text)) return {};
    if (std::string lower = with_case(text, false); lower != text && parse_duration(lower, n))
        return "units are lower case: " + lower;
    auto unit_at = text.find_first_not_of("0123456789");
    if (unit_at == std::string_view::npos) return "a duration needs a unit: s, m, h or d";
    if (text.find_first_not_of('0') == unit_at) return "a duration is more than zero";
    return "unit '" + std::string(text.substr(unit_at)) + "' is not s, m, h or d";
}

}  // namespace pm
