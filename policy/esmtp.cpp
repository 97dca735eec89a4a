// SPDX-License-Identifier: BSD-2-Clause
#include "policy/esmtp.h"

#include <limits>

namespace pm {

std::optional<std::uint64_t> parse_esmtp_size(std::string_view value) {
    if (value.empty() || value.size() > 20) return std::nullopt;
    constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t n = 0;
    for (char c : value) {
        if (c < '0' || c > '9') return std::nullopt;
        auto digit = static_cast<std::uint64_t>(c - '0');
        n = n > (kMax - digit) / 10 ? kMax : n * 10 + digit;
    }
    return n;
}

}  // namespace pm
