// SPDX-License-Identifier: BSD-2-Clause
#include "config/dns_settings.h"

#include <algorithm>

#include "policy/ip.h"

namespace pm {

namespace {

// The port of a `dns-servers` item, 1 to 65535 (53 if absent), or 0.
unsigned dns_port(std::string_view port) {
    if (port.empty()) return 53;
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) return 0;
    unsigned long p = std::stoul(std::string(port));
    return p <= 65535 ? static_cast<unsigned>(p) : 0;
}

// One `dns-servers` item: IPv4[:PORT], [IPv6]:PORT or a bare IPv6 address.
std::optional<std::string> dns_server(std::string_view item, std::string& why) {
    std::string_view host = item, port;
    if (item.starts_with('[')) {
        std::size_t close = item.find(']');
        std::string_view rest = close == std::string_view::npos ? "" : item.substr(close + 1);
        if (close == std::string_view::npos || (!rest.empty() && !rest.starts_with(':'))) {
            why = "not [IPv6]:PORT";
            return std::nullopt;
        }
        host = item.substr(1, close - 1);
        if (!rest.empty()) port = rest.substr(1);
    } else if (std::count(item.begin(), item.end(), ':') == 1) {
        host = item.substr(0, item.find(':'));
        port = item.substr(item.find(':') + 1);
    }
    std::optional<IpAddress> ip = parse_ip(host);
    if (!ip) {
        why = "not an IP address";
        return std::nullopt;
    }
    unsigned p = dns_port(port);
    if (p == 0) {
        why = "port must be 1 to 65535";
        return std::nullopt;
    }
    std::string addr = ip->to_string();
    return (ip->v6 ? "[" + addr + "]" : addr) + ":" + std::to_string(p);
}

}  // namespace

std::optional<std::string> parse_dns_servers(std::string_view text, std::string& why) {
    std::string out;
    std::size_t start = 0;
    for (;;) {
        std::size_t comma = text.find(',', start);
        std::string_view item =
            text.substr(start, comma == std::string_view::npos ? comma : comma - start);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
            item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        std::string item_why;
        auto server = dns_server(item, item_why);
        if (!server) {
            why = "dns-servers item '" + std::string(item) + "': " + item_why +
                  " (IPv4[:PORT], [IPv6]:PORT or IPv6)";
            return std::nullopt;
        }
        out += (out.empty() ? "" : ",") + *server;
        if (comma == std::string_view::npos) return out;
        start = comma + 1;
    }
}

std::optional<std::uint64_t> parse_dns_timeout(std::string_view text, std::string& why) {
    std::string_view digits = text;
    std::uint64_t scale = 1000;  // seconds, as Postfix's time values without a unit
    if (text.ends_with("ms")) {
        digits.remove_suffix(2);
        scale = 1;
    } else if (text.ends_with('s')) {
        digits.remove_suffix(1);
    }
    bool ok = !digits.empty() && digits.size() <= 6 &&
              digits.find_first_not_of("0123456789") == std::string_view::npos;
    std::uint64_t ms = ok ? std::stoull(std::string(digits)) * scale : 0;
    if (ms < 1 || ms > 60000) {
        why = "dns-timeout '" + std::string(text) +
              "' is not a duration from 1ms to 60s (such as 2s or 500ms)";
        return std::nullopt;
    }
    return ms;
}

}  // namespace pm
