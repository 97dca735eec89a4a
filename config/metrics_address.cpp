// SPDX-License-Identifier: BSD-2-Clause
#include "config/metrics_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "policy/units.h"

namespace pm {

std::optional<MetricsAddress> parse_metrics_address(std::string_view text, std::string& why) {
    std::string quoted = "metrics '" + std::string(text) + "'";
    MetricsAddress a;
    std::string_view port;
    bool v6 = !text.empty() && text.front() == '[';
    if (v6) {
        auto close = text.find(']');
        if (close == text.npos || close + 1 >= text.size() || text[close + 1] != ':') {
            why = quoted + " is not [IPV6]:PORT, such as [::1]:9259";
            return std::nullopt;
        }
        a.host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == text.npos || text.find(':') != colon) {
            why = quoted + " is not HOST:PORT, such as 127.0.0.1:9259 or [::1]:9259";
            return std::nullopt;
        }
        a.host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
    }
    unsigned char bytes[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, a.host.c_str(), bytes) != 1) {
        why = quoted + ": '" + a.host + "' is not an IP" + (v6 ? "v6" : "v4") +
              " address (host names are not accepted)";
        return std::nullopt;
    }
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || n < 1 ||
        n > 65535 || port.front() == '+') {
        why = quoted + ": the port '" + std::string(port) + "' is not a number from 1 to 65535";
        return std::nullopt;
    }
    a.port = n;
    if (v6) {
        static const unsigned char v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                                      0, 0, 0, 0, 0, 0, 0, 1};
        a.loopback = std::equal(bytes, bytes + 16, v6_loopback);
    } else {
        a.loopback = bytes[0] == 127;
    }
    return a;
}

std::optional<std::uint64_t> parse_stats_interval(std::string_view text, std::string& why) {
    // 0 is off, with or without a unit.
    std::string_view digits = text;
    if (!digits.empty() && std::string_view("smhd").find(digits.back()) != digits.npos)
        digits.remove_suffix(1);
    if (!digits.empty() && digits.find_first_not_of('0') == digits.npos) return 0;
    std::uint64_t seconds = 0;
    // At most a year: the daemon adds it to a clock counted in nanoseconds (and a longer
    // one could as well be 0).
    if (parse_duration(text, seconds) && seconds > kMaxStatsIntervalSeconds) {
        why = "stats-interval '" + std::string(text) + "' is over 365d (0 turns it off)";
        return std::nullopt;
    }
    if (parse_duration(text, seconds)) return seconds;
    std::string hint = duration_problem(text);
    why = "stats-interval '" + std::string(text) +
          "' is not a duration such as 30s, 5m, 1h or 1d, or 0 (off)" +
          (hint.empty() ? "" : ": " + hint);
    return std::nullopt;
}

}  // namespace pm
