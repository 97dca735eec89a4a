// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	decision_log - the milter's log line per decision
// SYNOPSIS
//	#include "milter/decision_log.h"
//
//	std::vector<LogLine> decision_log_lines(const Decision& d,
//		const LogSubject& subject, LogLevel min_level);
// DESCRIPTION
//	One log line per decision, in Postfix's style (policy-milter(8), LOGGING):
//	  QUEUEID: stage=rcpt rule=ID action=reject reply="550 5.1.1 ..." client=NAME[IP]
//	  from=<...> to=<...>
//	Pure formatting, so unit tests can check the exact lines the daemon writes. Every
//	field value is escaped (config/log_escape.h): none carries a control byte.
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

// Every line one decision produces: observed hits ("would-reject"), headers added (none
// for a refused or discarded message), then the decision itself. A decision no rule made
// is a debug line, unless a store error note comes with it. Lines below `min_level` are
// left out, and cost nothing to format.
std::vector<LogLine> decision_log_lines(const Decision& d, const LogSubject& subject,
                                        LogLevel min_level = LogLevel::Debug);

}  // namespace pm
