// SPDX-License-Identifier: BSD-2-Clause
// LIMIT LEDGER
//   LimitLedger(store, on_store_error)
//   begin_event()        an event starts, nothing staged for it yet
//   stage(request)       an event's count: within the limit, over it, or no store answer
//   end_event(kept)      the event's counts join the transaction's, or are dropped
//   commit(enforce)      the transaction's counts into the store, all or none
//   clear()              forget the transaction's counts (RSET, abort, a refusal)
//   helo_counted()       whether the connection was counted at helo already
//   greylist(request)    a greylist store's decision, under the store-error policy
//
// What one session has counted but not yet committed, and the store-error policy
// (policy-milter.rules(5), LIMITS, "What is counted, and when"). An event's counts are
// staged apart from the transaction's, since a refused event counts nothing; the
// transaction's are committed once its message is accepted (at connect and helo, at
// once). When the store cannot answer, StoreErrorMode says whether the event passes
// uncounted or is tempfailed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "policy/counter_store.h"
#include "policy/greylist.h"
#include "policy/policy.h"

namespace pm {

enum class StoreErrorMode { Tempfail, Pass };

// One limit's count for one event.
struct LimitRequest {
    std::string key;  // the limit's ID and its key values, separated by \x1f
    std::uint64_t amount = 0;
    const Statement* statement = nullptr;  // the limit, of a policy that outlives the session
    bool enforce = false;  // a refusing, not observed limit: its max also holds at commit
};

// What the store said, under the store-error policy.
enum class StoreAnswer { Answered, Passed, Failed };

class LimitLedger {
  public:
    LimitLedger(CounterStore& store, StoreErrorMode on_store_error,
                GreylistStore* greylist_store = nullptr)
        : store_(store), greylist_store_(greylist_store), on_store_error_(on_store_error) {}

    // A greylist decision, under the same store-error policy as the limits' (none is
    // counted: a greylist entry is the store's at once, whatever becomes of the message).
    struct GreylistCheck {
        StoreAnswer store = StoreAnswer::Answered;
        GreylistAnswer answer;
        std::string error;
    };
    GreylistCheck greylist(const GreylistRequest& request);

    struct Check {
        StoreAnswer store = StoreAnswer::Answered;
        bool over = false;  // the committed count, what the transaction staged and this
                            // amount together exceed the limit's max
        std::string error;  // the store's, when it did not answer
    };
    // Starts an event with nothing staged for it.
    void begin_event() {
        if (!event_.empty()) event_.clear();
    }
    // Stages `r` for this event, unless the store cannot answer. A request for a key that
    // the event staged already adds to it.
    Check stage(LimitRequest r);
    // True if this event or the transaction has staged a count (even 0) under `key`.
    bool staged(const std::string& key) const {
        return transaction_.count(key) != 0 || event_.count(key) != 0;
    }
    // Ends an event: its counts join the transaction's when `kept`, else are dropped.
    void end_event(bool kept);

    struct Commit {
        StoreAnswer store = StoreAnswer::Answered;
        // When the store refused the commit: the limit that concurrent transactions filled
        // since this one was checked. When it did not answer: the first limit staged.
        const Statement* statement = nullptr;
        std::string error;
        bool refused() const { return store == StoreAnswer::Answered && statement; }
    };
    // Commits the transaction's counts, all or none, and forgets them. With `enforce`,
    // a limit with `enforce` set stops the commit if it would go over its max.
    // With `keep_keys` the keys stay staged at 0 (staged() still true): a transaction
    // committed before its end (policy delegation) counts a message once.
    Commit commit(bool enforce, bool keep_keys = false);
    // Asked at every event: an empty map is left as it is, not cleared again.
    void clear() {
        if (!transaction_.empty()) transaction_.clear();
        if (!event_.empty()) event_.clear();
    }
    struct Pending {
        std::uint64_t amount = 0;
        const Statement* statement = nullptr;
        bool enforce = false;
    };
    // The transaction's staged counts, set aside while an event outside the transaction
    // runs (VRFY in the middle of one: policy delegation) and put back after it, so that
    // this event commits only its own counts and the transaction's wait for its end.
    using Staged = std::map<std::string, Pending>;
    Staged set_aside() {
        event_.clear();
        return std::exchange(transaction_, {});
    }
    void put_back(Staged staged) {
        event_.clear();
        transaction_ = std::move(staged);
    }
    // A connection is counted at helo once: a repeated HELO/EHLO (after STARTTLS) adds
    // nothing to any helo limit.
    bool helo_counted() const { return helo_counted_; }
    void set_helo_counted(bool counted) { helo_counted_ = counted; }

  private:
    StoreAnswer failed() const {
        return on_store_error_ == StoreErrorMode::Pass ? StoreAnswer::Passed : StoreAnswer::Failed;
    }

    CounterStore& store_;
    GreylistStore* greylist_store_;
    StoreErrorMode on_store_error_;
    // By key: the store is handed the commit in key order, and the first limit it names
    // when it fails is the first key's.
    std::map<std::string, Pending> transaction_;
    std::map<std::string, Pending> event_;
    bool helo_counted_ = false;
};

}  // namespace pm
