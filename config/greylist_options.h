// SPDX-License-Identifier: BSD-2-Clause
// The greylist settings of the config file (policy-milter.conf(5)): state-dir and the
// greylist-* keys. Each value_problem-style check returns an error message or empty.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pm {

inline constexpr const char* kDefaultStateDir = "/var/lib/policy-milter";

// A number from `min` to `max`, decimal.
std::optional<std::uint64_t> parse_bounded(const std::string& text, std::uint64_t min,
                                           std::uint64_t max);
// greylist-ipv4-prefix (8..32), greylist-ipv6-prefix (16..128),
// greylist-auto-whitelist (0..1000000), greylist-max-entries (1..100000000),
// greylist-save-interval (a duration; 0: only at stop), state-dir (an absolute path).
std::string greylist_value_problem(const std::string& key, const std::string& value);
inline constexpr const char* kGreylistKeys[] = {"state-dir",
                                                "greylist-ipv4-prefix",
                                                "greylist-ipv6-prefix",
                                                "greylist-auto-whitelist",
                                                "greylist-max-entries",
                                                "greylist-save-interval"};

}  // namespace pm
