// SPDX-License-Identifier: BSD-2-Clause
#include "policy/conversation.h"

#include <re2/re2.h>

#include <algorithm>

namespace pm {

namespace {

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

// Lower-case value of a text-like field, for ==, lists and the rule index.
std::string_view lower_value(const FieldRef& f, const Facts& facts, const Address* rcpt) {
    switch (f.id) {
        case FieldId::ClientName: return facts.client_name_lower;
        case FieldId::Helo: return facts.helo_lower;
        case FieldId::Sender: return facts.sender.lower();
        case FieldId::SenderLocal: return facts.sender.local();
        case FieldId::SenderDomain: return facts.sender.domain();
        case FieldId::AuthUser: return facts.auth_user_lower;
        case FieldId::Recipient: return rcpt->lower();
        case FieldId::RecipientLocal: return rcpt->local();
        case FieldId::RecipientDomain: return rcpt->domain();
        default: return {};
    }
}

std::uint64_t number_value(const FieldRef& f, const Facts& facts) {
    switch (f.id) {
        case FieldId::ClientPort: return facts.client_port;
        case FieldId::MailSize: return facts.mail_size;
        case FieldId::RcptCount: return facts.rcpt_count;
        case FieldId::MessageSize: return facts.message_size;
        default: return 0;
    }
}

Decision undecided(Stage stage) {
    Decision d;
    d.stage = stage;
    return d;
}

}  // namespace

// The value as the client wrote it, for regexes, templates and limit keys. Numbers and
// addresses are formatted into `scratch`; everything else is a view of the facts.
static std::string_view raw_value(const FieldRef& f, const Facts& facts, const Address* rcpt,
                                  std::string& scratch) {
    switch (f.id) {
        case FieldId::ClientIp:
            scratch = facts.client_ip ? facts.client_ip->to_string() : "";
            return scratch;
        case FieldId::ClientName: return facts.client_name;
        case FieldId::Helo: return facts.helo;
        case FieldId::Sender: return facts.sender.raw();
        case FieldId::SenderLocal: return facts.sender.raw_local();
        case FieldId::SenderDomain: return facts.sender.raw_domain();
        case FieldId::AuthUser: return facts.auth_user;
        case FieldId::Tls: return facts.tls ? "yes" : "no";
        case FieldId::Recipient: return rcpt ? std::string_view(rcpt->raw()) : "";
        case FieldId::RecipientLocal: return rcpt ? rcpt->raw_local() : "";
        case FieldId::RecipientDomain: return rcpt ? rcpt->raw_domain() : "";
        case FieldId::Header: return facts.header(f.header);
        default: scratch = std::to_string(number_value(f, facts)); return scratch;
    }
}

std::string Template::expand(const Facts& facts, Stage stage) const {
    std::string out;
    for (const auto& part : parts) {
        if (!part.field) {
            out += part.literal;
            continue;
        }
        const FieldRef& f = *part.field;
        bool many = f.info().per_recipient && stage_index(stage) > stage_index(Stage::Rcpt);
        std::string scratch;
        if (!many) {
            out += raw_value(f, facts, &facts.recipient, scratch);
            continue;
        }
        for (std::size_t i = 0; i < facts.accepted_recipients.size(); ++i) {
            if (i > 0) out += ", ";
            out += raw_value(f, facts, &facts.accepted_recipients[i], scratch);
        }
    }
    return out;
}

Conversation::Conversation(PolicySource source, CounterStore& store, ConversationOptions options)
    : source_(std::move(source)), store_(store), options_(options), policy_(source_()) {}

bool Conversation::atom_holds(const Condition& c, const Address* rcpt) const {
    const FieldInfo& info = c.field.info();
    switch (c.kind) {
        case Condition::Kind::Truth: return facts_.tls;
        case Condition::Kind::Matches: {
            if (!c.regex) return false;
            std::string scratch;
            std::string_view value = match_window(raw_value(c.field, facts_, rcpt, scratch));
            // RE2::Match itself: PartialMatch with no captures comes to the same call, through
            // an argument-unpacking layer that costs about a sixth of a short match.
            return c.regex->Match(re2::StringPiece(value.data(), value.size()), 0, value.size(),
                                  RE2::UNANCHORED, nullptr, 0);
        }
        case Condition::Kind::InList: {
            if (!c.list) return false;
            switch (info.type) {
                case ValueType::Ip:
                    return facts_.client_ip && c.list->contains_ip(*facts_.client_ip);
                case ValueType::Address:
                    return c.list->contains_address(c.field.id == FieldId::Sender ? facts_.sender
                                                                                  : *rcpt);
                case ValueType::Host:
                    return c.list->contains_host(lower_value(c.field, facts_, rcpt));
                case ValueType::Number:
                    return c.list->contains_number(number_value(c.field, facts_));
                case ValueType::Text:
                    if (c.field.id == FieldId::Header)
                        return c.list->contains_text(ascii_lower(facts_.header(c.field.header)));
                    return c.list->contains_text(lower_value(c.field, facts_, rcpt));
                case ValueType::Bool: return false;
            }
            return false;
        }
        case Condition::Kind::Compare: {
            bool equal = false;
            switch (info.type) {
                case ValueType::Number:
                    return compare_numbers(number_value(c.field, facts_), c.op, c.number);
                case ValueType::Ip:
                    equal = facts_.client_ip && prefix_contains(*c.prefix, *facts_.client_ip);
                    break;
                case ValueType::Text:
                    if (c.field.id == FieldId::Header) {
                        equal = ascii_lower(facts_.header(c.field.header)) == c.text;
                        break;
                    }
                    [[fallthrough]];
                default: equal = lower_value(c.field, facts_, rcpt) == c.text; break;
            }
            return c.op == CompareOp::Eq ? equal : !equal;
        }
        default: return false;
    }
}

bool Conversation::condition_holds(const Condition& c, Stage stage) const {
    switch (c.kind) {
        case Condition::Kind::And:
            for (const auto& child : c.children)
                if (!condition_holds(child, stage)) return false;
            return true;
        case Condition::Kind::Or:
            for (const auto& child : c.children)
                if (condition_holds(child, stage)) return true;
            return false;
        case Condition::Kind::Not: return !condition_holds(c.children[0], stage);
        default: break;
    }
    // After rcpt a recipient condition holds when any accepted recipient satisfies it.
    if (c.field.info().per_recipient && stage_index(stage) > stage_index(Stage::Rcpt)) {
        for (const auto& r : facts_.accepted_recipients)
            if (atom_holds(c, &r)) return true;
        return false;
    }
    return atom_holds(c, &facts_.recipient);
}

Reply Conversation::make_reply(const Action& a, Stage stage) const {
    Reply r;
    r.code = a.code;
    r.enhanced = a.enhanced;
    std::string text = a.text.empty() ? std::string(a.kind == ActionKind::Reject
                                                        ? "Rejected by policy"
                                                        : "Temporarily rejected by policy, try "
                                                          "again later")
                                      : a.text.expand(facts_, stage);
    std::size_t prefix = 4 + r.enhanced.to_string().size() + 1;  // "550 5.7.1 "
    r.text = sanitize_reply_text(text, prefix);
    return r;
}

std::string Conversation::limit_key(const Statement& st) const {
    std::string key = st.id;
    for (const auto& k : st.limit->key) {
        key += '\x1f';
        if (k.field.id == FieldId::ClientIp) {
            if (!facts_.client_ip) continue;
            IpAddress ip = *facts_.client_ip;
            if (k.prefix_length) {
                // client.ip/64 groups IPv6 clients; an IPv4 client is grouped by the same
                // share of its own 32 bits only if the length fits, else kept whole.
                unsigned len = *k.prefix_length;
                ip = ip.v6 ? mask_ip(ip, len) : mask_ip(ip, len <= 32 ? len : 32);
            }
            key += ip.to_string();
            continue;
        }
        switch (k.field.info().type) {
            case ValueType::Number: key += std::to_string(number_value(k.field, facts_)); break;
            case ValueType::Text:
                if (k.field.id == FieldId::Header) {
                    key += ascii_lower(facts_.header(k.field.header));
                    break;
                }
                [[fallthrough]];
            default: key += lower_value(k.field, facts_, &facts_.recipient); break;
        }
    }
    return key;
}

std::uint64_t Conversation::limit_amount(const Statement& st, const std::string& key) const {
    if (st.stage == Stage::Helo && helo_counted_) return 0;  // a repeated EHLO, counted once
    switch (st.limit->unit) {
        case LimitUnit::Messages:
            // A message counts once per key however many events look at it.
            return pending_.count(key) || event_pending_.count(key) ? 0 : 1;
        case LimitUnit::Recipients: return st.stage == Stage::Rcpt ? 1 : facts_.rcpt_count;
        case LimitUnit::Bytes:
            return st.stage == Stage::Mail ? facts_.mail_size : facts_.message_size;
    }
    return 0;
}

Decision Conversation::evaluate(Stage stage) {
    Decision d;
    d.stage = stage;
    event_pending_.clear();
    const Policy& policy = *policy_;
    const StagePolicy& sp = policy.stage(stage);

    // Candidates in file order: the unindexed statements plus those filed under the
    // event's value of each indexed field.
    const std::vector<std::uint32_t>* order = &sp.unindexed;
    if (!sp.indexes.empty()) {
        candidates_.assign(sp.unindexed.begin(), sp.unindexed.end());
        for (const auto& idx : sp.indexes) {
            std::string_view v = idx.field.id == FieldId::Header
                                     ? std::string_view{}
                                     : lower_value(idx.field, facts_, &facts_.recipient);
            std::string header_value;
            if (idx.field.id == FieldId::Header) {
                header_value = ascii_lower(facts_.header(idx.field.header));
                v = header_value;
            }
            auto it = idx.by_value.find(v);
            if (it != idx.by_value.end())
                candidates_.insert(candidates_.end(), it->second.begin(), it->second.end());
        }
        std::sort(candidates_.begin(), candidates_.end());
        order = &candidates_;
    }

    for (std::uint32_t i : *order) {
        const Statement& st = policy.statements()[i];
        if (st.when && !condition_holds(*st.when, stage)) continue;
        if (st.is_limit()) {
            std::string key = limit_key(st);
            std::uint64_t amount = limit_amount(st, key);
            std::uint64_t committed = 0;
            try {
                committed = store_.count(key, st.limit->window_seconds);
            } catch (const StoreError& e) {
                if (options_.on_store_error == StoreErrorMode::Pass) {
                    d.error = "limit \"" + st.id + "\": store unavailable, passing: " + e.what();
                    continue;
                }
                // Assigned, then returned: with `d` the only variable returned, it is built
                // in the caller's place (NRVO) instead of moved out at every event.
                d = store_failure(std::move(d), stage, st.id, e.what());
                return d;
            }
            std::uint64_t already = 0;
            if (auto p = pending_.find(key); p != pending_.end()) already = p->second.amount;
            auto& staged = event_pending_[key];
            staged.amount = saturating_add(staged.amount, amount);
            staged.window_seconds = st.limit->window_seconds;
            staged.statement = &st;
            staged.enforce =
                !st.observe && !options_.observe_all &&
                (st.action.kind == ActionKind::Reject || st.action.kind == ActionKind::Tempfail);
            if (saturating_add(saturating_add(committed, already), amount) <= st.limit->max)
                continue;
        }

        ActionKind kind = st.action.kind;
        std::optional<Reply> reply;
        if (kind == ActionKind::Reject || kind == ActionKind::Tempfail) {
            Action a = st.action;
            if (options_.soft_bounce && kind == ActionKind::Reject) {
                a.kind = kind = ActionKind::Tempfail;
                a.code = default_code(stage, Refusal::Tempfail);
                a.enhanced.klass = 4;
            }
            reply = make_reply(a, stage);
        }
        if (st.observe || options_.observe_all) {
            RuleHit hit{st.id, kind, reply, {}};
            if (kind == ActionKind::Quarantine) hit.detail = st.action.text.expand(facts_, stage);
            if (kind == ActionKind::AddHeader)
                hit.detail = st.action.header_name + ": " + st.action.text.expand(facts_, stage);
            d.observed.push_back(std::move(hit));
            continue;
        }
        if (kind == ActionKind::AddHeader) {
            std::string value =
                sanitize_text(st.action.text.expand(facts_, stage), kMaxHeaderValue);
            d.headers_to_add.emplace_back(st.action.header_name, value);
            d.added.push_back({st.id, kind, std::nullopt, st.action.header_name + ": " + value});
            continue;
        }
        d.rule_id = st.id;
        d.reply = reply;
        switch (kind) {
            case ActionKind::Pass: d.verdict = Verdict::Pass; break;
            case ActionKind::Accept: d.verdict = Verdict::Accept; break;
            case ActionKind::Reject: d.verdict = Verdict::Reject; break;
            case ActionKind::Tempfail: d.verdict = Verdict::Tempfail; break;
            case ActionKind::Discard: d.verdict = Verdict::Discard; break;
            case ActionKind::Quarantine:
                d.verdict = Verdict::Quarantine;
                d.quarantine_reason =
                    sanitize_text(st.action.text.expand(facts_, stage), kMaxQuarantineReason);
                break;
            case ActionKind::AddHeader: break;
        }
        break;
    }

    if (!d.refused())
        for (auto& [key, p] : event_pending_) {
            auto& total = pending_[key];
            total.amount = saturating_add(total.amount, p.amount);
            total.window_seconds = p.window_seconds;
            total.statement = p.statement;
            total.enforce = p.enforce;
        }
    event_pending_.clear();
    return d;
}

Decision Conversation::store_failure(Decision d, Stage stage, const std::string& id,
                                     const char* what) const {
    d.verdict = Verdict::Tempfail;
    d.rule_id = id;
    Action a;
    a.kind = ActionKind::Tempfail;
    a.code = stage_index(stage) <= stage_index(Stage::Helo) ? 421 : 451;
    a.enhanced = {4, 3, 0};
    d.reply = make_reply(a, stage);
    d.reply->text = "Local error in processing, try again later";
    d.error = "limit \"" + id + "\": store unavailable: " + what;
    d.headers_to_add.clear();
    d.quarantine_reason.clear();
    return d;
}

const Statement* Conversation::commit_pending(bool enforce) {
    std::vector<CounterAdd> adds;
    std::vector<const Statement*> owners;
    for (const auto& [key, p] : pending_) {
        if (p.amount == 0) continue;
        std::uint64_t max = enforce && p.enforce ? p.statement->limit->max : CounterAdd::kNoMax;
        adds.push_back({key, p.amount, p.window_seconds, max});
        owners.push_back(p.statement);
    }
    pending_.clear();
    if (adds.empty()) return nullptr;
    auto full = store_.check_and_add(adds);
    return full ? owners[*full] : nullptr;
}

void Conversation::commit_or_refuse(Decision& d, Stage stage) {
    std::string first_id =
        pending_.empty() ? std::string() : pending_.begin()->second.statement->id;
    const Statement* full = nullptr;
    try {
        full = commit_pending(true);
    } catch (const StoreError& e) {
        if (options_.on_store_error == StoreErrorMode::Pass) {
            d.error = "limit \"" + first_id + "\": store unavailable, not counted: " + e.what();
            return;
        }
        d = store_failure(std::move(d), stage, first_id, e.what());
        return;
    }
    if (!full) return;
    // Other transactions (in this process or, with a shared store, on other MTAs) took
    // what was left of the limit between this transaction's check and its end: it is
    // refused now with the limit's action, in a code this stage allows.
    Action a = full->action;
    Refusal kind = a.kind == ActionKind::Reject ? Refusal::Reject : Refusal::Tempfail;
    if (options_.soft_bounce && kind == Refusal::Reject) {
        kind = Refusal::Tempfail;
        a.kind = ActionKind::Tempfail;
        a.code = default_code(stage, kind);
        a.enhanced.klass = 4;
    }
    if (!code_allowed(stage, kind, a.code)) a.code = default_code(stage, kind);
    d.verdict = kind == Refusal::Reject ? Verdict::Reject : Verdict::Tempfail;
    d.rule_id = full->id;
    d.reply = make_reply(a, stage);
    d.headers_to_add.clear();
    d.quarantine_reason.clear();
    d.error = "limit \"" + full->id + "\" reached by concurrent transactions before this one ended";
}

Decision Conversation::connect(std::optional<IpAddress> ip, std::string_view client_name,
                               std::uint32_t port) {
    policy_ = source_();
    facts_ = Facts{};
    facts_.set_client(ip, client_name, port);
    helo_counted_ = false;
    Decision d = evaluate(Stage::Connect);
    // Connection-level limits count connections, at once: there is no message to wait
    // for. An accepted connection, like an accepted message, counts nothing.
    if (!d.refused() && d.verdict != Verdict::Accept) commit_or_refuse(d, Stage::Connect);
    pending_.clear();
    if (d.verdict == Verdict::Accept) connection_accepted_ = true;
    return d;
}

Decision Conversation::helo(std::string_view name) {
    facts_.set_helo(name);
    if (connection_accepted_) return undecided(Stage::Helo);
    Decision d = evaluate(Stage::Helo);
    // A client repeats EHLO after STARTTLS: a helo limit still counts the connection once.
    if (!d.refused() && d.verdict != Verdict::Accept && !helo_counted_) {
        commit_or_refuse(d, Stage::Helo);
        helo_counted_ = !d.refused();
    }
    pending_.clear();
    if (d.verdict == Verdict::Accept) connection_accepted_ = true;
    return d;
}

void Conversation::start_transaction_if_needed() {
    if (in_transaction_) return;
    in_transaction_ = true;
    message_accepted_ = false;
    pending_.clear();
    facts_.reset_transaction();  // the last one's, kept until now for the log
    // A reload applies from the next transaction on.
    if (auto latest = source_()) policy_ = std::move(latest);
}

void Conversation::after_message_event(Decision& d) {
    if (d.verdict == Verdict::Accept) message_accepted_ = true;
    // The MTA drops a discarded message and tells the milter nothing more of it; it was
    // accepted as far as the client knows, so it counts now, even over a limit (the
    // message is gone either way).
    if (d.verdict == Verdict::Discard) {
        try {
            commit_pending(false);
        } catch (const StoreError& e) {
            d.error =
                std::string("store unavailable, the discarded message is not counted: ") + e.what();
        }
        message_accepted_ = true;
    }
}

Decision Conversation::mail(std::string_view sender, std::string_view auth_user, std::uint64_t size,
                            bool tls) {
    abort();
    start_transaction_if_needed();
    facts_.set_sender(sender, auth_user, size, tls);
    if (connection_accepted_) return undecided(Stage::Mail);
    Decision d = evaluate(Stage::Mail);
    after_message_event(d);
    if (d.refused()) end_transaction();
    return d;
}

Decision Conversation::rcpt(std::string_view recipient) {
    start_transaction_if_needed();
    facts_.recipient = Address::from_smtp(recipient);
    bool decides = !connection_accepted_ && !message_accepted_;
    if (decides)
        facts_.rcpt_count = static_cast<std::uint32_t>(facts_.accepted_recipients.size() + 1);
    Decision d = decides ? evaluate(Stage::Rcpt) : undecided(Stage::Rcpt);  // built in place
    if (decides) after_message_event(d);
    // Moved, not copied: the current recipient is cleared just below.
    if (!d.refused()) facts_.accepted_recipients.push_back(std::move(facts_.recipient));
    facts_.rcpt_count = static_cast<std::uint32_t>(facts_.accepted_recipients.size());
    facts_.recipient = Address{};
    return d;
}

Decision Conversation::data() {
    start_transaction_if_needed();
    facts_.rcpt_count = static_cast<std::uint32_t>(facts_.accepted_recipients.size());
    if (connection_accepted_ || message_accepted_) return undecided(Stage::Data);
    Decision d = evaluate(Stage::Data);
    after_message_event(d);
    return d;
}

void Conversation::header(std::string_view name, std::string_view value) {
    start_transaction_if_needed();  // the policy that message() will apply
    // Only the first copy of each header the policy reads is kept (Facts::add_header):
    // Facts::header() answers the same, and a message's other headers and repeated copies
    // cost nothing. A connection so keeps at most one value per header name its policy
    // reads, each no longer than libmilter's 64 KiB packet.
    if (policy_->uses_header(name)) facts_.add_header(name, value);
}

Decision Conversation::message() {
    start_transaction_if_needed();
    Decision d = !connection_accepted_ && !message_accepted_ ? evaluate(Stage::Message)
                                                             : undecided(Stage::Message);
    bool counts =
        !d.refused() && d.verdict != Verdict::Accept && !message_accepted_ && !connection_accepted_;
    if (counts) commit_or_refuse(d, Stage::Message);
    pending_.clear();
    in_transaction_ = false;
    return d;
}

void Conversation::end_transaction() {
    pending_.clear();
    event_pending_.clear();
    in_transaction_ = false;
    message_accepted_ = false;
}

void Conversation::abort() {
    end_transaction();
    facts_.reset_transaction();
}

}  // namespace pm
