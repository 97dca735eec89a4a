// Small glob sets are matched piece by piece, large ones by one RE2::Set: both must
// agree on every input.
#include <gtest/gtest.h>

#include <random>

#include "policy/list_matcher.h"

namespace pm {
namespace {

const std::vector<std::string> kGlobs = {"*",           "a*",    "*b",      "a*b",    "*ab*",
                                         "a*b*c",       "ab",    "*a*a*",   "x*@*.y", "**",
                                         "*-bounces@*", "aa*aa", "*.dsl.*", "a*a"};

TEST(GlobSet, SmallAndLargeSetsAgree) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> len(0, 8), pick(0, 6);
    const char alphabet[] = {'a', 'b', 'c', '@', '.', 'x', 'y'};
    for (const auto& glob : kGlobs) {
        GlobSet small;
        small.add(glob);
        ASSERT_EQ(small.finish(), "");
        GlobSet large;  // the same glob among enough others to take the RE2::Set path
        large.add(glob);
        for (int i = 0; i < 80; ++i) large.add("zz" + std::to_string(i) + "*qq");
        ASSERT_EQ(large.finish(), "");
        for (int n = 0; n < 3000; ++n) {
            std::string s;
            for (int i = len(rng); i > 0; --i) s += alphabet[pick(rng)];
            EXPECT_EQ(small.matches(s), large.matches(s))
                << "glob '" << glob << "' value '" << s << "'";
        }
    }
}

TEST(GlobSet, Examples) {
    GlobSet g;
    g.add("*-bounces@*");
    g.add("ab*cd@x.example");
    ASSERT_EQ(g.finish(), "");
    EXPECT_TRUE(g.matches("list-bounces@lists.example"));
    EXPECT_TRUE(g.matches("abcd@x.example"));
    EXPECT_TRUE(g.matches("ab-x-cd@x.example"));
    EXPECT_FALSE(g.matches("abc@x.example"));
    EXPECT_FALSE(g.matches("bounces@x"));
    EXPECT_FALSE(GlobSet().matches("anything"));
}

}  // namespace
}  // namespace pm
