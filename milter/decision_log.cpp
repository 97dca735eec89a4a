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
    append_log_value(out, value, LogValue::Quoted);
    out += '"';
}

// `value` in <...>; "<>" is Postfix's null sender, so a value not known yet is a bare
// "-" instead (policy-milter(8), LOGGING).
void append_bracketed(std::string& out, std::string_view key, const std::string_view* value) {
    out += key;
    if (!value) {
        out += '-';
        return;
    }
    out += '<';
    append_log_value(out, *value, LogValue::Token);
    out += '>';
}

// What the line says at each stage; the facts may hold more (a transaction's stay
// after its message, for one).
struct Context {
    const Facts& facts;
    const LogEvent& event;
    std::string client_ip;  // the connect facts' address as text, once per decision
    bool from, nrcpt, has_to = false;
    std::string_view to;
    Stage stage;

    Context(const Facts& f, const LogEvent& e, Stage s)
        : facts(f),
          event(e),
          client_ip(f.client_ip ? f.client_ip->to_string() : "unknown"),
          from(f.mail_seen && stage_index(s) >= stage_index(Stage::Mail)),
          nrcpt(s == Stage::Data || s == Stage::Message),
          stage(s) {
        // At data and message the first accepted recipient stands for them all, and
        // nrcpt= says how many there are.
        if (s == Stage::Rcpt || s == Stage::Vrfy) {
            has_to = true;
            to = e.recipient;
        } else if (nrcpt && !f.accepted_recipients.empty()) {
            has_to = true;
            to = f.accepted_recipients.front().raw();
        }
    }
};

// The MTA's queue id is alphanumeric; one with a ':' (a broken or hostile MTA's macro)
// would end the line's first field early, so ':' is written \x3a as well.
void append_queue_id(std::string& out, std::string_view id) {
    std::size_t start = out.size();
    append_log_value(out, id, LogValue::Token);
    for (std::size_t i = start; i < out.size(); ++i)
        if (out[i] == ':') out.replace(i, 1, "\\x3a");
}

// Each line is built by appending to one string: this runs for every decision the
// daemon logs, and a chain of operator+ costs a temporary (an allocation) per piece.
// The keys that come before the rule: the queue id, then what the client cannot shape.
void append_head(std::string& out, const Context& c) {
    if (c.event.queue_id.empty())
        out += "NOQUEUE";
    else
        append_queue_id(out, c.event.queue_id);
    out += ": client=";
    append_log_value(out, c.facts.client_name, LogValue::Token);
    out += '[';
    append_log_value(out, c.client_ip, LogValue::Token);
    out += "] stage=";
    out += stage_name(c.stage);
}

void append_rule(std::string& out, std::string_view rule_id) {
    out += " rule=";
    if (rule_id.empty())
        out += '-';  // no rule decided
    else if (rule_id == "-")
        out += "\\x2d";  // a rule named "-" is not taken for none
    else
        append_log_value(out, rule_id, LogValue::Token);
}

// helo=, from= and to=, fixed and always there.
void append_envelope(std::string& out, const Context& c) {
    std::string_view helo = c.facts.helo, sender = c.facts.sender.raw();
    append_bracketed(out, " helo=", helo.empty() ? nullptr : &helo);
    append_bracketed(out, " from=", c.from ? &sender : nullptr);
    append_bracketed(out, " to=", c.has_to ? &c.to : nullptr);
}

void append_nrcpt(std::string& out, const Context& c) {
    if (!c.nrcpt) return;
    out += " nrcpt=";
    out += std::to_string(c.facts.accepted_recipients.size());
}

void append_reply(std::string& out, const Reply& reply) {
    append_quoted(out, " reply=", reply.line());
}

void append_hit(std::string& out, const RuleHit& hit, bool observed, const Context& c) {
    append_rule(out, hit.rule_id);
    out += " action=";
    if (observed) out += "would-";
    out += action_name(hit.action);
    if (hit.reply) append_reply(out, *hit.reply);
    append_envelope(out, c);
    if (hit.action == ActionKind::AddHeader) append_quoted(out, " header=", hit.detail);
    if (hit.action == ActionKind::Quarantine) append_quoted(out, " reason=", hit.detail);
    append_nrcpt(out, c);
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
        append_head(text, context);
        return text;
    };
    if (hits) {
        for (const auto& hit : d.observed) {
            std::string text = start_line();
            append_hit(text, hit, true, context);
            lines.push_back({LogLevel::Info, std::move(text)});
        }
        if (log_added)
            for (const auto& hit : d.added) {
                std::string text = start_line();
                append_hit(text, hit, false, context);
                lines.push_back({LogLevel::Info, std::move(text)});
            }
    }
    if (level < min_level) return lines;

    std::string text = start_line();
    append_rule(text, d.rule_id);
    text += " action=";
    text += verdict_name(d.verdict);
    if (d.reply) append_reply(text, *d.reply);
    append_envelope(text, context);
    if (d.verdict == Verdict::Quarantine) append_quoted(text, " reason=", d.quarantine_reason);
    append_nrcpt(text, context);
    if (!d.error.empty()) append_quoted(text, " error=", d.error);
    lines.push_back({level, std::move(text)});
    return lines;
}

}  // namespace pm
