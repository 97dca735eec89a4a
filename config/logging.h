// Where the daemon logs (spec §8): syslog (ident policy-milter, facility mail) or stderr.
#pragma once

#include <optional>
#include <string>

namespace pm {

// Makes spdlog's default logger write to `destination` ("syslog" or "stderr") at
// `level` ("debug", "info", "warning" or "error"). Returns why it could not.
std::optional<std::string> setup_logging(const std::string& destination, const std::string& level);

}  // namespace pm
