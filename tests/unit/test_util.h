// SPDX-License-Identifier: BSD-2-Clause
// Shared helpers for the policy unit tests.
#pragma once

#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/conversation.h"
#include "policy/counter_store.h"
#include "policy/facts.h"
#include "policy/policy.h"
#include "store/memory_counter_store.h"

namespace pm::testing {

// Loads rules that must be valid; fails the test with the diagnostics otherwise.
inline std::shared_ptr<const Policy> must_load(const std::string& text,
                                               const std::string& base_dir = ".") {
    LoadResult r = load_policy_text(text, "t.rules", base_dir);
    std::string diags;
    for (const auto& d : r.diagnostics.all()) diags += d.to_string() + "\n";
    EXPECT_TRUE(r.policy) << diags;
    return r.policy;
}

// All diagnostics of a load, one per line.
inline std::string diagnostics_of(const std::string& text, const std::string& base_dir = ".") {
    LoadResult r = load_policy_text(text, "t.rules", base_dir);
    std::string out;
    for (const auto& d : r.diagnostics.all()) out += d.to_string() + "\n";
    return out;
}

// A session with its own counter store, for driving stages in tests.
struct Session {
    explicit Session(std::shared_ptr<const Policy> p, ConversationOptions o = {})
        : policy(std::move(p)), conv(policy, store, o) {}
    std::shared_ptr<const Policy> policy;
    MemoryCounterStore store;
    Conversation conv;
};

// The count of one limit's key for one value: storage keys join the limit name and the
// key's value with \x1f (policy-milter.rules(5), LIMITS).
inline std::uint64_t count_of(CounterStore& store, const std::string& limit,
                              const std::string& value, std::uint64_t window_seconds) {
    return store.count(limit + "\x1f" + value, window_seconds);
}

// The facts of a session from mx.example.net [ip] port 4711 that said HELO mx.example.net
// and gave MAIL FROM sender with SIZE=size.
inline Facts mx_facts(const std::string& ip, const std::string& sender, std::uint64_t size) {
    Facts f;
    f.set_client(parse_ip(ip), "mx.example.net", 4711);
    f.set_helo("mx.example.net");
    f.set_sender(sender, "", size, false);
    return f;
}

// One input and what a function gives for it, for table-driven checks.
struct Case {
    std::string input;
    std::string expected;
};

// Checks f(input) == expected for each case; a failure names its input.
template <class F>
void expect_each(F f, const std::vector<Case>& cases) {
    for (const Case& c : cases) {
        SCOPED_TRACE("input: " + c.input);
        EXPECT_EQ(f(c.input), c.expected);
    }
}

// Opens a transaction: a connect from 192.0.2.1 (no name) and MAIL FROM sender, their
// decisions not looked at.
inline void start_mail(Conversation& c, const std::string& sender) {
    c.connect(parse_ip("192.0.2.1"), "unknown", 1);
    c.mail(sender, "", 0, false);
}

// "reject 550 5.1.1 text" or "pass" or "continue": a compact view of a decision.
inline std::string summary(const Decision& d) {
    std::string s(verdict_name(d.verdict));
    if (d.reply) s += " " + d.reply->line();
    return s;
}

// The CounterStore contract both stores must keep (memory in tests/unit, Redis in
// tests/redis): check_and_add takes every count or none, and names the refusing one.
inline void expect_check_and_add_is_all_or_nothing(CounterStore& store) {
    store.add("b", 2, 60);
    std::vector<CounterAdd> adds{{"a", 1, 60, 5}, {"b", 1, 60, 2}};
    EXPECT_EQ(store.check_and_add(adds), std::optional<std::size_t>(1));
    EXPECT_EQ(store.count("a", 60), 0u);
    adds[1].max = 3;
    EXPECT_EQ(store.check_and_add(adds), std::nullopt);
    EXPECT_EQ(store.count("a", 60), 1u);
    EXPECT_EQ(store.count("b", 60), 3u);
}

// Counts saturate in both stores (at 2^64-1 in memory, 2^53-1 in Redis): a huge amount
// never wraps a count down, and is refused by any max it does not fit.
inline void expect_counts_saturate(CounterStore& store) {
    constexpr std::uint64_t kHuge = std::numeric_limits<std::uint64_t>::max();
    store.add("sat", kHuge, 60);
    store.add("sat", kHuge, 60);
    std::uint64_t full = store.count("sat", 60);
    EXPECT_GE(full, (1ull << 53) - 1);
    std::vector<CounterAdd> one{{"sat", 1, 60, 1'000'000}};
    EXPECT_EQ(store.check_and_add(one), std::optional<std::size_t>(0));
    EXPECT_EQ(store.count("sat", 60), full);
    // After 900 KB, SIZE=-1 (read as 2^64-1) must not pass a 1 MB limit by wrapping.
    store.add("bytes", 900'000, 60);
    std::vector<CounterAdd> wrap{{"bytes", kHuge, 60, 1u << 20}};
    EXPECT_EQ(store.check_and_add(wrap), std::optional<std::size_t>(0));
    EXPECT_EQ(store.count("bytes", 60), 900'000u);
}

// A key part of any length is its own counter: two 100 KB header values that differ in
// their last byte count apart, and the same value counts together.
inline void expect_long_keys_count_apart(CounterStore& store) {
    std::string a = "from-limit\x1f" + std::string(100'000, 'x') + "a";
    std::string b = "from-limit\x1f" + std::string(100'000, 'x') + "b";
    store.add(a, 2, 60);
    store.add(b, 5, 60);
    store.add(a, 1, 60);
    EXPECT_EQ(store.count(a, 60), 3u);
    EXPECT_EQ(store.count(b, 60), 5u);
    // A raw part that looks like a hashed one is hashed too, so it cannot collide.
    std::string hashed_b = storage_key(b).substr(storage_key(b).find('\x1f') + 1);
    EXPECT_EQ(hashed_b.front(), '#');
    EXPECT_EQ(store.count("from-limit\x1f" + hashed_b, 60), 0u);
    // A value that splits itself into thousands of short parts with \x1f is bounded too.
    std::string split = "from-limit";
    for (int i = 0; i < 2000; ++i) split += "\x1f" + std::to_string(i) + std::string(50, 'y');
    EXPECT_LE(storage_key(split).size(), 512u);
    store.add(split, 4, 60);
    EXPECT_EQ(store.count(split, 60), 4u);
    EXPECT_EQ(store.count(split + "z", 60), 0u);
}

// The sliding window both stores keep: one event at 0 s and nine at 59 s, max 10 per
// minute: nothing more may pass until the nine are a minute old. now_ms is the store's
// fake clock (a plain or an atomic count of milliseconds).
template <class Millis>
void expect_window_never_lets_more_through(CounterStore& store, Millis& now_ms) {
    now_ms = 0;
    store.add("k", 1, 60);
    now_ms = 59'000;
    store.add("k", 9, 60);
    for (std::uint64_t t = 59'000; t < 119'000; t += 500) {
        now_ms = t;
        EXPECT_GE(store.count("k", 60), 9u) << "at " << t << " ms";
    }
    now_ms = 126'000;  // at most one 6 s slot late
    EXPECT_EQ(store.count("k", 60), 0u);
}

// inspect() and reset() (policy-milter --ctl limit-show, limit-reset) on either store:
// a 60 s window is kept in 6 s slots, and a slot leaves the window 11 slots after it
// started (policy/counter_store.h, CounterState).
template <class Millis>
void expect_inspect_and_reset(CounterStore& store, Millis& now_ms) {
    now_ms = 0;
    store.add("k", 1, 60);
    now_ms = 30'000;
    store.add("k", 2, 60);
    store.add("other", 5, 60);
    now_ms = 31'000;
    CounterState s = store.inspect("k", 60);
    EXPECT_EQ(s.count, 3u);
    EXPECT_EQ(s.count, store.count("k", 60));
    EXPECT_EQ(s.next_drop_ms, 66'000u - 31'000u);  // the slot of 0 s leaves at 66 s
    EXPECT_EQ(s.zero_ms, 96'000u - 31'000u);       // the slot of 30 s at 96 s
    now_ms = 66'000;
    s = store.inspect("k", 60);
    EXPECT_EQ(s.count, 2u);
    EXPECT_EQ(s.next_drop_ms, 30'000u);
    EXPECT_EQ(s.zero_ms, 30'000u);
    // A key never counted, and one under another window, are 0 with nothing to wait for.
    s = store.inspect("never", 60);
    EXPECT_EQ(s.count, 0u);
    EXPECT_EQ(s.zero_ms, 0u);
    EXPECT_EQ(store.inspect("k", 120).count, 0u);

    s = store.reset("k", 60);
    EXPECT_EQ(s.count, 2u);
    EXPECT_EQ(s.zero_ms, 30'000u);
    EXPECT_EQ(store.count("k", 60), 0u);
    EXPECT_EQ(store.inspect("k", 60).zero_ms, 0u);
    EXPECT_EQ(store.count("other", 60), 5u);  // only that key
    EXPECT_EQ(store.reset("k", 60).count, 0u);
    // After a reset the key counts afresh, up to its max again.
    CounterAdd a{"k", 1, 60, 1};
    EXPECT_EQ(store.check_and_add({&a, 1}), std::nullopt);
    EXPECT_EQ(store.check_and_add({&a, 1}), std::optional<std::size_t>(0));
    // A reset forgets the key under any window (a reload may have changed it).
    store.add("w", 4, 120);
    EXPECT_EQ(store.reset("w", 60).count, 0u);
    EXPECT_EQ(store.count("w", 120), 0u);
    // Long keys are hashed the same way by every operation.
    std::string long_key = "id\x1f" + std::string(300, 'q');
    store.add(long_key, 3, 60);
    EXPECT_EQ(store.inspect(long_key, 60).count, 3u);
    EXPECT_EQ(store.reset(long_key, 60).count, 3u);
    EXPECT_EQ(store.count(long_key, 60), 0u);
}

}  // namespace pm::testing
