// SPDX-License-Identifier: BSD-2-Clause
// CONVERSATION
//   Conversation(policy, store, options)
//   use_policy(policy)       the policy from the next connection or transaction on
//   connect, helo, mail, rcpt, data, header, body_bytes, scan_body, message, abort, unknown
//
// One SMTP session as the policy sees it: the facts gathered stage by stage, the policy
// asked at each event (evaluator.h), and the limits staged during the transaction and
// committed only when its message is accepted (ledger.h). The milter adapter and --test
// drive it the same way, and hand it the policy: nothing here calls back to them. A
// policy handed in takes effect at the next connect or the next transaction (a reload
// applies from the next MAIL on), while a transaction in flight keeps its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "policy/counter_store.h"
#include "policy/decision.h"
#include "policy/evaluator.h"
#include "policy/facts.h"
#include "policy/ledger.h"
#include "policy/policy.h"

namespace pm {

struct ConversationOptions : EvaluationOptions {
    StoreErrorMode on_store_error = StoreErrorMode::Tempfail;
    std::uint64_t body_scan_limit = kDefaultBodyScanLimit;  // body-scan-limit
    // The resolver of DNS lists (dns/resolver.h), shared; null: every DNS list lookup
    // fails (not listed, or the tempfail of an `on-error tempfail` list).
    DnsSource* dns = nullptr;
    std::chrono::milliseconds dns_timeout{2000};  // at most this long per stage
};

class Conversation {
  public:
    // `policy` may be null only until use_policy() has handed one in before connect.
    // `greylist`: the greylist store, shared like `store`; none: a greylist rule meets
    // a store that cannot answer (store-on-error).
    Conversation(std::shared_ptr<const Policy> policy, CounterStore& store,
                 ConversationOptions options = {}, GreylistStore* greylist = nullptr);

    void use_policy(std::shared_ptr<const Policy> policy);

    Decision connect(std::optional<IpAddress> ip, std::string_view client_name, std::uint32_t port,
                     ClientLookup lookup = {});
    Decision helo(std::string_view name);
    Decision mail(std::string_view sender, std::string_view auth_user, std::uint64_t size,
                  bool tls);
    Decision rcpt(std::string_view recipient);
    // `known_recipients`: how many the MTA says it accepted, when some were not seen here
    // (the policy service, asked at DATA but not at RCPT); rcpt.count is the larger.
    // `only_recipient`: the one recipient the MTA names when it accepted only one
    // (Postfix's `recipient` at DATA and END-OF-MESSAGE), the transaction's accepted
    // recipient when none was seen here: recipient conditions and greylist hold for it.
    Decision data(std::uint32_t known_recipients = 0, std::string_view only_recipient = {});
    void header(std::string_view name, std::string_view value);
    void body_bytes(std::uint64_t n);
    // A chunk of the body as the MTA sends it, scanned for the policy's body patterns up
    // to body_scan_limit (body_scan.h); body_bytes() counts it.
    void scan_body(std::string_view chunk);
    // End of message: evaluates the message stage and, unless the message is refused,
    // commits the transaction's counts.
    Decision message(std::uint32_t known_recipients = 0, std::string_view only_recipient = {});
    // RSET or an aborted transaction: nothing of it is counted.
    void abort();
    // A command the MTA does not recognise, at any point of the session: the unknown stage.
    // It neither starts nor ends a transaction.
    Decision unknown(std::string_view command_line);

    // Policy delegation only (milter/policy_delegation.h): VRFY and ETRN, outside any
    // transaction. Their limits count each request at once, as connect's do.
    Decision vrfy(std::string_view recipient);
    Decision etrn(std::string_view domain);
    // Policy delegation without END-OF-MESSAGE requests: commits what the transaction has
    // counted so far, now, and keeps its keys, so that a message counts once however many
    // of its requests follow. `d` becomes the refusal if a limit filled up meanwhile.
    void commit_now(Decision& d);
    // Policy delegation: one request may run several stages (the first RCPT of a session
    // runs connect, helo and mail first). From begin_dns_request() to end_dns_request()
    // their DNS lookups share one dns_timeout, and those of `known` (the request's facts)
    // start at once, in parallel, before the first stage waits.
    void begin_dns_request(const Facts& known);
    void end_dns_request() { dns_deadline_.reset(); }

    // The facts as the last event left them: a transaction's stay until the next one
    // starts (or abort()), so that the decision log can describe the event just decided,
    // a refused MAIL and the end of a message included.
    const Facts& facts() const { return facts_; }
    const Policy& policy() const { return *policy_; }

  private:
    // A transaction from its first event (MAIL) to its end (message, RSET, abort).
    enum class Transaction {
        None,      // between transactions
        Deciding,  // rules run at each of its events
        Decided,   // its message was accepted or discarded: no more rules for it
    };

    bool rules_run() const { return !connection_accepted_ && transaction_ != Transaction::Decided; }
    Decision run(Stage stage);
    // Starts the DNS list lookups of this and later stages whose facts are known, and
    // waits (dns_timeout at most) for those of `stage`, into facts_.dns.
    void look_up_dns(Stage stage);
    // Commits at the end of an accepted event; if the commit fails (the store, or a limit
    // filled up meanwhile), `d` becomes the refusal at `stage`.
    void commit_or_refuse(Decision& d, Stage stage, bool keep_keys = false);
    void after_message_event(Decision& d);
    // Drops the transaction's staged counts and state; its facts stay (see facts()).
    void end_transaction();
    void start_transaction_if_needed();
    void adopt_recipient(std::string_view only_recipient);

    std::shared_ptr<const Policy> policy_;  // in force for this transaction
    std::shared_ptr<const Policy> next_;    // handed in, in force from the next one
    ConversationOptions options_;
    LimitLedger ledger_;
    Facts facts_;
    BodyScanner scanner_;  // the transaction's body, when its policy has body patterns
    Transaction transaction_ = Transaction::None;
    bool connection_accepted_ = false;  // accept decided at connect or helo: no more rules
    std::optional<std::chrono::steady_clock::time_point> dns_deadline_;  // begin_dns_request
};

}  // namespace pm
