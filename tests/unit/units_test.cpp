// SPDX-License-Identifier: BSD-2-Clause
// Sizes and durations as rules and list items write them (policy/units.h).
#include <gtest/gtest.h>

#include <cstdint>

#include "policy/units.h"

namespace pm {
namespace {

TEST(Units, Sizes) {
    std::uint64_t n = 7;
    EXPECT_TRUE(parse_size("0", n));
    EXPECT_EQ(n, 0u);
    EXPECT_TRUE(parse_size("20MB", n));
    EXPECT_EQ(n, 20u << 20);
    EXPECT_TRUE(parse_size("1536K", n));
    EXPECT_EQ(n, 1536u << 10);
    EXPECT_TRUE(parse_size("2G", n));
    EXPECT_EQ(n, 2ull << 30);
    EXPECT_TRUE(parse_size("18446744073709551615", n));
    EXPECT_EQ(n, UINT64_MAX);
    n = 7;
    for (const char* bad :
         {"", "M", "20mb", "1.5M", "20 MB", "20T", "-1", "17179869184G", "18446744073709551616"}) {
        EXPECT_FALSE(parse_size(bad, n)) << bad;
        EXPECT_EQ(n, 7u) << bad;  // untouched on failure
    }
}

TEST(Units, Durations) {
    std::uint64_t s = 7;
    EXPECT_TRUE(parse_duration("30s", s));
    EXPECT_EQ(s, 30u);
    EXPECT_TRUE(parse_duration("10m", s));
    EXPECT_EQ(s, 600u);
    EXPECT_TRUE(parse_duration("1h", s));
    EXPECT_EQ(s, 3600u);
    EXPECT_TRUE(parse_duration("1d", s));
    EXPECT_EQ(s, 86400u);
    s = 7;
    for (const char* bad : {"", "0s", "1", "1H", "1w", "1hh", "h", "-1s", "213503982334602d"}) {
        EXPECT_FALSE(parse_duration(bad, s)) << bad;
        EXPECT_EQ(s, 7u) << bad;
    }
}

TEST(Units, ProblemsSayWhy) {
    EXPECT_EQ(size_problem("20mb"), "units are upper case: 20MB");
    EXPECT_EQ(size_problem("1.5M"), "sizes are whole numbers: write 1536K, not 1.5M");
    EXPECT_EQ(size_problem("20T"), "unit 'T' is not one of K, KB, M, MB, G, GB (powers of 1024)");
    EXPECT_EQ(size_problem("99999999999999999999"), "the number is too large");
    EXPECT_EQ(size_problem("many"), "");
    EXPECT_EQ(duration_problem("1H"), "units are lower case: 1h");
    EXPECT_EQ(duration_problem("10"), "a duration needs a unit: s, m, h or d");
    EXPECT_EQ(duration_problem("0s"), "a duration is more than zero");
    EXPECT_EQ(duration_problem("2w"), "unit 'w' is not s, m, h or d");
    EXPECT_EQ(duration_problem("soon"), "");
}

}  // namespace
}  // namespace pm
