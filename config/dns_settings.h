// SPDX-License-Identifier: BSD-2-Clause
// The resolver's settings in the config file (policy-milter.conf(5), dns-servers and
// dns-timeout), checked here so that --check and the start report them alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pm {

// `dns-servers` as written ("192.0.2.53, 192.0.2.54:5353, [2001:db8::53]:53, ::1") in the
// form c-ares takes ("192.0.2.53:53,..."); nullopt with the reason in `why` for a bad item.
std::optional<std::string> parse_dns_servers(std::string_view text, std::string& why);

// `dns-timeout`: "2s", "2" (seconds) or "500ms"; milliseconds, 1 to 60,000.
std::optional<std::uint64_t> parse_dns_timeout(std::string_view text, std::string& why);

}  // namespace pm
