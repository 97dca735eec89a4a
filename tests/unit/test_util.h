// Shared helpers for the policy unit tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "policy/conversation.h"
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

}  // namespace pm::testing
