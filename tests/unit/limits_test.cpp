// SPDX-License-Identifier: BSD-2-Clause
// Spec §3 limits with the in-memory store: what counts, when, and the window math.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <limits>
#include <thread>

#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;
using testing::summary;

struct FakeClock {
    std::uint64_t now_ms = 1'000'000;
    Clock fn() {
        return [this] { return now_ms; };
    }
};

// Drives a session from 192.0.2.1 through MAIL FROM <a@x>, RCPT TO <b@y> and DATA, so that
// its message is the next event.
void to_end_of_data(Conversation& c) {
    testing::start_mail(c, "<a@x>");
    c.rcpt("<b@y>");
    c.data();
}

// One megabyte a day for each sender, counted at MAIL (SIZE=) and at the message.
const char* const kVolumeLimit =
    "limit \"vol\" at mail key sender max 1MB per 1d reject 552 5.3.4\n";

struct LimitedSession {
    LimitedSession(std::shared_ptr<const Policy> p, MemoryCounterStore& store)
        : policy(std::move(p)), conv(policy, store) {}
    std::shared_ptr<const Policy> policy;
    Conversation conv;
};

const char* kSenderHourly =
    "limit \"sender-hourly\" at mail key sender max 3 per 1h\n"
    "    tempfail 452 4.7.1 \"Too many messages from {sender}\"\n";

// One complete message from `from`; returns the mail-stage decision.
Decision send(const std::shared_ptr<const Policy>& p, MemoryCounterStore& store,
              const std::string& from, bool finish = true) {
    LimitedSession s(p, store);
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
    Decision d = s.conv.mail(from, "", 0, false);
    if (d.refused()) return d;
    s.conv.rcpt("<r@y>");
    s.conv.data();
    if (finish)
        s.conv.message();
    else
        s.conv.abort();
    return d;
}

TEST(Limits, CountsOnlyAcceptedMessages) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn());
    auto p = must_load(kSenderHourly);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(send(p, store, "<a@x>").verdict, Verdict::Continue);
    EXPECT_EQ(summary(send(p, store, "<A@X>")), "tempfail 452 4.7.1 Too many messages from A@X");
    EXPECT_EQ(send(p, store, "<b@x>").verdict, Verdict::Continue);  // another key
}

TEST(Limits, AbortedTransactionsDoNotCount) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn());
    auto p = must_load(kSenderHourly);
    for (int i = 0; i < 10; ++i) send(p, store, "<a@x>", /*finish=*/false);
    EXPECT_EQ(store.count("sender-hourly\x1f"
                          "a@x",
                          3600),
              0u);
    EXPECT_EQ(send(p, store, "<a@x>").verdict, Verdict::Continue);
}

TEST(Limits, RejectedMessagesAndRecipientsDoNotCount) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn());
    auto p = must_load(
        "limit \"rcpts\" at rcpt key sender max 2 recipients per 1d tempfail 452 4.5.3\n"
        "rule \"bad\" at rcpt when recipient.local == \"bad\" reject 550 5.1.1\n"
        "rule \"spam\" at message when header[\"Subject\"] == \"spam\" reject\n");
    auto message = [&](std::vector<std::string> rcpts, const std::string& subject) {
        LimitedSession s(p, store);
        testing::start_mail(s.conv, "<a@x>");
        std::string out;
        for (const auto& r : rcpts) out += summary(s.conv.rcpt(r)).substr(0, 8) + ",";
        s.conv.data();
        s.conv.header("Subject", subject);
        s.conv.message();
        return out;
    };
    EXPECT_EQ(message({"<bad@y>", "<bad@y>", "<g1@y>"}, "spam"), "reject 5,reject 5,continue,");
    EXPECT_EQ(testing::count_of(store, "rcpts", "a@x", 86400),
              0u);  // the message was rejected
    EXPECT_EQ(message({"<bad@y>", "<g1@y>", "<g2@y>", "<g3@y>"}, "ok"),
              "reject 5,continue,continue,tempfail,");
    EXPECT_EQ(testing::count_of(store, "rcpts", "a@x", 86400), 2u);
}

