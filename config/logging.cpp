#include "config/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

namespace pm {

namespace {

std::optional<spdlog::level::level_enum> parse_level(const std::string& name) {
    if (name == "debug") return spdlog::level::debug;
    if (name == "info") return spdlog::level::info;
    if (name == "warning" || name == "warn") return spdlog::level::warn;
    if (name == "error") return spdlog::level::err;
    return std::nullopt;
}

}  // namespace

std::optional<std::string> log_destination_problem(const std::string& destination) {
    if (destination == "syslog" || destination == "stderr") return std::nullopt;
    return "unknown log destination \"" + destination + "\" (syslog or stderr)";
}

std::optional<std::string> log_level_problem(const std::string& level) {
    if (parse_level(level)) return std::nullopt;
    return "unknown log level \"" + level + "\" (debug, info, warning, error)";
}

std::optional<std::string> setup_logging(const std::string& destination, const std::string& level) {
    if (auto problem = log_level_problem(level)) return problem;
    if (auto problem = log_destination_problem(destination)) return problem;
    auto lvl = parse_level(level);
    std::shared_ptr<spdlog::logger> logger;
    if (destination == "syslog") {
        // syslog adds time, host and ident itself; the line is only the message.
        auto sink = std::make_shared<spdlog::sinks::syslog_sink_mt>("policy-milter", LOG_PID,
                                                                    LOG_MAIL, false);
        logger = std::make_shared<spdlog::logger>("policy-milter", sink);
        logger->set_pattern("%v");
    } else {  // stderr
        logger = std::make_shared<spdlog::logger>(
            "policy-milter", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        logger->set_pattern("%Y-%m-%d %H:%M:%S.%e policy-milter[%P]: %l: %v");
    }
    logger->set_level(*lvl);
    logger->flush_on(spdlog::level::debug);  // a milter's log is read while it runs
    spdlog::set_default_logger(logger);
    return std::nullopt;
}

}  // namespace pm
