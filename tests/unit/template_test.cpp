// SPDX-License-Identifier: BSD-2-Clause
// policy-milter.rules(5), Templates: reply text expansion is safe for SMTP and libmilter whatever
// the client sent.
#include <gtest/gtest.h>

#include "milter/reply_encoding.h"
#include "policy/decision.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;
using testing::Session;

Decision reject_rcpt(const std::string& text, const std::string& rcpt) {
    Session s(must_load("rule \"r\" at rcpt reject 550 5.1.1 \"" + text + "\""));
    testing::start_mail(s.conv, "<a@x>");
    return s.conv.rcpt(rcpt);
}

TEST(Template, ExpandsFieldsAndLiteralBraces) {
    Session s(
        must_load("rule \"r\" at rcpt reject 550 5.1.1 \"{{{recipient}} from {sender} "
                  "via {client.ip} {helo} n={rcpt.count} }\""));
    s.conv.connect(parse_ip("2001:db8::1"), "unknown", 1);
    s.conv.helo("Mx.Example");
    s.conv.mail("<A@X>", "", 0, false);
    EXPECT_EQ(s.conv.rcpt("<B@Y>").reply->line(),
              "550 5.1.1 {B@Y} from A@X via 2001:db8::1 Mx.Example n=1 }");
}

TEST(Template, PercentIsDoubledOnlyForLibmilter) {
    Decision d = reject_rcpt("<{recipient}> 100% refused", "<50%off@x>");
    EXPECT_EQ(d.reply->line(), "550 5.1.1 <50%off@x> 100% refused");
    EXPECT_EQ(milter_reply_text(*d.reply), "<50%%off@x> 100%% refused");
}

TEST(Template, ControlCharactersBecomeSpaces) {
    Decision d = reject_rcpt("no {recipient}", std::string("<a\r\n250 ok") + '\0' + "\tb@x>");
    EXPECT_EQ(d.reply->text, "no a  250 ok  b@x");
    for (char c : d.reply->line()) EXPECT_TRUE(c >= 0x20 && c < 0x7F) << int(c);
}

TEST(Template, NonAsciiBecomesQuestionMarks) {
    Decision d = reject_rcpt("no {recipient}", "<j\xc3\xbcrgen@b\xc3\xa4r.example>");
    EXPECT_EQ(d.reply->text, "no j??rgen@b??r.example");
}

TEST(Template, LongAddressIsCutToTheReplyLineLimit) {
    std::string huge(10000, 'a');
    Decision d = reject_rcpt("<{recipient}>: unknown", "<" + huge + "@x>");
    EXPECT_EQ(d.reply->line().size() + 2, kMaxReplyLine);  // + CRLF
    EXPECT_EQ(d.reply->line().substr(0, 11), "550 5.1.1 <");
}

TEST(Template, PercentNearTheCutStillFitsAfterDoubling) {
    std::string many(2000, '%');
    Decision d = reject_rcpt("{recipient}", "<" + many + "@x>");
    EXPECT_LE(d.reply->line().size() + 2, kMaxReplyLine);
    // The milter cuts it shorter than the line allows, so that libmilter takes it with
    // '%' doubled.
    fit_replies_for_milter(d);
    EXPECT_EQ(milter_reply_text(*d.reply).size(), 2 * d.reply->text.size());
    EXPECT_EQ(milter_reply_text(*d.reply).size(), kMaxMilterReplyText);
}

TEST(Template, HeaderAndMultiRecipientExpansion) {
    Session s(must_load(
        "rule \"r\" at message reject 554 5.7.1 \"{header[\\\"Subject\\\"]} to {recipient}\""));
    testing::start_mail(s.conv, "<a@x>");
    s.conv.rcpt("<b@y>");
    s.conv.rcpt("<c@y>");
    s.conv.data();
    s.conv.header("Subject", "Hi\r\n there");
    EXPECT_EQ(s.conv.message().reply->line(), "554 5.7.1 Hi   there to b@y, c@y");
}

TEST(Template, AddHeaderValueIsSanitisedToo) {
    Session s(must_load("rule \"r\" at message add-header \"X-From\" \"{sender}\""));
    testing::start_mail(s.conv, "<a\nBcc: victim@x>");
    s.conv.rcpt("<b@y>");
    s.conv.data();
    Decision d = s.conv.message();
    ASSERT_EQ(d.headers_to_add.size(), 1u);
    EXPECT_EQ(d.headers_to_add[0].second, "a Bcc: victim@x");
}

TEST(Template, SanitizeKeepsPrintableAscii) {
    EXPECT_EQ(sanitize_reply_text("plain text ~!", 10), "plain text ~!");
    EXPECT_EQ(sanitize_reply_text(std::string("\x7f\x01", 2), 10), "  ");
}

}  // namespace
}  // namespace pm