TEST(Limits, SlidingWindowWithInjectedClock) {
    FakeClock clock;  // starts 1000 s after its epoch: 280 s into a 360 s slot
    MemoryCounterStore store(clock.fn());
    auto p = must_load(kSenderHourly);
    const std::string key =
        "sender-hourly\x1f"
        "a@x";
    for (int i = 0; i < 3; ++i) send(p, store, "<a@x>");
    EXPECT_TRUE(send(p, store, "<a@x>").refused());
    clock.now_ms += 1800 * 1000;  // half a window later all three are still inside
    EXPECT_TRUE(send(p, store, "<a@x>").refused());
    clock.now_ms += 1800 * 1000;  // exactly one window on: still counted (safe side)
    EXPECT_EQ(store.count(key, 3600), 3u);
    clock.now_ms += 120 * 1000;  // past the slot that held them: gone
    EXPECT_EQ(store.count(key, 3600), 0u);
    EXPECT_EQ(send(p, store, "<a@x>").verdict, Verdict::Continue);
}

TEST(Limits, WindowNeverLetsMoreThroughThanTheLimit) {
    // One event at 0 s and nine at 59 s, max 10 per minute: nothing more may pass until
    // the nine are a minute old.
    FakeClock clock;
    clock.now_ms = 0;
    MemoryCounterStore store(clock.fn());
    testing::expect_window_never_lets_more_through(store, clock.now_ms);
}

TEST(Limits, ConnectionRateCountsAtConnect) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn());
    auto p = must_load(
        "limit \"conn\" at connect key client.ip/64 max 2 per 1m tempfail 421 4.7.0 "
        "\"Too many connections from {client.ip}\"\n");
    auto connect = [&](const char* ip) {
        LimitedSession s(p, store);
        return summary(s.conv.connect(parse_ip(ip), "unknown", 1));
    };
    EXPECT_EQ(connect("2001:db8::1"), "continue");
    EXPECT_EQ(connect("2001:db8::2"), "continue");  // same /64
    EXPECT_EQ(connect("2001:db8::3"), "tempfail 421 4.7.0 Too many connections from 2001:db8::3");
    EXPECT_EQ(connect("2001:db8:0:1::1"), "continue");  // another /64
    EXPECT_EQ(connect("192.0.2.1"), "continue");
}

TEST(Limits, BytesAtMailAndMessage) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn());
    auto p = must_load(kVolumeLimit);
    LimitedSession s(p, store);
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
    EXPECT_EQ(s.conv.mail("<a@x>", "", 600 << 10, false).verdict, Verdict::Continue);
    s.conv.rcpt("<b@y>");
    s.conv.data();
    s.conv.message();
    EXPECT_EQ(summary(s.conv.mail("<a@x>", "", 600 << 10, false)),
              "reject 552 5.3.4 Rejected by policy");
}

TEST(Limits, ObservedLimitStillCounts) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn());
    auto p = must_load("limit \"l\" at mail key sender max 1 per 1h tempfail observe\n");
    send(p, store, "<a@x>");
    Decision d = send(p, store, "<a@x>");
    EXPECT_EQ(d.verdict, Verdict::Continue);
    ASSERT_EQ(d.observed.size(), 1u);
    EXPECT_EQ(testing::count_of(store, "l", "a@x", 3600), 2u);
}

// The example policy shipped in packaging/examples: its quota must not put every bounce
// (null sender) in one bucket, and, as packaging/README.md and README.Debian say, it is
// observed like every rule of the example that is not certain.
TEST(Limits, ExamplePolicySenderQuotaSkipsBouncesAndIsObserved) {
    LoadResult loaded = load_policy_file(PM_EXAMPLES_DIR "/rules.conf");
    ASSERT_NE(loaded.policy, nullptr);
    for (const auto& d : loaded.diagnostics.all()) ADD_FAILURE() << d.to_string();
    FakeClock clock;
    MemoryCounterStore store(clock.fn());
    for (int i = 0; i < 500; ++i) {
        ASSERT_TRUE(send(loaded.policy, store, "<>").observed.empty());
        ASSERT_TRUE(send(loaded.policy, store, "<a@example.org>").observed.empty());
    }
    Decision bounce = send(loaded.policy, store, "<>");
    EXPECT_EQ(bounce.verdict, Verdict::Continue);
    EXPECT_TRUE(bounce.observed.empty());
    Decision over = send(loaded.policy, store, "<a@example.org>");
    EXPECT_EQ(over.verdict, Verdict::Continue);
    ASSERT_EQ(over.observed.size(), 1u);
}

