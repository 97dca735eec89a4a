#include "config/decision_log.h"

namespace pm {

namespace {

std::string prefix(const LogSubject& s, Stage stage) {
    return (s.queue_id.empty() ? std::string("NOQUEUE") : s.queue_id) +
           ": stage=" + std::string(stage_name(stage));
}

std::string context(const LogSubject& s) {
    std::string out = " client=" + s.client_name + "[" +
                      (s.client_ip.empty() ? std::string("unknown") : s.client_ip) + "]";
    if (s.sender) out += " from=<" + *s.sender + ">";
    if (s.recipient) out += " to=<" + *s.recipient + ">";
    if (s.recipient_count) out += " nrcpt=" + std::to_string(*s.recipient_count);
    return out;
}

std::string hit_text(const RuleHit& hit, bool observed) {
    std::string out = " rule=" + hit.rule_id + " action=" + (observed ? "would-" : "") +
                      std::string(action_name(hit.action));
    if (hit.reply) out += " reply=\"" + hit.reply->line() + "\"";
    if (hit.action == ActionKind::AddHeader) out += " header=\"" + hit.detail + "\"";
    if (hit.action == ActionKind::Quarantine) out += " reason=\"" + hit.detail + "\"";
    return out;
}

}  // namespace

std::vector<LogLine> decision_log_lines(const Decision& d, const LogSubject& subject) {
    std::vector<LogLine> lines;
    const std::string head = prefix(subject, d.stage);
    const std::string tail = context(subject);
    for (const auto& hit : d.observed)
        lines.push_back({LogLevel::Info, head + hit_text(hit, true) + tail});
    // A refused or discarded message gets no headers: log only those really added.
    if (!d.refused() && d.verdict != Verdict::Discard)
        for (const auto& hit : d.added)
            lines.push_back({LogLevel::Info, head + hit_text(hit, false) + tail});

    std::string text = head;
    if (!d.rule_id.empty()) text += " rule=" + d.rule_id;
    text += " action=" + std::string(verdict_name(d.verdict));
    if (d.reply) text += " reply=\"" + d.reply->line() + "\"";
    if (d.verdict == Verdict::Quarantine) text += " reason=\"" + d.quarantine_reason + "\"";
    text += tail;
    if (!d.error.empty()) text += " error=\"" + d.error + "\"";

    LogLevel level = LogLevel::Info;
    if (!d.error.empty())
        level = LogLevel::Warning;
    else if (d.verdict == Verdict::Continue)
        level = LogLevel::Debug;
    lines.push_back({level, std::move(text)});
    return lines;
}

}  // namespace pm
