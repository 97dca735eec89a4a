#include "config/decision_log.h"

#include <string>
#include <string_view>

namespace pm {

namespace {

// Each line is built by appending to one string: this runs for every decision the
// daemon logs, and a chain of operator+ costs a temporary (an allocation) per piece.
void append_prefix(std::string& out, const LogSubject& s, Stage stage) {
    out += s.queue_id.empty() ? std::string_view("NOQUEUE") : std::string_view(s.queue_id);
    out += ": stage=";
    out += stage_name(stage);
}

void append_context(std::string& out, const LogSubject& s) {
    out += " client=";
    out += s.client_name;
    out += '[';
    out += s.client_ip.empty() ? std::string_view("unknown") : std::string_view(s.client_ip);
    out += ']';
    if (s.sender) {
        out += " from=<";
        out += *s.sender;
        out += '>';
    }
    if (s.recipient) {
        out += " to=<";
        out += *s.recipient;
        out += '>';
    }
    if (s.recipient_count) {
        out += " nrcpt=";
        out += std::to_string(*s.recipient_count);
    }
}

void append_reply(std::string& out, const Reply& reply) {
    out += " reply=\"";
    out += reply.line();
    out += '"';
}

void append_hit(std::string& out, const RuleHit& hit, bool observed) {
    out += " rule=";
    out += hit.rule_id;
    out += " action=";
    if (observed) out += "would-";
    out += action_name(hit.action);
    if (hit.reply) append_reply(out, *hit.reply);
    if (hit.action == ActionKind::AddHeader) {
        out += " header=\"";
        out += hit.detail;
        out += '"';
    }
    if (hit.action == ActionKind::Quarantine) {
        out += " reason=\"";
        out += hit.detail;
        out += '"';
    }
}

LogLevel decision_level(const Decision& d) {
    if (!d.error.empty()) return LogLevel::Warning;
    if (d.verdict == Verdict::Continue) return LogLevel::Debug;
    return LogLevel::Info;
}

}  // namespace

std::vector<LogLine> decision_log_lines(const Decision& d, const LogSubject& subject,
                                        LogLevel min_level) {
    // A refused or discarded message gets no headers: log only those really added.
    bool log_added = !d.refused() && d.verdict != Verdict::Discard;
    bool hits =
        LogLevel::Info >= min_level && (!d.observed.empty() || (log_added && !d.added.empty()));
    LogLevel level = decision_level(d);
    std::vector<LogLine> lines;
    // Most events decide nothing and log at debug, which is usually off: those are not
    // formatted at all.
    if (!hits && level < min_level) return lines;

    auto start_line = [&] {
        std::string text;
        text.reserve(256);  // one allocation for a typical line
        append_prefix(text, subject, d.stage);
        return text;
    };
    if (hits) {
        for (const auto& hit : d.observed) {
            std::string text = start_line();
            append_hit(text, hit, true);
            append_context(text, subject);
            lines.push_back({LogLevel::Info, std::move(text)});
        }
        if (log_added)
            for (const auto& hit : d.added) {
                std::string text = start_line();
                append_hit(text, hit, false);
                append_context(text, subject);
                lines.push_back({LogLevel::Info, std::move(text)});
            }
    }
    if (level < min_level) return lines;

    std::string text = start_line();
    if (!d.rule_id.empty()) {
        text += " rule=";
        text += d.rule_id;
    }
    text += " action=";
    text += verdict_name(d.verdict);
    if (d.reply) append_reply(text, *d.reply);
    if (d.verdict == Verdict::Quarantine) {
        text += " reason=\"";
        text += d.quarantine_reason;
        text += '"';
    }
    append_context(text, subject);
    if (!d.error.empty()) {
        text += " error=\"";
        text += d.error;
        text += '"';
    }
    lines.push_back({level, std::move(text)});
    return lines;
}

}  // namespace pm
