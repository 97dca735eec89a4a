// SPDX-License-Identifier: BSD-2-Clause
// ESMTP MAIL FROM parameters the policy reads (RFC 1870 SIZE). Pure parsing: the milter
// adapter hands in what the MTA passed; nothing here knows libmilter.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pm {

// The value of one "SIZE=N" parameter (the part after '='): RFC 1870 allows only digits,
// so 1 to 20 ASCII digits are accepted and anything else ("-1", "+5", " 5", "5 ", "",
// 21 digits) is nullopt: the caller treats it as absent. 20 digits above 2^64-1 saturate
// at 2^64-1, which no bytes limit lets through.
std::optional<std::uint64_t> parse_esmtp_size(std::string_view value);

}  // namespace pm
