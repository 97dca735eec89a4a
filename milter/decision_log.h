// SPDX-License-Identifier: BSD-2-Clause
// One log line per decision, in Postfix's style (spec §8):
//   QUEUEID: stage=rcpt rule=ID action=reject reply="550 5.1.1 ..." client=NAME[IP] from=<...>
//   to=<...>
// Pure formatting, so unit tests can check the exact lines the daemon writes.
//
// No field may ever carry CR, LF or another control byte into the log: a folded Subject
// in an observed add-header, or an address, would otherwise write a second, forged line.
// Every field value goes through append_log_value(), and every line the logger writes
// through escape_log_line() (config/logging.cpp), so the rule holds in one place.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/decision.h"

namespace pm {

// What the log says about the session, as the adapter saw it when the event happened.
struct LogSubject {
    std::string queue_id;  // empty: not known yet, logged as NOQUEUE
    std::string client_name = "unknown";
    std::string client_ip;                       // empty: no IP (unix socket), logged as unknown
    std::optional<std::string> sender;           // from MAIL on, without brackets ("" for <>)
    std::optional<std::string> recipient;        // the recipient of a rcpt event
    std::optional<std::size_t> recipient_count;  // at data and message
};

enum class LogLevel { Debug, Info, Warning };

struct LogLine {
    LogLevel level;
    std::string text;
};

// Appends `value` escaped as a log field: a control byte (0x00-0x1F, 0x7F) or a
// non-ASCII byte becomes \xHH (two lower-case hex digits), '\' becomes "\\", and in a
// quoted value '"' becomes "\"". The result is printable ASCII, and a quoted value
// cannot end early.
void append_log_value(std::string& out, std::string_view value, bool quoted);

// The last pass of every log line: control and non-ASCII bytes become \xHH, everything
// else (a '\' too: fields escaped by append_log_value stay as they are) is kept.
void append_escaped_log_line(std::string& out, std::string_view line);
std::string escape_log_line(std::string_view line);

// Every line one decision produces: observed hits ("would-reject"), headers added (none
// for a refused or discarded message), then the decision itself. A decision no rule made
// is a debug line, unless a store error note comes with it. Lines below `min_level` are
// left out, and cost nothing to format.
std::vector<LogLine> decision_log_lines(const Decision& d, const LogSubject& subject,
                                        LogLevel min_level = LogLevel::Debug);

}  // namespace pm
