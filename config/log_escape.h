// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	log_escape - printable log lines
// SYNOPSIS
//	#include "config/log_escape.h"
//
//	void append_log_value(std::string& out, std::string_view value, LogValue kind);
//	std::optional<std::string> unescape_log_value(std::string_view text, LogValue kind);
//	void append_escaped_log_line(std::string& out, std::string_view line);
//	std::string escape_log_line(std::string_view line);
// DESCRIPTION
//	No log line may carry CR, LF or another control byte: a folded Subject or an
//	address would otherwise write a second, forged line (policy-milter(8), LOGGING).
//	append_log_value() escapes one field of a line as it is built (the decision log,
//	milter/decision_log.h); escape_log_line() is the last pass over every line the
//	logger writes (config/logging.cpp), so the rule holds in one place.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pm {

// How a field of a decision line is written (policy-milter(8), LOGGING).
enum class LogValue {
    // Inside "...": '"' becomes \", '\' becomes \\, so the value ends only at its
    // closing quote.
    Quoted,
    // A bare token, or inside <...> or NAME[IP]: ' ', '<', '>', '[', ']', '"' and '\'
    // become \xHH as well, so the value can neither end its token or brackets early
    // nor start a key of its own. The line splits into key=value tokens at spaces.
    Token,
};

// Appends `value` escaped as a log field of `kind`: a control byte (0x00-0x1F, 0x7F)
// or a non-ASCII byte becomes \xHH (two lower-case hex digits), and so do the bytes
// `kind` reserves. The result is printable ASCII.
void append_log_value(std::string& out, std::string_view value, LogValue kind);

// The value append_log_value wrote `text` from: \xHH becomes its byte, and in a
// Quoted value so do \\ and \". nullopt if `text` is not something append_log_value
// writes: a byte it would have escaped, or a '\' that starts no escape.
std::optional<std::string> unescape_log_value(std::string_view text, LogValue kind);

// The last pass of every log line: control and non-ASCII bytes become \xHH, everything
// else (a '\' too: fields escaped by append_log_value stay as they are) is kept.
void append_escaped_log_line(std::string& out, std::string_view line);
std::string escape_log_line(std::string_view line);

}  // namespace pm
