// SPDX-License-Identifier: BSD-2-Clause
// The `metrics = HOST:PORT` address of the Prometheus endpoint (policy-milter.conf(5)),
// and the `stats-interval` duration. Pure: no name resolution, no sockets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pm {

struct MetricsAddress {
    std::string host;  // an IPv4 or IPv6 address, without brackets
    unsigned port = 0;
    bool loopback = false;
};

// 127.0.0.1:9259 or [::1]:9259: an IP address (no host name: what it resolves to could
// change under the daemon) and a port from 1 to 65535. nullopt with the reason in `why`.
std::optional<MetricsAddress> parse_metrics_address(std::string_view text, std::string& why);

inline constexpr std::uint64_t kMaxStatsIntervalSeconds = 365ull * 24 * 3600;
// A duration as the rules write it (30s, 5m, 1h, 1d) up to 365d, or 0 (off). Seconds, or
// nullopt with the reason in `why`.
std::optional<std::uint64_t> parse_stats_interval(std::string_view text, std::string& why);

}  // namespace pm