class FailingStore : public CounterStore {
  public:
    std::string describe() const override { return "failing"; }
    std::uint64_t count(const std::string&, std::uint64_t) override { throw StoreError("down"); }
    std::optional<std::size_t> check_and_add(std::span<const CounterAdd>) override {
        throw StoreError("down");
    }
    CounterState inspect(const std::string&, std::uint64_t) override { throw StoreError("down"); }
    CounterState reset(const std::string&, std::uint64_t) override { throw StoreError("down"); }
};

TEST(Limits, StoreErrorTempfailsOrPasses) {
    FailingStore store;
    auto p = must_load(kSenderHourly);
    Conversation c(p, store);
    c.connect(parse_ip("192.0.2.1"), "unknown", 1);
    Decision d = c.mail("<a@x>", "", 0, false);
    EXPECT_EQ(summary(d), "tempfail 451 4.3.0 Local error in processing, try again later");
    EXPECT_NE(d.error.find("store unavailable"), std::string::npos);
    EXPECT_TRUE(d.store_error);  // counted by the statistics (milter/stats.h)
    ConversationOptions pass;
    pass.on_store_error = StoreErrorMode::Pass;
    Conversation c2(p, store, pass);
    c2.connect(parse_ip("192.0.2.1"), "unknown", 1);
    Decision passed = c2.mail("<a@x>", "", 0, false);
    EXPECT_EQ(passed.verdict, Verdict::Continue);
    EXPECT_TRUE(passed.store_error);
    auto pc = must_load("limit \"c\" at connect key client.ip max 5 per 1m tempfail\n");
    Conversation c3(pc, store);
    EXPECT_EQ(summary(c3.connect(parse_ip("192.0.2.1"), "unknown", 1)),
              "tempfail 421 4.3.0 Local error in processing, try again later");
}

TEST(MemoryStore, ManyThreadsCountExactly) {
    MemoryCounterStore store;
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&store, t] {
            for (int i = 0; i < 5000; ++i) {
                store.add("shared", 1, 3600);
                store.add("own" + std::to_string(t), 1, 3600);
                (void)store.count("shared", 3600);
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(store.count("shared", 3600), 40000u);
    EXPECT_EQ(store.count("own3", 3600), 5000u);
}

TEST(MemoryStore, KeyBoundEvictsOldest) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn(), 64);  // one key per shard
    for (int i = 0; i < 1000; ++i) {
        clock.now_ms += 1;
        store.add("k" + std::to_string(i), 1, 60);
    }
    EXPECT_LE(store.key_count(), 64u);
}

}  // namespace
}  // namespace pm

