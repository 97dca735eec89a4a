// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	decision_log - the milter's log line per decision
// SYNOPSIS
//	#include "milter/decision_log.h"
//
//	std::vector<LogLine> decision_log_lines(const Decision& d,
//		const Facts& facts, const LogEvent& event, LogLevel min_level);
// DESCRIPTION
//	One log line per decision, in Postfix's style (policy-milter(8), LOGGING):
//	  QUEUEID|NOQUEUE: client=NAME[IP] stage=STAGE rule=ID|- action=ACTION
//	  [reply="..."] helo=<...>|- from=<...>|- to=<...>|- [header="..."] [reason="..."]
//	  [nrcpt=N] [error="..."]
//	The keys are fixed and in this order; client= comes first, as the client cannot shape
//	it. Pure formatting, so unit tests can check the exact lines the daemon writes. Every
//	value is escaped (config/log_escape.h, LogValue): none carries a control byte, and
//	none can end its token, brackets or quotes early, so no client-chosen text forges a
//	key. cli/report.h parses these lines back.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "policy/decision.h"
#include "policy/facts.h"

namespace pm {

// What only the adapter knows about the event being logged; the rest comes from the
// conversation's Facts, as the event left them (Conversation::facts()).
struct LogEvent {
    std::string_view queue_id;   // empty: not known yet, logged as NOQUEUE
    std::string_view recipient;  // of a rcpt event, without brackets (Address::unwrap)
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
// The context of every line: client=NAME[IP] from the connect facts, helo=<name> once
// HELO was given, from=<sender> once MAIL was given (at mail, rcpt, data and message),
// to=<recipient> at rcpt and the first accepted recipient at data and message, each "-"
// until known; nrcpt=N (the accepted recipients) at data and message.
std::vector<LogLine> decision_log_lines(const Decision& d, const Facts& facts,
                                        const LogEvent& event,
                                        LogLevel min_level = LogLevel::Debug);

}  // namespace pm
