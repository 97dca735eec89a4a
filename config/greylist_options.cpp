// SPDX-License-Identifier: BSD-2-Clause
#include "config/greylist_options.h"

#include "policy/units.h"

namespace pm {

std::optional<std::uint64_t> parse_bounded(const std::string& text, std::uint64_t min,
                                           std::uint64_t max) {
    if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != text.npos)
        return std::nullopt;
    std::uint64_t n = std::stoull(text);
    if (n < min || n > max) return std::nullopt;
    return n;
}

std::string greylist_value_problem(const std::string& key, const std::string& value) {
    auto range = [&](std::uint64_t min, std::uint64_t max) -> std::string {
        if (parse_bounded(value, min, max)) return {};
        return key + " '" + value + "' is not a number from " + std::to_string(min) + " to " +
               std::to_string(max);
    };
    if (key == "greylist-ipv4-prefix") return range(8, 32);
    if (key == "greylist-ipv6-prefix") return range(16, 128);
    if (key == "greylist-auto-whitelist") return range(0, 1'000'000);
    if (key == "greylist-max-entries") return range(1, 100'000'000);
    if (key == "greylist-save-interval") {
        std::uint64_t s = 0;
        if (value == "0" || parse_duration(value, s)) return {};
        return key + " '" + value + "' is not a duration such as 30s, 5m or 1h, or 0";
    }
    if (key == "state-dir" && (value.empty() || value[0] != '/'))
        return "state-dir '" + value + "' is not an absolute path";
    return {};
}

}  // namespace pm
