// SPDX-License-Identifier: BSD-2-Clause
// The limit ledger on its own (policy/ledger.h): staging per event and per transaction,
// the commit all or none, and the store-error policy.

#include "policy/ledger.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;

class FlakyStore : public CounterStore {
  public:
    explicit FlakyStore(CounterStore& real) : real_(real) {}
    bool down = false;
    std::uint64_t count(const std::string& key, std::uint64_t window) override {
        if (down) throw StoreError("connection refused");
        return real_.count(key, window);
    }
    std::optional<std::size_t> check_and_add(std::span<const CounterAdd> adds) override {
        if (down) throw StoreError("connection refused");
        return real_.check_and_add(adds);
    }
    CounterState inspect(const std::string& key, std::uint64_t window) override {
        if (down) throw StoreError("connection refused");
        return real_.inspect(key, window);
    }
    CounterState reset(const std::string& key, std::uint64_t window) override {
        if (down) throw StoreError("connection refused");
        return real_.reset(key, window);
    }
    std::string describe() const override { return "flaky"; }

  private:
    CounterStore& real_;
};

class Ledger : public ::testing::Test {
  protected:
    Ledger()
        : policy(must_load("limit \"a\" at rcpt key sender max 3 recipients per 1h reject\n"
                           "limit \"b\" at rcpt key sender max 2 recipients per 1h tempfail\n"
                           "limit \"w\" at rcpt key sender max 1 recipients per 1h pass\n")) {}
    LimitRequest request(std::size_t statement, std::uint64_t amount) {
        const Statement& st = policy->statements()[statement];
        return {st.id + "\x1fkey", amount, &st, st.action.kind != ActionKind::Pass};
    }
    std::uint64_t stored(const char* key) { return memory.count(key, 3600); }

    std::shared_ptr<const Policy> policy;
    MemoryCounterStore memory;
    FlakyStore store{memory};
    LimitLedger ledger{store, StoreErrorMode::Tempfail};
};

TEST_F(Ledger, AnEventsCountsJoinTheTransactionOnlyWhenKept) {
    ledger.begin_event();
    EXPECT_FALSE(ledger.stage(request(0, 1)).over);
    EXPECT_TRUE(ledger.staged("a\x1fkey"));
    ledger.end_event(false);  // refused: counts nothing
    EXPECT_FALSE(ledger.staged("a\x1fkey"));
    ledger.begin_event();
    ledger.stage(request(0, 2));
    ledger.end_event(true);
    ledger.begin_event();
    // Committed 0 + staged in the transaction 2 + this event's 2 > 3.
    EXPECT_TRUE(ledger.stage(request(0, 2)).over);
    ledger.end_event(false);
    EXPECT_FALSE(ledger.commit(true).refused());
    EXPECT_EQ(stored("a\x1fkey"), 2u);
}

TEST_F(Ledger, AZeroCountIsStagedToo) {
    ledger.begin_event();
    ledger.stage(request(0, 0));
    ledger.end_event(true);
    EXPECT_TRUE(ledger.staged("a\x1fkey"));  // a message counts once per key
    ledger.clear();
    EXPECT_FALSE(ledger.staged("a\x1fkey"));
}

TEST_F(Ledger, CommitIsAllOrNoneAndNamesTheLimitThatIsFull) {
    memory.add("b\x1fkey", 2, 3600);  // concurrent transactions filled "b"
    ledger.begin_event();
    ledger.stage(request(0, 1));
    ledger.stage(request(1, 1));
    ledger.stage(request(2, 5));  // "w" passes: its max never stops a commit
    ledger.end_event(true);
    LimitLedger::Commit c = ledger.commit(true);
    ASSERT_TRUE(c.refused());
    EXPECT_EQ(c.statement->id, "b");
    EXPECT_EQ(stored("a\x1fkey"), 0u);
    EXPECT_EQ(stored("w\x1fkey"), 0u);
    EXPECT_FALSE(ledger.staged("a\x1fkey"));  // forgotten either way
}

TEST_F(Ledger, CommitWithoutEnforcingCountsOverTheMax) {
    memory.add("b\x1fkey", 2, 3600);
    ledger.begin_event();
    ledger.stage(request(1, 1));
    ledger.end_event(true);
    EXPECT_FALSE(ledger.commit(false).refused());  // a discarded message counts
    EXPECT_EQ(stored("b\x1fkey"), 3u);
}

TEST_F(Ledger, AStoreThatCannotAnswerFailsOrPassesByTheStoreErrorMode) {
    store.down = true;
    ledger.begin_event();
    LimitLedger::Check check = ledger.stage(request(0, 1));
    EXPECT_EQ(check.store, StoreAnswer::Failed);
    EXPECT_EQ(check.error, "connection refused");
    EXPECT_FALSE(ledger.staged("a\x1fkey"));

    LimitLedger passing(store, StoreErrorMode::Pass);
    passing.begin_event();
    EXPECT_EQ(passing.stage(request(0, 1)).store, StoreAnswer::Passed);

    store.down = false;
    passing.stage(request(1, 1));
    passing.stage(request(0, 1));
    passing.end_event(true);
    store.down = true;
    LimitLedger::Commit c = passing.commit(true);
    EXPECT_EQ(c.store, StoreAnswer::Passed);
    EXPECT_FALSE(c.refused());
    EXPECT_EQ(c.statement->id, "a");  // the first key's limit, for the note
    EXPECT_FALSE(passing.staged("a\x1fkey"));
}

TEST_F(Ledger, NothingStagedCommitsWithoutAskingTheStore) {
    store.down = true;
    LimitLedger::Commit c = ledger.commit(true);
    EXPECT_EQ(c.store, StoreAnswer::Answered);
    EXPECT_EQ(c.statement, nullptr);
}

}  // namespace
}  // namespace pm