namespace pm {
namespace {

TEST(Limits, AcceptedConnectionCountsNothing) {
    MemoryCounterStore store;
    auto p = must_load(
        "limit \"conn\" at connect key client.ip max 1 per 1m tempfail 421\n"
        "rule \"lan\" at connect when client.ip in [10.0.0.0/8] accept\n");
    for (int i = 0; i < 3; ++i) {
        Conversation c(p, store);
        EXPECT_EQ(c.connect(parse_ip("10.0.0.1"), "unknown", 1).verdict, Verdict::Accept);
    }
}

TEST(Limits, HeloLimitCountsTheConnectionOnce) {
    MemoryCounterStore store;
    auto p = must_load("limit \"h\" at helo key helo max 1 per 1m tempfail 421\n");
    Conversation c(p, store);
    c.connect(parse_ip("192.0.2.1"), "unknown", 1);
    EXPECT_EQ(c.helo("mx.example.").verdict, Verdict::Continue);
    EXPECT_EQ(c.helo("MX.example").verdict, Verdict::Continue);  // EHLO again after STARTTLS
    Conversation c2(p, store);
    c2.connect(parse_ip("192.0.2.1"), "unknown", 1);
    EXPECT_TRUE(c2.helo("mx.example").refused());  // same key as == compares it
}

TEST(Limits, KeyOnAHeader) {
    MemoryCounterStore store;
    auto p =
        must_load("limit \"list\" at message key header[\"List-Id\"] max 1 per 1h tempfail 451\n");
    auto message = [&](const char* list_id) {
        Conversation c(p, store);
        testing::start_mail(c, "<a@x>");
        c.rcpt("<b@y>");
        c.data();
        c.header("List-ID", list_id);
        return c.message().verdict;
    };
    EXPECT_EQ(message("<one.example>"), Verdict::Continue);
    EXPECT_EQ(message("<two.example>"), Verdict::Continue);
    EXPECT_EQ(message("<ONE.example>"), Verdict::Tempfail);
}

TEST(Limits, DiscardedMessageCountsAndEndsTheMessage) {
    MemoryCounterStore store;
    auto p = must_load(
        "limit \"l\" at mail key sender max 1 per 1h tempfail\n"
        "rule \"drop\" at rcpt when recipient.local == \"spamtrap\" discard\n"
        "rule \"never\" at data reject\n");
    Conversation c(p, store);
    testing::start_mail(c, "<a@x>");
    EXPECT_EQ(c.rcpt("<spamtrap@y>").verdict, Verdict::Discard);
    EXPECT_EQ(c.data().verdict, Verdict::Continue);  // nothing more is decided for it
    EXPECT_EQ(testing::count_of(store, "l", "a@x", 3600), 1u);
}

}  // namespace
}  // namespace pm

namespace pm {
namespace {

// The milter asks the MTA only for what the policy uses: a limit must count as using
// the field it counts.
TEST(Limits, CountedFieldIsMarkedUsed) {
    EXPECT_TRUE(must_load("limit \"v\" at message key sender max 50MB per 1d reject\n")
                    ->uses_field(FieldId::MessageSize));
    EXPECT_TRUE(must_load("limit \"v\" at mail key sender max 50MB per 1d reject\n")
                    ->uses_field(FieldId::MailSize));
    EXPECT_TRUE(must_load("limit \"r\" at data key sender max 5 recipients per 1d tempfail\n")
                    ->uses_field(FieldId::RcptCount));
    EXPECT_FALSE(must_load("limit \"m\" at mail key sender max 5 per 1d tempfail\n")
                     ->uses_field(FieldId::MessageSize));
}

}  // namespace
}  // namespace pm

