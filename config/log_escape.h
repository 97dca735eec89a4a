// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	log_escape - printable log lines
// SYNOPSIS
//	#include "config/log_escape.h"
//
//	void append_log_value(std::string& out, std::string_view value, bool quoted);
//	void append_escaped_log_line(std::string& out, std::string_view line);
//	std::string escape_log_line(std::string_view line);
// DESCRIPTION
//	No log line may carry CR, LF or another control byte: a folded Subject or an
//	address would otherwise write a second, forged line (policy-milter(8), LOGGING).
//	append_log_value() escapes one field of a line as it is built (the decision log,
//	milter/decision_log.h); escape_log_line() is the last pass over every line the
//	logger writes (config/logging.cpp), so the rule holds in one place.
#pragma once

#include <string>
#include <string_view>

namespace pm {

// Appends `value` escaped as a log field: a control byte (0x00-0x1F, 0x7F) or a
// non-ASCII byte becomes \xHH (two lower-case hex digits), '\' becomes "\\", and in a
// quoted value '"' becomes "\"". The result is printable ASCII, and a quoted value
// cannot end early.
void append_log_value(std::string& out, std::string_view value, bool quoted);

// The last pass of every log line: control and non-ASCII bytes become \xHH, everything
// else (a '\' too: fields escaped by append_log_value stay as they are) is kept.
void append_escaped_log_line(std::string& out, std::string_view line);
std::string escape_log_line(std::string_view line);

}  // namespace pm
