// Where the daemon logs (spec §8): syslog (ident policy-milter, facility mail, unless
// syslog-name and syslog-facility say otherwise) or stderr.
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
// `syslog_facility`. Returns why it could not.
std::optional<std::string> setup_logging(const std::string& destination, const std::string& level,
                                         const std::string& syslog_name = "policy-milter",
                                         const std::string& syslog_facility = "mail");

// Changes the level of the running logger only. A new logger (setup_logging again) would
// close syslog as the old sink goes, and lose syslog-name for libmilter's lines.
std::optional<std::string> set_log_level(const std::string& level);

}  // namespace pm
