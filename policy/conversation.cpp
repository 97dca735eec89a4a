// SPDX-License-Identifier: BSD-2-Clause
#include "policy/conversation.h"

#include <algorithm>
#include <array>
#include <utility>

namespace pm {

namespace {

Decision undecided(Stage stage) {
    Decision d;
    d.stage = stage;
    return d;
}

}  // namespace

Conversation::Conversation(std::shared_ptr<const Policy> policy, CounterStore& store,
                           ConversationOptions options, GreylistStore* greylist)
    : policy_(std::move(policy)),
      options_(options),
      ledger_(store, options.on_store_error, greylist) {}

void Conversation::use_policy(std::shared_ptr<const Policy> policy) {
    if (policy) next_ = std::move(policy);
}

namespace {

// A client sending many MAIL FROMs with new domains cannot grow its session without end.
constexpr std::size_t kMaxSessionDnsAnswers = 256;

std::array<bool, kStageCount> stages_from(Stage first, bool only) {
    std::array<bool, kStageCount> out{};
    for (Stage s : kAllStages)
        out[stage_index(s)] = only ? s == first : stage_index(s) >= stage_index(first);
    return out;
}

}  // namespace

void Conversation::look_up_dns(Stage stage) {
    const std::vector<DnsUse>& uses = policy_->dns_uses();
    if (uses.empty() || !options_.dns) return;
    bool txt = policy_->uses_dnsbl_txt();
    auto known = [&](const std::string& name) {
        auto it = facts_.dns.find(name);
        return it != facts_.dns.end() && it->second.status != DnsAnswer::Status::Failed;
    };
    // Early: the later stages' lookups run while this stage and the client go on.
    for (const std::string& name : dns_queries(uses, stages_from(stage, false), facts_))
        if (!known(name)) options_.dns->start(name, txt);
    std::vector<std::string> needed = dns_queries(uses, stages_from(stage, true), facts_);
    // Over the bound, the answers go but those this stage reads: clearing them all dropped
    // the known ones too (a listed client fails open after 256 MAILs of new domains).
    if (facts_.dns.size() + needed.size() > kMaxSessionDnsAnswers)
        std::erase_if(facts_.dns, [&](const auto& kv) {
            return std::find(needed.begin(), needed.end(), kv.first) == needed.end();
        });
    std::erase_if(needed, known);
    if (needed.empty()) return;
    auto deadline = std::chrono::steady_clock::now() + options_.dns_timeout;
    if (dns_deadline_) deadline = std::min(deadline, *dns_deadline_);
    std::vector<DnsAnswer> answers = options_.dns->wait(needed, txt, deadline);
    for (std::size_t i = 0; i < needed.size() && i < answers.size(); ++i)
        facts_.dns[needed[i]] = std::move(answers[i]);
}

void Conversation::begin_dns_request(const Facts& known) {
    dns_deadline_ = std::chrono::steady_clock::now() + options_.dns_timeout;
    // A new session takes the policy handed in since (connect()).
    const Policy* policy = next_ ? next_.get() : policy_.get();
    if (!policy || policy->dns_uses().empty() || !options_.dns) return;
    std::array<bool, kStageCount> all{};
    all.fill(true);
    for (const std::string& name : dns_queries(policy->dns_uses(), all, known))
        options_.dns->start(name, policy->uses_dnsbl_txt());
}

Decision Conversation::run(Stage stage) {
    look_up_dns(stage);
    ledger_.begin_event();
    Decision d = evaluate(*policy_, stage, facts_, ledger_, options_);
    ledger_.end_event(!d.refused());  // a refused event counts nothing
    return d;
}

void Conversation::commit_or_refuse(Decision& d, Stage stage, bool keep_keys) {
    LimitLedger::Commit c = ledger_.commit(true, keep_keys);
    std::string id = c.statement ? c.statement->id : std::string();
    switch (c.store) {
        case StoreAnswer::Answered:
            // Other transactions (in this process or, with a shared store, on other MTAs)
            // took what was left of the limit between this transaction's check and its
            // end: it is refused now with the limit's action, in a code this stage allows.
            if (c.statement) refuse_full_limit(d, *c.statement, stage, facts_, options_);
            return;
        case StoreAnswer::Passed:
            d.error = "limit \"" + id + "\": store unavailable, not counted: " + c.error;
            d.store_error = true;
            return;
        case StoreAnswer::Failed: refuse_store_failure(d, stage, id, c.error); return;
    }
}

Decision Conversation::connect(std::optional<IpAddress> ip, std::string_view client_name,
                               std::uint32_t port, ClientLookup lookup) {
    // A new session: nothing of an earlier one on this object carries over.
    ledger_.clear();
    ledger_.set_helo_counted(false);
    transaction_ = Transaction::None;
    if (next_) policy_ = std::move(next_);
    facts_ = Facts{};
    facts_.set_client(ip, client_name, port);
    facts_.set_client_lookup(lookup.ptr, lookup.resolve);
    Decision d = run(Stage::Connect);
    // Connection-level limits count connections, at once: there is no message to wait
    // for. An accepted connection, like an accepted message, counts nothing.
    if (!d.refused() && d.verdict != Verdict::Accept) commit_or_refuse(d, Stage::Connect);
    ledger_.clear();
    connection_accepted_ = d.verdict == Verdict::Accept;
    return d;
}

Decision Conversation::helo(std::string_view name) {
    facts_.set_helo(name);
    if (connection_accepted_) return undecided(Stage::Helo);
    Decision d = run(Stage::Helo);
    // A client repeats EHLO after STARTTLS: a helo limit still counts the connection once.
    if (!d.refused() && d.verdict != Verdict::Accept && !ledger_.helo_counted()) {
        commit_or_refuse(d, Stage::Helo);
        ledger_.set_helo_counted(!d.refused());
    }
    ledger_.clear();
    if (d.verdict == Verdict::Accept) connection_accepted_ = true;
    return d;
}

void Conversation::start_transaction_if_needed() {
    if (transaction_ != Transaction::None) return;
    transaction_ = Transaction::Deciding;
    ledger_.clear();
    facts_.reset_transaction();  // the last one's, kept until now for the log
    // A policy handed in since applies from this transaction on.
    if (next_) policy_ = std::move(next_);
    scanner_.start(policy_->body_patterns(), options_.body_scan_limit);
}

void Conversation::after_message_event(Decision& d) {
    if (d.verdict == Verdict::Accept) transaction_ = Transaction::Decided;
    // The MTA drops a discarded message and tells the milter nothing more of it; it was
    // accepted as far as the client knows, so it counts now, even over a limit (the
    // message is gone either way).
    if (d.verdict == Verdict::Discard) {
        LimitLedger::Commit c = ledger_.commit(false);
        if (c.store != StoreAnswer::Answered) {
            d.error = "store unavailable, the discarded message is not counted: " + c.error;
            d.store_error = true;
        }
        transaction_ = Transaction::Decided;
    }
}

Decision Conversation::mail(std::string_view sender, std::string_view auth_user, std::uint64_t size,
                            bool tls) {
    abort();
    start_transaction_if_needed();
    facts_.set_sender(sender, auth_user, size, tls);
    if (connection_accepted_) return undecided(Stage::Mail);
    Decision d = run(Stage::Mail);
    after_message_event(d);
    if (d.refused()) end_transaction();
    return d;
}

Decision Conversation::rcpt(std::string_view recipient) {
    start_transaction_if_needed();
    facts_.recipient = Address::from_smtp(recipient);
    bool decides = rules_run();
    if (decides)
        facts_.rcpt_count = static_cast<std::uint32_t>(facts_.accepted_recipients.size() + 1);
    Decision d = decides ? run(Stage::Rcpt) : undecided(Stage::Rcpt);  // built in place
    if (decides) after_message_event(d);
    // Moved, not copied: the current recipient is cleared just below.
    if (!d.refused()) facts_.accepted_recipients.push_back(std::move(facts_.recipient));
    facts_.rcpt_count = static_cast<std::uint32_t>(facts_.accepted_recipients.size());
    facts_.recipient = Address{};
    return d;
}

// Postfix names the recipient at DATA and END-OF-MESSAGE when it accepted only one. A
// policy service asked at neither RCPT saw none: without it a data rule would see no
// recipient at all, and a data greylist would pass every message.
void Conversation::adopt_recipient(std::string_view only_recipient) {
    if (only_recipient.empty() || !facts_.accepted_recipients.empty()) return;
    facts_.accepted_recipients.push_back(
        Address::from_smtp("<" + std::string(only_recipient) + ">"));
}

Decision Conversation::data(std::uint32_t known_recipients, std::string_view only_recipient) {
    start_transaction_if_needed();
    adopt_recipient(only_recipient);
    facts_.rcpt_count =
        std::max(static_cast<std::uint32_t>(facts_.accepted_recipients.size()), known_recipients);
    if (!rules_run()) return undecided(Stage::Data);
    Decision d = run(Stage::Data);
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

void Conversation::body_bytes(std::uint64_t n) {
    // Bytes may be the first the session hears of a message (an MTA that negotiated MAIL,
    // RCPT and headers away): they start it, so that message() does not reset them.
    start_transaction_if_needed();
    facts_.message_size += n;
}

void Conversation::scan_body(std::string_view chunk) {
    start_transaction_if_needed();
    if (rules_run()) scanner_.feed(chunk);
}

Decision Conversation::message(std::uint32_t known_recipients, std::string_view only_recipient) {
    start_transaction_if_needed();
    adopt_recipient(only_recipient);
    scanner_.finish();
    facts_.body_hits = scanner_.hits();
    facts_.rcpt_count = std::max(facts_.rcpt_count, known_recipients);
    bool decides = rules_run();
    Decision d = decides ? run(Stage::Message) : undecided(Stage::Message);
    if (decides && !d.refused() && d.verdict != Verdict::Accept)
        commit_or_refuse(d, Stage::Message);
    end_transaction();
    return d;
}

Decision Conversation::vrfy(std::string_view recipient) {
    // VRFY may come in the middle of a transaction: it commits its own counts only, never
    // the transaction's (which would then count twice, or count though abandoned).
    LimitLedger::Staged transaction = ledger_.set_aside();
    facts_.recipient = Address::from_smtp(recipient);
    Decision d = connection_accepted_ ? undecided(Stage::Vrfy) : run(Stage::Vrfy);
    if (!connection_accepted_ && !d.refused() && d.verdict != Verdict::Accept)
        commit_or_refuse(d, Stage::Vrfy);
    ledger_.put_back(std::move(transaction));
    return d;
}

Decision Conversation::etrn(std::string_view domain) {
    // RFC 1985: "@domain" asks for subdomains too, "#queue" names a queue; the rules see
    // the name itself.
    if (!domain.empty() && (domain.front() == '@' || domain.front() == '#'))
        domain.remove_prefix(1);
    LimitLedger::Staged transaction = ledger_.set_aside();  // as vrfy()'s
    facts_.domain = std::string(domain);
    facts_.domain_lower = normalize_host(domain);
    Decision d = connection_accepted_ ? undecided(Stage::Etrn) : run(Stage::Etrn);
    if (!connection_accepted_ && !d.refused() && d.verdict != Verdict::Accept)
        commit_or_refuse(d, Stage::Etrn);
    ledger_.put_back(std::move(transaction));
    return d;
}

void Conversation::commit_now(Decision& d) {
    if (d.refused() || d.verdict == Verdict::Accept || transaction_ != Transaction::Deciding)
        return;
    commit_or_refuse(d, d.stage, /*keep_keys=*/true);
}

void Conversation::end_transaction() {
    ledger_.clear();
    // An aborted message's scan never finished: its buffers go now, not at the next one.
    scanner_.start({}, 0);
    transaction_ = Transaction::None;
}

Decision Conversation::unknown(std::string_view command_line) {
    // Between transactions the last one's facts were kept only for its own log line: this
    // event's must not name its sender (from=).
    if (transaction_ == Transaction::None) facts_.reset_transaction();
    facts_.set_command(command_line);
    if (connection_accepted_ || !policy_->stage_used(Stage::Unknown))
        return undecided(Stage::Unknown);
    return run(Stage::Unknown);
}

void Conversation::abort() {
    end_transaction();
    facts_.reset_transaction();
}

}  // namespace pm
