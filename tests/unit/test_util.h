// Shared helpers for the policy unit tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/conversation.h"
#include "policy/counter_store.h"
#include "policy/policy.h"

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
        : policy(std::move(p)), conv([this] { return policy; }, store, o) {}
    std::shared_ptr<const Policy> policy;
    MemoryCounterStore store;
    Conversation conv;
};

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

}  // namespace pm::testing