namespace pm {
namespace {

// Two transactions of one sender in parallel, one slot left: both pass their mail-stage
// check, the first to end takes the slot, the second is refused at end of message with
// the limit's reply (in a code the message stage allows) and counts nothing.
TEST(Limits, ConcurrentTransactionsNeverOverAdmit) {
    MemoryCounterStore store;
    auto p = must_load(
        "limit \"s\" at mail key sender max 1 per 1h tempfail 452 4.7.1 \"Too many from "
        "{sender}\"\n"
        "limit \"r\" at rcpt key sender max 1 recipients per 1h reject 553 5.7.1 \"Too many\"\n");
    auto open = [&](Conversation& c) {
        c.connect(parse_ip("192.0.2.1"), "unknown", 1);
        EXPECT_EQ(c.mail("<a@x>", "", 0, false).verdict, Verdict::Continue);
        EXPECT_EQ(c.rcpt("<b@y>").verdict, Verdict::Continue);
        c.data();
    };
    Conversation one(p, store), two(p, store);
    open(one);
    open(two);
    EXPECT_EQ(one.message().verdict, Verdict::Continue);
    Decision d = two.message();
    // The first limit in key order that is full decides: "r" (553 is not allowed after
    // the final dot: the stage's default 554 with the limit's enhanced code and text).
    EXPECT_EQ(summary(d), "reject 554 5.7.1 Too many");
    EXPECT_NE(d.error.find("concurrent"), std::string::npos);
    EXPECT_FALSE(d.store_error);  // a full limit, not a store failure
    EXPECT_EQ(testing::count_of(store, "s", "a@x", 3600), 1u);
    EXPECT_EQ(testing::count_of(store, "r", "a@x", 3600), 1u);
}

TEST(Limits, ConcurrentCommitKeepsAnAllowedCode) {
    MemoryCounterStore store;
    auto p = must_load(
        "limit \"s\" at mail key sender max 1 per 1h tempfail 452 4.7.1 \"Too many from "
        "{sender}\"\n");
    Conversation one(p, store), two(p, store);
    to_end_of_data(one);
    to_end_of_data(two);
    EXPECT_EQ(one.message().verdict, Verdict::Continue);
    EXPECT_EQ(summary(two.message()), "tempfail 452 4.7.1 Too many from a@x");
}

TEST(Limits, ObservedLimitCommitsOverItsMax) {
    MemoryCounterStore store;
    auto p = must_load("limit \"s\" at mail key sender max 1 per 1h tempfail observe\n");
    Conversation one(p, store), two(p, store);
    to_end_of_data(one);
    to_end_of_data(two);
    EXPECT_EQ(one.message().verdict, Verdict::Continue);
    EXPECT_EQ(two.message().verdict, Verdict::Continue);
    EXPECT_EQ(testing::count_of(store, "s", "a@x", 3600), 2u);
}

TEST(Limits, StoreFailingAtCommit) {
    // Counting works, committing fails: tempfail 451 4.3.0 at end of message, or pass.
    class CommitFails : public MemoryCounterStore {
      public:
        std::optional<std::size_t> check_and_add(std::span<const CounterAdd>) override {
            throw StoreError("down");
        }
    };
    CommitFails store;
    auto p = must_load(kSenderHourly);
    for (auto mode : {StoreErrorMode::Tempfail, StoreErrorMode::Pass}) {
        ConversationOptions o;
        o.on_store_error = mode;
        Conversation c(p, store, o);
        testing::start_mail(c, "<a@x>");
        c.rcpt("<b@y>");
        c.data();
        Decision d = c.message();
        if (mode == StoreErrorMode::Tempfail)
            EXPECT_EQ(summary(d), "tempfail 451 4.3.0 Local error in processing, try again later");
        else
            EXPECT_EQ(d.verdict, Verdict::Continue);
        EXPECT_NE(d.error.find("store unavailable"), std::string::npos);
        EXPECT_TRUE(d.store_error);
    }
}

TEST(MemoryStore, InspectAndReset) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn());
    testing::expect_inspect_and_reset(store, clock.now_ms);
}

TEST(MemoryStore, CheckAndAddIsAllOrNothing) {
    MemoryCounterStore store;
    testing::expect_check_and_add_is_all_or_nothing(store);
}

