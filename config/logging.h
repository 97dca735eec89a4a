// Where the daemon logs (spec §8): syslog (ident policy-milter, facility mail) or stderr.
#pragma once

#include <optional>
#include <string>

namespace pm {

// Why `destination` or `level` is not one of those below, or nullopt.
std::optional<std::string> log_destination_problem(const std::string& destination);
std::optional<std::string> log_level_problem(const std::string& level);

// Makes spdlog's default logger write to `destination` ("syslog" or "stderr") at
// `level` ("debug", "info", "warning" or "error"). Returns why it could not.
std::optional<std::string> setup_logging(const std::string& destination, const std::string& level);

}  // namespace pm
