#include "config/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

#include <algorithm>
#include <string_view>

#include "config/decision_log.h"

namespace pm {

namespace {

// %* in a pattern: the message with control and non-ASCII bytes as \xHH. Every line the
// daemon logs goes through it, so none can carry a CR or LF that forges a second line,
// whatever a message string holds (decision_log escapes its fields before this).
class EscapedMessage final : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        std::string_view text(msg.payload.data(), msg.payload.size());
        bool clean = std::all_of(text.begin(), text.end(), [](char ch) {
            auto c = static_cast<unsigned char>(ch);
            return c >= 0x20 && c < 0x7F;
        });
        if (clean) {  // nearly every line: no copy
            dest.append(text.data(), text.data() + text.size());
            return;
        }
        std::string escaped = escape_log_line(text);
        dest.append(escaped.data(), escaped.data() + escaped.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<EscapedMessage>();
    }
};

std::unique_ptr<spdlog::formatter> escaping_formatter(const std::string& pattern,
                                                      const std::string& eol) {
    auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::local, eol);
    f->add_flag<EscapedMessage>('*').set_pattern(pattern);
    return f;
}

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
        // syslog adds time, host and ident itself; the line is only the (escaped) message,
        // formatted by the sink (enable_formatting) so that the escaping applies.
        auto sink = std::make_shared<spdlog::sinks::syslog_sink_mt>("policy-milter", LOG_PID,
                                                                    LOG_MAIL, true);
        logger = std::make_shared<spdlog::logger>("policy-milter", sink);
        logger->set_formatter(escaping_formatter("%*", ""));
    } else {  // stderr
        logger = std::make_shared<spdlog::logger>(
            "policy-milter", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        logger->set_formatter(escaping_formatter("%Y-%m-%d %H:%M:%S.%e policy-milter[%P]: %l: %*",
                                                 spdlog::details::os::default_eol));
    }
    logger->set_level(*lvl);
    logger->flush_on(spdlog::level::debug);  // a milter's log is read while it runs
    spdlog::set_default_logger(logger);
    return std::nullopt;
}

}  // namespace pm
