// SPDX-License-Identifier: BSD-2-Clause
// The wire protocol of the control socket (policy-milter(8), CONTROL SOCKET), shared by
// the daemon's control server (milter/control.h) and `policy-milter --ctl` (cli/ctl.h).
//
//   request:  "pmctl1" NUL, then the command and each argument, each followed by NUL;
//             the client then shuts down its writing side. An argument holds any byte
//             but NUL. At most kMaxRequestBytes in all and kMaxArguments words.
//   reply:    a status line, "ok" or "error", LF; then text lines, each ending in LF,
//             until the daemon closes the connection. Every line is printable: what a
//             client sent comes back escaped as in the log (config/log_escape.h).
//
// Pure: no sockets here, so the parsers are unit-tested and fuzzed alone.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pm {

inline constexpr std::string_view kControlMagic = "pmctl1";
inline constexpr std::size_t kMaxRequestBytes = 64 * 1024;
inline constexpr std::size_t kMaxArguments = 64;

// The request for these words (the command first): nullopt if a word holds NUL or the
// request would exceed the bounds.
std::optional<std::string> encode_control_request(const std::vector<std::string>& words,
                                                  std::string& why);
// The words of a complete request (everything the client sent): nullopt, with why, for
// anything else: no magic, a last word without its NUL, no command, too many words.
std::optional<std::vector<std::string>> parse_control_request(std::string_view bytes,
                                                              std::string& why);

struct ControlReply {
    bool ok = false;
    std::vector<std::string> lines;  // without their LF
};
// The bytes of a reply: each line escaped to printable ASCII on its own line.
std::string encode_control_reply(const ControlReply& reply);
// A complete reply, as read until the daemon closed: nullopt if it is not one.
std::optional<ControlReply> parse_control_reply(std::string_view bytes);

}  // namespace pm
