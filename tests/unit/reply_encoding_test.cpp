// SPDX-License-Identifier: BSD-2-Clause
// milter/reply_encoding.h: a reply as libmilter can send it (policy-milter.rules(5),
// Templates): '%' doubled, at most 980 octets counted that way.
#include <gtest/gtest.h>

#include <string>

#include "milter/reply_encoding.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;
using testing::Session;

TEST(ReplyEncoding, PrefixStopsBeforeTheOctetOverTheLimit) {
    EXPECT_EQ(milter_fitting_prefix(std::string(980, 'a')).size(), 980u);
    EXPECT_EQ(milter_fitting_prefix(std::string(981, 'a')).size(), 980u);
    // A '%' that would take the doubled text to 981 octets is left out whole.
    EXPECT_EQ(milter_fitting_prefix(std::string(979, 'a') + "%").size(), 979u);
    EXPECT_EQ(milter_fitting_prefix(std::string(978, 'a') + "%").size(), 979u);
    EXPECT_EQ(milter_fitting_prefix(std::string(600, '%')).size(), 490u);
    EXPECT_EQ(milter_fitting_prefix("").size(), 0u);
}

// Every reply of a decision is cut, the observed rules' too: the log shows what the
// client would have got.
TEST(ReplyEncoding, FitCutsEveryReplyOfTheDecision) {
    ConversationOptions observe;
    observe.observe_all = true;
    Session s(must_load(R"(rule "r" at rcpt reject 550 5.1.1 "<{recipient}>")"), observe);
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 25);
    s.conv.mail("<a@x>", "", 0, false);
    Decision d = s.conv.rcpt("<" + std::string(600, '%') + "@x>");
    ASSERT_EQ(d.observed.size(), 1u);
    ASSERT_TRUE(d.observed[0].reply);
    EXPECT_GT(milter_reply_text(*d.observed[0].reply).size(), kMaxMilterReplyText);
    fit_replies_for_milter(d);
    // "<" and 489 '%': 979 octets for libmilter, one more '%' would be 981.
    EXPECT_EQ(milter_reply_text(*d.observed[0].reply).size(), kMaxMilterReplyText - 1);
    EXPECT_EQ(d.observed[0].reply->text, "<" + std::string(489, '%'));
}

}  // namespace
}  // namespace pm
