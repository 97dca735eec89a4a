// SPDX-License-Identifier: BSD-2-Clause
// ESMTP SIZE= (RFC 1870): digits only, so a hostile value cannot wrap a bytes limit.
#include <gtest/gtest.h>

#include <limits>

#include "policy/esmtp.h"

namespace pm {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

TEST(EsmtpSize, AcceptsOneToTwentyDigits) {
    EXPECT_EQ(parse_esmtp_size("0"), 0u);
    EXPECT_EQ(parse_esmtp_size("921600"), 921600u);
    EXPECT_EQ(parse_esmtp_size("00000000000000000001"), 1u);  // 20 digits
    EXPECT_EQ(parse_esmtp_size("18446744073709551615"), kMax);
}

TEST(EsmtpSize, TwentyDigitsAboveTheRangeSaturate) {
    EXPECT_EQ(parse_esmtp_size("18446744073709551616"), kMax);
    EXPECT_EQ(parse_esmtp_size("99999999999999999999"), kMax);
}

TEST(EsmtpSize, AnythingElseIsAbsent) {
    for (const char* bad : {"", "-1", "+5", " 5", "5 ", "5\t", "0x10", "1e6", "5K", "５",
                            "123456789012345678901" /* 21 digits */, "-0", "1,000"})
        EXPECT_EQ(parse_esmtp_size(bad), std::nullopt) << "'" << bad << "'";
}

}  // namespace
}  // namespace pm
