// SPDX-License-Identifier: BSD-2-Clause
#include "policy/evaluator.h"

#include <re2/re2.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "policy/field_value.h"

namespace pm {

namespace {

// The tempfail of a failure of our own (a store, a DNS list), a code every stage allows
// (policy-milter.rules(5), REPLY CODES): 421 ends the session, which is all that the
// connect, helo and unknown stages allow.
int local_tempfail_code(Stage stage) {
    switch (stage) {
        case Stage::Connect:
        case Stage::Helo:
        case Stage::Unknown: return 421;
        case Stage::Vrfy: return 450;
        case Stage::Etrn: return 458;
        default: return 451;
    }
}

bool compare_numbers(std::uint64_t value, CompareOp op, std::uint64_t literal) {
    switch (op) {
        case CompareOp::Eq: return value == literal;
        case CompareOp::NotEq: return value != literal;
        case CompareOp::Less: return value < literal;
        case CompareOp::LessEq: return value <= literal;
        case CompareOp::Greater: return value > literal;
        case CompareOp::GreaterEq: return value >= literal;
    }
    return false;
}

bool prefix_contains(const IpPrefix& p, const IpAddress& ip) {
    if (p.address.v6 != ip.v6) return false;
    return mask_ip(ip, p.length) == p.address;
}

bool matches(const Condition& c, const Facts& facts, const Address* rcpt) {
    if (!c.regex) return false;
    std::string scratch;
    std::string_view value = match_window(raw_value(c.field, facts, rcpt, scratch));
    // RE2::Match itself: PartialMatch with no captures comes to the same call, through an
    // argument-unpacking layer that costs about a sixth of a short match.
    return c.regex->Match(re2::StringPiece(value.data(), value.size()), 0, value.size(),
                          RE2::UNANCHORED, nullptr, 0);
}

// What the DNS lists read by one statement's condition found: the TXT of the last that
// matched ({dnsbl.txt}), an `on-error tempfail` list that could not answer, and the notes
// for the log. One per thread, set by evaluate() around its loop: condition_holds() keeps
// its signature for the callers that read no DNS list.
struct DnsTrace {
    std::string txt;
    const DnsList* failed = nullptr;
    std::string failure;  // the failed list's note
    Decision* decision = nullptr;
    // Set to ask whether the condition would hold had the failed `on-error tempfail`
    // lists answered "listed": only then could their lookup have decided the rule.
    bool assume_listed = false;
};
thread_local DnsTrace* t_dns_trace = nullptr;

void add_note(std::vector<std::string>& notes, std::string note) {
    if (std::find(notes.begin(), notes.end(), note) == notes.end())
        notes.push_back(std::move(note));
}

// `in` for a lookup that failed: false, but true for an `on-error tempfail` list while
// the trace assumes it listed.
bool note_dns_failure(const DnsList& list, const std::string& name, std::string_view why) {
    DnsTrace* trace = t_dns_trace;
    if (!trace) return false;
    std::string note = "dns list " + list.name + " (" + list.zone + "): lookup of " + name +
                       " failed: " + std::string(why) + "; not listed";
    if (list.on_error_tempfail && !trace->failed) {
        trace->failed = &list;
        trace->failure = note;
    }
    if (trace->decision) add_note(trace->decision->dns_warnings, std::move(note));
    return trace->assume_listed && list.on_error_tempfail;
}

bool dns_in(const Condition& c, const Facts& facts, const Address* rcpt) {
    const DnsList& list = *c.dns;
    std::optional<std::string> name;
    if (c.field.id == FieldId::ClientIp) {
        if (facts.client_ip) name = dns_query_name(list, *facts.client_ip);
    } else {
        name = dns_query_name(list, lower_value(c.field, facts, rcpt));
    }
    if (!name) return false;  // no value, or one never sent to DNS
    auto it = facts.dns.find(*name);
    if (it == facts.dns.end()) return note_dns_failure(list, *name, "no answer");
    const DnsAnswer& answer = it->second;
    if (answer.status == DnsAnswer::Status::Failed)
        return note_dns_failure(list, *name, answer.error);
    bool refused = false;
    bool listed = dns_list_matches(list, answer, refused);
    DnsTrace* trace = t_dns_trace;
    if (refused && trace && trace->decision)
        add_note(trace->decision->dns_errors,
                 "dns list " + list.name + " (" + list.zone + ") answered 127.255.255.x for " +
                     *name + ": the query was refused or the quota is spent; not listed");
    if (listed && trace) trace->txt = answer.txt;
    return listed;
}

bool in_list(const Condition& c, const Facts& facts, const Address* rcpt) {
    if (c.dns) return dns_in(c, facts, rcpt);
    if (!c.list) return false;
    switch (c.field.info().type) {
        case ValueType::Ip: return facts.client_ip && c.list->contains_ip(*facts.client_ip);
        case ValueType::Address:
            return c.list->contains_address(c.field.id == FieldId::Sender ? facts.sender : *rcpt);
        case ValueType::Host: return c.list->contains_host(lower_value(c.field, facts, rcpt));
        case ValueType::Number: return c.list->contains_number(number_value(c.field, facts));
        case ValueType::Text: return c.list->contains_text(lower_value(c.field, facts, rcpt));
        case ValueType::Bool: return false;
    }
    return false;
}

bool compare(const Condition& c, const Facts& facts, const Address* rcpt) {
    bool equal = false;
    switch (c.field.info().type) {
        case ValueType::Number:
            return compare_numbers(number_value(c.field, facts), c.op, c.number);
        case ValueType::Ip:
            equal = facts.client_ip && prefix_contains(*c.prefix, *facts.client_ip);
            break;
        case ValueType::Host:
        case ValueType::Address:
        case ValueType::Text:
        case ValueType::Bool: equal = lower_value(c.field, facts, rcpt) == c.text; break;
    }
    return c.op == CompareOp::Eq ? equal : !equal;
}

bool atom_holds(const Condition& c, const Facts& facts, const Address* rcpt) {
    switch (c.kind) {
        case Condition::Kind::Truth: return facts.tls;
        case Condition::Kind::Body:
            return c.body_index < facts.body_hits.size() && facts.body_hits[c.body_index] != 0;
        case Condition::Kind::Matches: return matches(c, facts, rcpt);
        case Condition::Kind::InList: return in_list(c, facts, rcpt);
        case Condition::Kind::Compare: return compare(c, facts, rcpt);
        case Condition::Kind::And:
        case Condition::Kind::Or:
        case Condition::Kind::Not: return false;  // composites: condition_holds
    }
    return false;
}

// The statements to run, in file order: the unindexed ones plus those filed under the
// event's value of each indexed field.
const std::vector<std::uint32_t>& candidates(const StagePolicy& sp, const Facts& facts) {
    if (sp.indexes.empty()) return sp.unindexed;
    // Kept from event to event (one per thread, as evaluations run on many): a new vector
    // at every event would cost an allocation.
    thread_local std::vector<std::uint32_t> merged;
    merged.assign(sp.unindexed.begin(), sp.unindexed.end());
    for (const auto& idx : sp.indexes) {
        auto it = idx.by_value.find(lower_value(idx.field, facts, &facts.recipient));
        if (it != idx.by_value.end())
            merged.insert(merged.end(), it->second.begin(), it->second.end());
    }
    std::sort(merged.begin(), merged.end());
    return merged;
}

bool refusing(ActionKind kind) {
    return kind == ActionKind::Reject || kind == ActionKind::Tempfail;
}

// A refusal as it answers at `stage`, which for a limit refused at commit may come after
// its own. --soft-bounce makes a reject the stage's default tempfail with a class 4
// enhanced code (policy-milter(8)); a code the stage does not allow becomes its default.
struct Refused {
    ActionKind kind;
    Reply reply;
};

Refused refusal(const Action& a, Stage stage, const Facts& facts, bool soft_bounce,
                std::string_view dnsbl_txt = {}) {
    Refused r{a.kind, {a.code, a.enhanced, {}}};
    // Not at unknown: refusing a command loses no mail, and its one tempfail, 421, would
    // end the session (Postfix's own soft_bounce leaves its 502 alone too).
    if (soft_bounce && a.kind == ActionKind::Reject && stage != Stage::Unknown) {
        r.kind = ActionKind::Tempfail;
        r.reply.code = default_code(stage, Refusal::Tempfail);
        r.reply.enhanced.klass = 4;
    }
    Refusal kind = r.kind == ActionKind::Reject ? Refusal::Reject : Refusal::Tempfail;
    if (!code_allowed(stage, kind, r.reply.code)) r.reply.code = default_code(stage, kind);
    std::string text = !a.text.empty() ? a.text.expand(facts, stage, dnsbl_txt)
                       : r.kind == ActionKind::Reject
                           ? "Rejected by policy"
                           : "Temporarily rejected by policy, try again later";
    std::size_t prefix = 4 + r.reply.enhanced.to_string().size() + 1;  // "550 5.7.1 "
    r.reply.text = sanitize_reply_text(text, prefix);
    return r;
}

std::uint64_t limit_amount(const Statement& st, const std::string& key, const Facts& facts,
                           const LimitLedger& ledger) {
    if (st.stage == Stage::Helo && ledger.helo_counted()) return 0;  // a repeated EHLO
    switch (st.limit->unit) {
        case LimitUnit::Messages:
            // A message counts once per key however many events look at it.
            return ledger.staged(key) ? 0 : 1;
        case LimitUnit::Recipients: return st.stage == Stage::Rcpt ? 1 : facts.rcpt_count;
        case LimitUnit::Bytes:
            return st.stage == Stage::Mail ? facts.mail_size : facts.message_size;
    }
    return 0;
}

// Stages a limit's count; true when it goes over the max and the limit acts. A store
// that cannot answer passes the limit with a note, or makes `d` its refusal and `failed`.
bool limit_over(const Statement& st, Stage stage, const Facts& facts, LimitLedger& ledger,
                const EvaluationOptions& options, Decision& d, bool& failed) {
    LimitRequest r;
    r.key = limit_key(st, facts);
    r.amount = limit_amount(st, r.key, facts, ledger);
    r.statement = &st;
    r.enforce = !st.observe && !options.observe_all && refusing(st.action.kind);
    LimitLedger::Check check = ledger.stage(std::move(r));
    switch (check.store) {
        case StoreAnswer::Answered: return check.over;
        case StoreAnswer::Passed:
            d.error = "limit \"" + st.id + "\": store unavailable, passing: " + check.error;
            d.store_error = true;
            return false;
        case StoreAnswer::Failed:
            refuse_store_failure(d, stage, st.id, check.error);
            failed = true;
            return false;
    }
    return false;
}

// Carries out the action of a statement that applies; true when it decides the event.
bool act(const Statement& st, Stage stage, const Facts& facts, const EvaluationOptions& options,
         Decision& d, std::string_view txt) {
    const Action& a = st.action;
    ActionKind kind = a.kind;
    std::optional<Reply> reply;
    if (refusing(kind)) {
        Refused r = refusal(a, stage, facts, options.soft_bounce, txt);
        kind = r.kind;
        reply = std::move(r.reply);
    }
    if (st.observe || options.observe_all) {
        RuleHit hit{st.id, kind, std::move(reply), {}};
        if (kind == ActionKind::Quarantine) hit.detail = a.text.expand(facts, stage, txt);
        if (kind == ActionKind::AddHeader)
            hit.detail = a.header_name + ": " + a.text.expand(facts, stage, txt);
        d.observed.push_back(std::move(hit));
        return false;
    }
    if (kind == ActionKind::AddHeader) {
        std::string value = sanitize_text(a.text.expand(facts, stage, txt), kMaxHeaderValue);
        d.added.push_back({st.id, kind, std::nullopt, a.header_name + ": " + value});
        d.headers_to_add.emplace_back(a.header_name, std::move(value));
        return false;
    }
    d.rule_id = st.id;
    d.reply = std::move(reply);
    d.verdict = verdict_of(kind);
    if (kind == ActionKind::Quarantine)
        d.quarantine_reason = sanitize_text(a.text.expand(facts, stage, txt), kMaxQuarantineReason);
    return true;
}

// The reply of a greylist rule that refuses, `remaining_s` before a retry can pass.
void greylist_refusal(const Statement& st, Stage stage, const Facts& facts,
                      const EvaluationOptions& options, std::uint64_t remaining_s,
                      std::string_view txt, Decision& d) {
    const Action& a = st.action;
    std::string text = a.text.empty() ? "Greylisted, try again later"
                                      : a.text.expand(facts, stage, txt, remaining_s);
    std::size_t prefix = 4 + a.enhanced.to_string().size() + 1;
    Reply reply{a.code, a.enhanced, sanitize_reply_text(text, prefix)};
    if (st.observe || options.observe_all) {
        d.observed.push_back({st.id, ActionKind::Tempfail, std::move(reply), {}});
        return;
    }
    d.rule_id = st.id;
    d.reply = std::move(reply);
    d.verdict = Verdict::Tempfail;
}

// Asks the store about one triplet: false when the store failed and refuses the event.
bool greylist_one(const Statement& st, Stage stage, GreylistRequest& r, LimitLedger& ledger,
                  Decision& d, std::uint64_t& refused_ms, bool& refused) {
    LimitLedger::GreylistCheck c = ledger.greylist(r);
    switch (c.store) {
        case StoreAnswer::Answered:
            if (!c.answer.pass) {
                refused = true;
                refused_ms = std::max(refused_ms, c.answer.remaining_ms);
            }
            return true;
        case StoreAnswer::Passed:
            d.error = "greylist \"" + st.id + "\": store unavailable, passing: " + c.error;
            d.store_error = true;
            return true;
        case StoreAnswer::Failed:
            refuse_store_failure(d, stage, st.id, c.error);
            d.error = "greylist \"" + st.id + "\": store unavailable: " + c.error;
            return false;
    }
    return true;
}

// A greylist rule whose condition holds: each triplet of the event (the recipient's at
// rcpt, every accepted recipient's at data) is asked for. True when it decides the event.
bool greylisted(const Statement& st, Stage stage, const Facts& facts, LimitLedger& ledger,
                const EvaluationOptions& options, Decision& d, std::string_view txt) {
    std::string network = greylist_client_network(facts.client_ip, options.greylist);
    std::string sender = normalise_greylist_sender(facts.sender.lower());
    GreylistRequest r;
    r.client = greylist_client_key(network);
    // A duration of the rules is any number of seconds that fits 64 bits: in ms it may
    // not, and a wrapped window could end before the delay (no retry would ever pass).
    auto ms = [](std::uint64_t s) { return s > UINT64_MAX / 1000 ? UINT64_MAX : s * 1000; };
    r.delay_ms = ms(st.action.greylist.delay);
    r.window_ms = ms(st.action.greylist.window);
    r.expire_ms = ms(st.action.greylist.expire);
    r.auto_whitelist = options.greylist.auto_whitelist;
    std::uint64_t remaining_ms = 0;
    bool refused = false;
    auto one = [&](const Address& rcpt) {
        r.triplet = greylist_triplet_key(network, sender, rcpt.lower());
        return greylist_one(st, stage, r, ledger, d, remaining_ms, refused);
    };
    if (stage == Stage::Rcpt) {
        if (!one(facts.recipient)) return true;
    } else {
        for (const Address& rcpt : facts.accepted_recipients)
            if (!one(rcpt)) return true;
    }
    if (!refused) return false;
    greylist_refusal(st, stage, facts, options, (remaining_ms + 999) / 1000, txt, d);
    return d.verdict != Verdict::Continue;
}

// A rule whose condition read an `on-error tempfail` DNS list that could not answer: the
// stage's default tempfail (421 at connect and helo, 451 4.4.3 after).
void refuse_dns_failure(Decision& d, Stage stage, const Statement& st, const DnsTrace& trace) {
    d.verdict = Verdict::Tempfail;
    d.rule_id = st.id;
    d.reply =
        Reply{local_tempfail_code(stage), {4, 4, 3}, "DNS list lookup failed, try again later"};
    d.error = trace.failure + " (on-error tempfail)";
    d.headers_to_add.clear();
    d.quarantine_reason.clear();
}

// True if `when` would hold had the failed `on-error tempfail` lists of `trace` listed the
// value: a rule such as `client.ip in strict and sender == "x"` tempfails only for x.
bool dns_could_decide(const Condition& when, const Facts& facts, Stage stage, DnsTrace& trace) {
    trace.assume_listed = true;
    bool holds = condition_holds(when, facts, stage);
    trace.assume_listed = false;
    return holds;
}

// Sets the thread's DnsTrace for the time of one evaluation.
struct DnsTraceScope {
    explicit DnsTraceScope(DnsTrace& trace) : saved(t_dns_trace) { t_dns_trace = &trace; }
    ~DnsTraceScope() { t_dns_trace = saved; }
    DnsTraceScope(const DnsTraceScope&) = delete;
    DnsTraceScope& operator=(const DnsTraceScope&) = delete;
    DnsTrace* saved;
};

}  // namespace

Decision evaluate(const Policy& policy, Stage stage, const Facts& facts, LimitLedger& ledger,
                  const EvaluationOptions& options) {
    Decision d;  // the only variable returned: built in the caller's place (NRVO)
    d.stage = stage;
    DnsTrace trace;
    trace.decision = &d;
    DnsTraceScope scope(trace);
    for (std::uint32_t i : candidates(policy.stage(stage), facts)) {
        const Statement& st = policy.statements()[i];
        trace.txt.clear();
        trace.failed = nullptr;
        if (st.when && !condition_holds(*st.when, facts, stage)) {
            if (trace.failed && !st.observe && !options.observe_all &&
                dns_could_decide(*st.when, facts, stage, trace)) {
                refuse_dns_failure(d, stage, st, trace);
                return d;
            }
            continue;
        }
        bool failed = false;
        if (st.is_limit() && !limit_over(st, stage, facts, ledger, options, d, failed)) {
            if (failed) return d;
            continue;
        }
        if (st.action.kind == ActionKind::Greylist) {
            if (greylisted(st, stage, facts, ledger, options, d, trace.txt)) break;
            continue;
        }
        if (act(st, stage, facts, options, d, trace.txt)) break;
    }
    return d;
}

bool condition_holds(const Condition& c, const Facts& facts, Stage stage) {
    switch (c.kind) {
        case Condition::Kind::And:
            for (const auto& child : c.children)
                if (!condition_holds(child, facts, stage)) return false;
            return true;
        case Condition::Kind::Or:
            for (const auto& child : c.children)
                if (condition_holds(child, facts, stage)) return true;
            return false;
        case Condition::Kind::Not: return !condition_holds(c.children[0], facts, stage);
        case Condition::Kind::Compare:
        case Condition::Kind::InList:
        case Condition::Kind::Matches:
        case Condition::Kind::Truth:
        case Condition::Kind::Body: break;
    }
    // After rcpt, a recipient field is true of any accepted recipient (vrfy has its own one).
    if (c.field.info().per_recipient && (stage == Stage::Data || stage == Stage::Message)) {
        for (const auto& r : facts.accepted_recipients)
            if (atom_holds(c, facts, &r)) return true;
        return false;
    }
    return atom_holds(c, facts, &facts.recipient);
}

namespace {

// The client.ip part of a key: empty without an address.
void append_ip_part(std::string& key, const LimitKeyField& k, std::optional<IpAddress> ip) {
    if (!ip) return;
    if (k.prefix_length) {
        // client.ip/64 groups IPv6 clients; an IPv4 client is grouped by the same share of
        // its own 32 bits only if the length fits, else kept whole.
        unsigned len = *k.prefix_length;
        ip = ip->v6 ? mask_ip(*ip, len) : mask_ip(*ip, len <= 32 ? len : 32);
    }
    key += ip->to_string();
}

// An administrator's value for a text field, normalised as Facts and Address normalise
// the session's (policy/facts.h); nullopt if no session can have it.
std::optional<std::string> normalised_text(FieldId id, const std::string& v) {
    Facts f;
    switch (id) {
        case FieldId::ClientName: f.set_client(std::nullopt, v, 0); return f.client_name_lower;
        case FieldId::Helo: f.set_helo(v); return f.helo_lower;
        case FieldId::ClientPtr:
        case FieldId::Domain: return normalize_host(v);
        case FieldId::Sender:
        case FieldId::Recipient: return Address::from_smtp(v).lower();
        case FieldId::SenderDomain:
        case FieldId::RecipientDomain:
            if (v.find('@') != std::string::npos) return std::nullopt;
            return std::string(Address::from_smtp("x@" + v).domain());
        default: return ascii_lower(v);  // local parts, auth.user, header values
    }
}

// 1 to 20 digits, at most 2^64-1.
std::optional<std::uint64_t> decimal(const std::string& v) {
    if (v.empty() || v.size() > 20 || v.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    std::uint64_t n = 0;
    for (char c : v) {
        auto digit = static_cast<std::uint64_t>(c - '0');
        if (n > (UINT64_MAX - digit) / 10) return std::nullopt;
        n = n * 10 + digit;
    }
    return n;
}

}  // namespace

std::string limit_key(const Statement& limit, const Facts& facts) {
    std::string key = limit.id;
    for (const auto& k : limit.limit->key) {
        key += '\x1f';
        if (k.field.id == FieldId::ClientIp)
            append_ip_part(key, k, facts.client_ip);
        else if (k.field.info().type == ValueType::Number)
            key += std::to_string(number_value(k.field, facts));
        else
            key += lower_value(k.field, facts, &facts.recipient);
    }
    return key;
}

std::string limit_key_fields(const Limit& limit) {
    std::string out;
    for (const auto& k : limit.key) {
        if (!out.empty()) out += ", ";
        out += k.field.display();
        if (k.prefix_length) out += "/" + std::to_string(*k.prefix_length);
    }
    return out;
}

std::optional<std::string> limit_key_of_values(const Statement& limit,
                                               std::span<const std::string> values,
                                               std::string& why) {
    const auto& fields = limit.limit->key;
    if (values.size() != fields.size()) {
        why = "limit " + limit.id + " has " + std::to_string(fields.size()) + " key field" +
              (fields.size() == 1 ? "" : "s") + " (" + limit_key_fields(*limit.limit) +
              "), given " + std::to_string(values.size()) + " value" +
              (values.size() == 1 ? "" : "s");
        return std::nullopt;
    }
    std::string key = limit.id;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const LimitKeyField& k = fields[i];
        const std::string& v = values[i];
        std::string name = k.field.display();
        // The separator inside a value would make ("a\x1fb", "c") and ("a", "b\x1fc") one key.
        if (v.find('\x1f') != std::string::npos) {
            why = name + ": a value holds no \\x1f (the key separator)";
            return std::nullopt;
        }
        key += '\x1f';
        if (k.field.id == FieldId::ClientIp) {
            auto ip = parse_ip(v);
            if (!ip && !v.empty()) {
                why = name + ": not an IP address (empty for a client without one)";
                return std::nullopt;
            }
            append_ip_part(key, k, ip);
        } else if (k.field.info().type == ValueType::Number) {
            auto n = decimal(v);
            if (!n) {
                why = name + ": not a number from 0 to 2^64-1";
                return std::nullopt;
            }
            key += std::to_string(*n);
        } else if (auto text = normalised_text(k.field.id, v)) {
            key += *text;
        } else {
            why = name + ": a domain holds no '@'";
            return std::nullopt;
        }
    }
    return key;
}

void refuse_full_limit(Decision& d, const Statement& limit, Stage stage, const Facts& facts,
                       const EvaluationOptions& options) {
    Refused r = refusal(limit.action, stage, facts, options.soft_bounce);
    d.verdict = verdict_of(r.kind);
    d.rule_id = limit.id;
    d.reply = std::move(r.reply);
    d.headers_to_add.clear();
    d.quarantine_reason.clear();
    d.error = "limit \"" + limit.id + "\" reached by concurrent transactions before this one ended";
}

void refuse_store_failure(Decision& d, Stage stage, const std::string& id, std::string_view error) {
    d.verdict = Verdict::Tempfail;
    d.rule_id = id;
    d.reply =
        Reply{local_tempfail_code(stage), {4, 3, 0}, "Local error in processing, try again later"};
    d.error = "limit \"" + id + "\": store unavailable: " + std::string(error);
    d.store_error = true;
    d.headers_to_add.clear();
    d.quarantine_reason.clear();
}

}  // namespace pm
