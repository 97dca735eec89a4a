// SPDX-License-Identifier: BSD-2-Clause
// Where the daemon logs (policy-milter(8), LOGGING): syslog (ident policy-milter, facility mail,
// unless syslog-name and syslog-facility say otherwise) or stderr.
#pragma once

#include <optional>
#include <string>

namespace pm {

// Why `destination` or `level` is not one of those below, or nullopt.
std::optional<std::string> log_destination_problem(const std::string& destination);
std::optional<std::string> log_level_problem(const std::string& level);

// syslog-facility and syslog-name, as Postfix's syslog_facility and syslog_name: the
// facility's code (LOG_MAIL for "mail"), or why the value is not one.
std::optional<int> syslog_facility_code(const std::string& facility);
std::optional<std::string> syslog_facility_problem(const std::string& facility);
std::optional<std::string> syslog_name_problem(const std::string& name);

// Makes spdlog's default logger write to `destination` ("syslog" or "stderr") at
// `level` ("debug", "info", "warning" or "error"); syslog lines carry `syslog_name` and
// `syslog_facility`. Returns why it could not. The logger is made once, before any other
// thread logs; a later call only changes the level.
std::optional<std::string> setup_logging(const std::string& destination, const std::string& level,
                                         const std::string& syslog_name = "policy-milter",
                                         const std::string& syslog_facility = "mail");

// Changes the level of the one logger, safely while other threads log (a reload).
std::optional<std::string> set_log_level(const std::string& level);

// The level in force: "debug", "info", "warning" or "error".
std::string log_level_name();

}  // namespace pm