TEST(MemoryStore, ManyThreadsNeverTakeMoreThanTheMax) {
    MemoryCounterStore store;
    std::atomic<int> taken{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 200; ++i) {
                std::vector<CounterAdd> adds{{"shared", 1, 3600, 500},
                                             {"other" + std::to_string(i % 7), 1, 3600}};
                if (!store.check_and_add(adds)) ++taken;
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(taken.load(), 500);
    EXPECT_EQ(store.count("shared", 3600), 500u);
}

TEST(MemoryStore, CountsSaturate) {
    MemoryCounterStore store;
    testing::expect_counts_saturate(store);
}

TEST(MemoryStore, LongKeysCountApart) {
    MemoryCounterStore store;
    testing::expect_long_keys_count_apart(store);
}

// A declared SIZE of 2^64-1 (what strtoull made of "SIZE=-1") after a 900 KB message:
// refused by a 1 MB limit, and the count stays.
TEST(Limits, HugeDeclaredSizeCannotWrapABytesLimit) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn());
    auto p = must_load(kVolumeLimit);
    {
        LimitedSession s(p, store);
        s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
        EXPECT_EQ(s.conv.mail("<a@x>", "", 900'000, false).verdict, Verdict::Continue);
        s.conv.rcpt("<b@y>");
        s.conv.data();
        s.conv.message();
    }
    LimitedSession s(p, store);
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
    EXPECT_EQ(summary(s.conv.mail("<a@x>", "", std::numeric_limits<std::uint64_t>::max(), false)),
              "reject 552 5.3.4 Rejected by policy");
    EXPECT_EQ(testing::count_of(store, "vol", "a@x", 86400), 900'000u);
}

// Counters whose window has passed go as the store is used, without a bound forcing them.
TEST(MemoryStore, ExpiredCountersAreSwept) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn());
    for (int i = 0; i < 2000; ++i) store.add("old" + std::to_string(i), 1, 60);
    EXPECT_EQ(store.key_count(), 2000u);
    clock.now_ms += 67'000;  // past the window and the slot that straddles its start
    for (int i = 0; i < 4000; ++i) (void)store.count("probe" + std::to_string(i), 60);
    EXPECT_EQ(store.key_count(), 0u);
    store.add("new", 1, 60);
    EXPECT_EQ(store.key_count(), 1u);
}

// A client refused at its max stops adding; a flood of new keys must not evict its counter
// before the others, or the flood would reset the client.
TEST(MemoryStore, CounterAtMaxIsEvictedLast) {
    FakeClock clock;
    MemoryCounterStore store(clock.fn(), 64 * 8);  // 8 keys per shard
    std::vector<CounterAdd> blocked{{"blocked", 1, 3600, 3}};
    for (int i = 0; i < 3; ++i) EXPECT_EQ(store.check_and_add(blocked), std::nullopt);
    EXPECT_EQ(store.check_and_add(blocked), std::optional<std::size_t>(0));
    for (int i = 0; i < 20'000; ++i) {
        clock.now_ms += 10;
        store.add("flood" + std::to_string(i), 1, 3600);
    }
    EXPECT_EQ(store.count("blocked", 3600), 3u);
    EXPECT_LE(store.key_count(), 64u * 8);
}

// With the unseeded std::hash of the old store, keys chosen to share a shard with a
// victim's key evicted it; the seeded shard choice spreads them over every shard.
TEST(MemoryStore, ShardsCannotBeAimedAt) {
    MemoryCounterStore store(system_clock_ms(), 64 * 256);  // 256 keys per shard
    const std::string victim = "victim";
    store.add(victim, 1, 3600);
    std::size_t target = std::hash<std::string>{}(victim) % 64;
    int sent = 0;
    for (int i = 0; sent < 8000; ++i) {
        std::string k = "aimed" + std::to_string(i);
        if (std::hash<std::string>{}(k) % 64 != target) continue;
        store.add(k, 1, 3600);
        ++sent;
    }
    EXPECT_EQ(store.count(victim, 3600), 1u);
}

long resident_kib() {
    std::ifstream statm("/proc/self/statm");
    long size = 0, resident = 0;
    statm >> size >> resident;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Keys of 60 KB (a limit keyed on a sender-chosen header) cost what short keys cost.
TEST(MemoryStore, LongKeysCostNoMoreMemory) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "a sanitizer's quarantine and shadow memory make RSS meaningless";
#endif
    MemoryCounterStore store;
    std::string value(60'000, 'x');
    long before = resident_kib();
    for (int i = 0; i < 2000; ++i) store.add("by-from\x1f" + std::to_string(i) + value, 1, 3600);
    long grown_kib = resident_kib() - before;
    EXPECT_EQ(store.key_count(), 2000u);
    EXPECT_LT(grown_kib, 8 * 1024) << "2,000 keys of 60 KB grew RSS by " << grown_kib << " KiB";
}

}  // namespace
}  // namespace pm
