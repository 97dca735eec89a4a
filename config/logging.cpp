// SPDX-License-Identifier: BSD-2-Clause
#include "config/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

#include <algorithm>
#include <mutex>
#include <string_view>

#include "config/log_escape.h"

namespace pm {

namespace {

// %* in a pattern: the message with control and non-ASCII bytes as \xHH. Every line the
// daemon logs goes through it, so none can carry a CR or LF that forges a second line,
// whatever a message string holds (the decision log escapes its fields before this).
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

struct Facility {
    const char* name;
    int code;
};
// Every facility Postfix's syslog_facility takes, by the names of syslog.conf(5).
constexpr Facility kFacilities[] = {
    {"auth", LOG_AUTH},     {"authpriv", LOG_AUTHPRIV}, {"cron", LOG_CRON},
    {"daemon", LOG_DAEMON}, {"ftp", LOG_FTP},           {"kern", LOG_KERN},
    {"lpr", LOG_LPR},       {"mail", LOG_MAIL},         {"news", LOG_NEWS},
    {"syslog", LOG_SYSLOG}, {"user", LOG_USER},         {"uucp", LOG_UUCP},
    {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},     {"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},     {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

}  // namespace

std::optional<int> syslog_facility_code(const std::string& facility) {
    for (const auto& f : kFacilities)
        if (facility == f.name) return f.code;
    return std::nullopt;
}

std::optional<std::string> syslog_facility_problem(const std::string& facility) {
    if (syslog_facility_code(facility)) return std::nullopt;
    return "syslog-facility '" + facility +
           "' is not a syslog facility (mail, daemon, local0 to "
           "local7, ...)";
}

std::optional<std::string> syslog_name_problem(const std::string& name) {
    // syslog(3) ends the ident at a blank or a colon in the line it sends.
    if (!name.empty() && name.size() <= 64 && name.find_first_of(" \t:[]%") == std::string::npos &&
        std::all_of(name.begin(), name.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; }))
        return std::nullopt;
    return "syslog-name '" + name +
           "' is not 1 to 64 printable ASCII characters without blanks, ':', '[', ']' or '%'";
}

std::optional<std::string> log_destination_problem(const std::string& destination) {
    if (destination == "syslog" || destination == "stderr") return std::nullopt;
    return "unknown log destination \"" + destination + "\" (syslog or stderr)";
}

std::optional<std::string> log_level_problem(const std::string& level) {
    if (parse_level(level)) return std::nullopt;
    return "unknown log level \"" + level + "\" (debug, info, warning, error)";
}

std::optional<std::string> setup_logging(const std::string& destination, const std::string& level,
                                         const std::string& syslog_name,
                                         const std::string& syslog_facility) {
    if (auto problem = log_level_problem(level)) return problem;
    if (auto problem = log_destination_problem(destination)) return problem;
    if (auto problem = syslog_facility_problem(syslog_facility)) return problem;
    if (auto problem = syslog_name_problem(syslog_name)) return problem;
    auto lvl = parse_level(level);
    // One logger for the life of the process. spdlog::set_default_logger() swaps the
    // pointer that every spdlog::info() reads without a lock: called while MTA threads
    // log, it races with them and frees the logger under their feet (a SEGV in
    // logger::sink_it_). So a second call changes the level only; the destination,
    // syslog-name and syslog-facility are fixed at start (policy-milter(8), SIGNALS).
    static std::once_flag made;
    std::call_once(made, [&] {
        std::shared_ptr<spdlog::logger> logger;
        if (destination == "syslog") {
            // syslog adds time, host and ident itself; the line is only the (escaped)
            // message, formatted by the sink (enable_formatting) so that the escaping
            // applies.
            auto sink = std::make_shared<spdlog::sinks::syslog_sink_mt>(
                syslog_name, LOG_PID, *syslog_facility_code(syslog_facility), true);
            logger = std::make_shared<spdlog::logger>("policy-milter", sink);
            logger->set_formatter(escaping_formatter("%*", ""));
        } else {  // stderr
            logger = std::make_shared<spdlog::logger>(
                "policy-milter", std::make_shared<spdlog::sinks::stderr_sink_mt>());
            // syslog-name has no '%' (syslog_name_problem), so it is plain text in the
            // pattern.
            logger->set_formatter(
                escaping_formatter("%Y-%m-%d %H:%M:%S.%e " + syslog_name + "[%P]: %l: %*",
                                   spdlog::details::os::default_eol));
        }
        logger->flush_on(spdlog::level::debug);  // a milter's log is read while it runs
        logger->set_level(*lvl);
        spdlog::set_default_logger(std::move(logger));
    });
    spdlog::default_logger_raw()->set_level(*lvl);
    return std::nullopt;
}

std::optional<std::string> set_log_level(const std::string& level) {
    auto lvl = parse_level(level);
    if (!lvl) return log_level_problem(level);
    // The level is an atomic in the logger: threads that log see the old or the new one.
    spdlog::default_logger_raw()->set_level(*lvl);
    return std::nullopt;
}

std::string log_level_name() {
    switch (spdlog::default_logger_raw()->level()) {
        case spdlog::level::trace:
        case spdlog::level::debug: return "debug";
        case spdlog::level::info: return "info";
        case spdlog::level::warn: return "warning";
        default: return "error";
    }
}

}  // namespace pm
