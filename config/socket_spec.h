// SPDX-License-Identifier: BSD-2-Clause
// The milter socket spec (`socket = ...`), parsed strictly here rather than by libmilter.
// libmilter reads whatever it is given: `inet:127.0.0.1:8895`, the Postfix spelling, is
// port atoi("127.0.0.1:8895") = 127 on every interface, `inet:8895@127.1` is 127.0.0.1
// and `inet:8895@010.0.0.1` is 8.0.0.1. So only what libmilter reads as written is
// accepted, and the rest is refused with the spelling that was most likely meant.
// Pure: no name resolution, no sockets.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pm {

enum class SocketFamily { Unix, Inet, Inet6 };

struct SocketSpec {
    SocketFamily family = SocketFamily::Unix;
    std::string path;   // unix: an absolute path
    unsigned port = 0;  // inet, inet6: 1..65535
    std::string host;   // inet, inet6: an address or a host name; empty: every interface
    bool host_is_address = false;

    // The spec as libmilter gets it: unix:PATH, inet:PORT[@HOST], inet6:PORT[@[ADDR]].
    std::string to_libmilter() const;
    // An inet socket on every interface: no host, 0.0.0.0 or ::.
    bool all_interfaces() const;
};

// The socket of `text`, or nullopt with the reason in `why` (starting with the spec, as
// in "socket 'inet:127.0.0.1:8895': ...", and ending with a "did you mean" when a
// likely intent is known).
std::optional<SocketSpec> parse_socket_spec(std::string_view text, std::string& why);

}  // namespace pm
