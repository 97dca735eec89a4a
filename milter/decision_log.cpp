// SPDX-License-Identifier: BSD-2-Clause
#include "milter/decision_log.h"

#include <string>
#include <string_view>

#include "config/log_escape.h"

namespace pm {

namespace {

void append_quoted(std::string& out, std::string_view key, std::string_view value) {
    out += key;
    out += '"';
    append_log_value(out, value, true);
    out += '"';
}

// Each line is built by appending to one string: this runs for every decision the
// daemon logs, and a chain of operator+ costs a temporary (an allocation) per piece.
void append_prefix(std::string& out, const LogEvent& e, Stage stage) {
    if (e.queue_id.empty())
        out += "NOQUEUE";
    else
        append_log_value(out, e.queue_id, false);
    out += ": stage=";
    out += stage_name(stage);
}

// What the context says at each stage; the facts may hold more (a transaction's stay
// after its message, for one).
struct Context {
    const Facts& facts;
    const LogEvent& event;
    std::string client_ip;  // the connect facts' address as text, once per decision
    bool from, to, nrcpt;

    Context(const Facts& f, const LogEvent& e, Stage stage)
        : facts(f),
          event(e),
          client_ip(f.client_ip ? f.client_ip->to_string() : "unknown"),
          from(f.mail_seen && stage_index(stage) >= stage_index(Stage::Mail)),
          to(stage == Stage::Rcpt),
          nrcpt(stage == Stage::Data || stage == Stage::Message) {}
};

void append_context(std::string& out, const Context& c) {
    out += " client=";
    append_log_value(out, c.facts.client_name, false);
    out += '[';
    append_log_value(out, c.client_ip, false);
    out += ']';
    if (c.from) {
        out += " from=<";
        append_log_value(out, c.facts.sender.raw(), false);
        out += '>';
    }
    if (c.to) {
        out += " to=<";
        append_log_value(out, c.event.recipient, false);
        out += '>';
    }
    if (c.nrcpt) {
        out += " nrcpt=";
        out += std::to_string(c.facts.accepted_recipients.size());
    }
}

void append_reply(std::string& out, const Reply& reply) {
    append_quoted(out, " reply=", reply.line());
}

void append_hit(std::string& out, const RuleHit& hit, bool observed) {
    out += " rule=";
    append_log_value(out, hit.rule_id, false);
    out += " action=";
    if (observed) out += "would-";
    out += action_name(hit.action);
    if (hit.reply) append_reply(out, *hit.reply);
    if (hit.action == ActionKind::AddHeader) append_quoted(out, " header=", hit.detail);
    if (hit.action == ActionKind::Quarantine) append_quoted(out, " reason=", hit.detail);
}

LogLevel decision_level(const Decision& d) {
    if (!d.error.empty()) return LogLevel::Warning;
    if (d.verdict == Verdict::Continue) return LogLevel::Debug;
    return LogLevel::Info;
}

}  // namespace

std::vector<LogLine> decision_log_lines(const Decision& d, const Facts& facts,
                                        const LogEvent& event, LogLevel min_level) {
    // A refused or discarded message gets no headers: log only those really added.
    bool log_added = !d.refused() && d.verdict != Verdict::Discard;
    bool hits =
        LogLevel::Info >= min_level && (!d.observed.empty() || (log_added && !d.added.empty()));
    LogLevel level = decision_level(d);
    std::vector<LogLine> lines;
    // Most events decide nothing and log at debug, which is usually off: those are not
    // formatted at all.
    if (!hits && level < min_level) return lines;

    Context context(facts, event, d.stage);
    auto start_line = [&] {
        std::string text;
        text.reserve(256);  // one allocation for a typical line
        append_prefix(text, event, d.stage);
        return text;
    };
    if (hits) {
        for (const auto& hit : d.observed) {
            std::string text = start_line();
            append_hit(text, hit, true);
            append_context(text, context);
            lines.push_back({LogLevel::Info, std::move(text)});
        }
        if (log_added)
            for (const auto& hit : d.added) {
                std::string text = start_line();
                append_hit(text, hit, false);
                append_context(text, context);
                lines.push_back({LogLevel::Info, std::move(text)});
            }
    }
    if (level < min_level) return lines;

    std::string text = start_line();
    if (!d.rule_id.empty()) {
        text += " rule=";
        append_log_value(text, d.rule_id, false);
    }
    text += " action=";
    text += verdict_name(d.verdict);
    if (d.reply) append_reply(text, *d.reply);
    if (d.verdict == Verdict::Quarantine) append_quoted(text, " reason=", d.quarantine_reason);
    append_context(text, context);
    if (!d.error.empty()) append_quoted(text, " error=", d.error);
    lines.push_back({level, std::move(text)});
    return lines;
}

}  // namespace pm
