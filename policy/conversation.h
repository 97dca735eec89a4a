// SPDX-License-Identifier: BSD-2-Clause
// One SMTP session as the policy sees it: facts gathered stage by stage, the policy
// asked at each event, limits staged during the transaction and committed only when
// the message is accepted. The milter adapter and --test drive it the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "policy/counter_store.h"
#include "policy/decision.h"
#include "policy/facts.h"
#include "policy/policy.h"

namespace pm {

enum class StoreErrorMode { Tempfail, Pass };

struct ConversationOptions {
    bool observe_all = false;  // every rule only logs what it would do
    bool soft_bounce = false;  // every 5xx becomes the stage's default 4xx
    StoreErrorMode on_store_error = StoreErrorMode::Tempfail;
};

using PolicySource = std::function<std::shared_ptr<const Policy>()>;

class Conversation {
  public:
    // The policy is taken from `source` at connect and again at each new transaction, so
    // a reload applies from the next MAIL on while a transaction in flight keeps its own.
    Conversation(PolicySource source, CounterStore& store, ConversationOptions options = {});

    Decision connect(std::optional<IpAddress> ip, std::string_view client_name, std::uint32_t port);
    Decision helo(std::string_view name);
    Decision mail(std::string_view sender, std::string_view auth_user, std::uint64_t size,
                  bool tls);
    Decision rcpt(std::string_view recipient);
    Decision data();
    void header(std::string_view name, std::string_view value);
    void body_bytes(std::uint64_t n) { facts_.message_size += n; }
    // End of message: evaluates the message stage and, unless the message is refused,
    // commits the transaction's counts.
    Decision message();
    // RSET or an aborted transaction: nothing of it is counted.
    void abort();

    // The facts as the last event left them: a transaction's stay until the next one
    // starts (or abort()), so that the decision log can describe the event just decided,
    // a refused MAIL and the end of a message included.
    const Facts& facts() const { return facts_; }
    const Policy& policy() const { return *policy_; }
    std::shared_ptr<const Policy> policy_ptr() const { return policy_; }
    // True once `accept` decided for the whole connection (at connect or helo).
    bool connection_accepted() const { return connection_accepted_; }

  private:
    Decision evaluate(Stage stage);
    bool condition_holds(const Condition& c, Stage stage) const;
    bool atom_holds(const Condition& c, const Address* rcpt) const;
    std::string limit_key(const Statement& st) const;
    std::uint64_t limit_amount(const Statement& st, const std::string& key) const;
    Reply make_reply(const Action& a, Stage stage) const;
    // Commits the staged counts, all or none, and clears them. With `enforce`, a limit
    // with a refusing action that concurrent transactions filled up since this one was
    // checked stops the commit: that statement is returned and nothing is counted.
    // Throws StoreError.
    const Statement* commit_pending(bool enforce);
    // Commits at the end of an accepted event; if the commit fails (the store, or a limit
    // filled up meanwhile), `d` becomes the refusal at `stage`.
    void commit_or_refuse(Decision& d, Stage stage);
    Decision store_failure(Decision d, Stage stage, const std::string& id, const char* what) const;
    void after_message_event(Decision& d);
    // Drops the transaction's staged counts and state; its facts stay (see facts()).
    void end_transaction();
    void start_transaction_if_needed();

    PolicySource source_;
    CounterStore& store_;
    ConversationOptions options_;
    std::shared_ptr<const Policy> policy_;
    Facts facts_;
    bool connection_accepted_ = false;
    bool helo_counted_ = false;
    bool in_transaction_ = false;
    bool message_accepted_ = false;  // accept or discard decided: no more rules for it

    struct Pending {
        std::uint64_t amount = 0;
        std::uint64_t window_seconds = 0;
        const Statement* statement = nullptr;  // of policy_, which outlives the transaction
        bool enforce = false;  // a refusing, not observed limit: its max holds at commit
    };
    std::map<std::string, Pending> pending_;        // committed at end of message
    std::map<std::string, Pending> event_pending_;  // this event's, kept unless refused
    std::vector<std::uint32_t> candidates_;         // scratch, reused per event
};

}  // namespace pm
