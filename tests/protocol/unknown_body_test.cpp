// SPDX-License-Identifier: BSD-2-Clause
// The unknown stage and the body conditions at the milter protocol (issue 17), through the
// project's own milter client: the exact reply to an unknown command, hostile commands, a
// body match across two body packets, the scan limit, and what the negotiation switches
// off: SMFIP_NOUNKNOWN without an unknown rule, SMFIP_NOBODY without a body condition.
#include <gtest/gtest.h>
#include <libmilter/mfapi.h>

#include <cstdint>
#include <string>

#include "milter_client.h"
#include "protocol_fixture.h"

namespace pm::protocol {
namespace {

using mc::Outcome;

constexpr std::uint32_t kAllActions = 0x1FF;
constexpr std::uint32_t kAllSteps = 0x1FFFFF;

const char* const kUnknownRules = R"(
rule "xyzzy" at unknown when command matches /^XYZZY/i
    reject 502 5.5.2 "Command {command} not recognized"
rule "plugh" at unknown when command == "plugh"
    tempfail 421 4.7.0 "Go away"
)";

const char* const kBodyRules = R"(
rule "lottery" at message when body contains "lottery winner"
    reject 554 5.7.1 "Message content rejected"
rule "pills" at message when body matches /^cheap pills$/i
    reject 550 5.7.1 "No pills"
)";

mc::Response connect_info(mc::Client& c) {
    return c.connect_info("mx.example.net", SMFIA_INET, 4242, "203.0.113.10",
                          {{"{client_name}", "mx.example.net"}});
}

void to_data(mc::Client& c) {
    c.helo("client.example");
    c.mail({"<alice@example.net>"});
    c.rcpt({"<bob@example.com>"});
    c.data();
    c.header("Subject", "hello");
    c.end_of_header();
}

class UnknownBody : public OwnDaemon {};

TEST_F(UnknownBody, UnknownCommandsGetTheRulesReply) {
    ASSERT_NO_FATAL_FAILURE(start("unknown", kUnknownRules));
    mc::Client c = daemon_->connect();
    mc::Negotiated n = c.negotiate(kAllActions, kAllSteps);
    EXPECT_EQ(n.protocol & SMFIP_NOUNKNOWN, 0u);
    EXPECT_EQ(n.protocol & SMFIP_NR_UNKN, 0u);  // the MTA waits for the reply
    connect_info(c);
    EXPECT_TRUE(IsReply(c.unknown("XYZZY foo"), 502, "5.5.2", "Command XYZZY foo not recognized"));
    EXPECT_TRUE(Is(c.unknown("FROBNICATE"), Outcome::Continue));
    // Hostile: '%' doubled for libmilter, control bytes made spaces, 8-bit bytes '?', and
    // a 5,000-byte command cut (the reply stays within the line).
    EXPECT_TRUE(IsReply(c.unknown("xyzzy 100%\t%s\x01\xc3\xa9"), 502, "5.5.2",
                        "Command xyzzy 100%% %%s ?? not recognized"));
    mc::Response r = c.unknown("XYZZY " + std::string(5000, 'A'));
    EXPECT_EQ(r.outcome, Outcome::ReplyCode);
    EXPECT_EQ(r.code, 502);
    EXPECT_LE(r.reply.size(), 510u);
    // Inside a transaction too (whose steps this policy switched off); it goes on.
    EXPECT_TRUE(Is(c.helo("client.example"), Outcome::NoReply));
    EXPECT_TRUE(Is(c.mail({"<alice@example.net>"}), Outcome::NotSent));
    EXPECT_TRUE(IsReply(c.unknown("XYZZY"), 502, "5.5.2", "Command XYZZY not recognized"));
    EXPECT_TRUE(Is(c.rcpt({"<bob@example.com>"}), Outcome::NotSent));
    EXPECT_TRUE(IsReply(c.unknown("PLUGH"), 421, "4.7.0", "Go away"));
}

// No early accept while an unknown rule may still decide: the connection is not accepted
// at connect (an unknown-only policy), nor the message at MAIL (with a mail rule).
TEST_F(UnknownBody, AnUnknownRuleKeepsTheConnectionFromAnEarlyAccept) {
    ASSERT_NO_FATAL_FAILURE(start("unknown-only", kUnknownRules));
    mc::Client c = daemon_->connect();
    c.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(c), Outcome::NoReply));
    EXPECT_TRUE(Is(c.helo("client.example"), Outcome::NoReply));
    EXPECT_TRUE(IsReply(c.unknown("xyzzy"), 502, "5.5.2", "Command xyzzy not recognized"));
    c.quit();
    TearDown();
    daemon_.reset();

    ASSERT_NO_FATAL_FAILURE(start("unknown-mail", std::string(kUnknownRules) +
                                                      "rule \"m\" at mail when sender == "
                                                      "\"spam@example.org\" reject\n"));
    mc::Client d = daemon_->connect();
    d.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(d), Outcome::NoReply));
    EXPECT_TRUE(Is(d.mail({"<alice@example.net>"}), Outcome::Continue));  // not Accept
    EXPECT_TRUE(IsReply(d.unknown("xyzzy"), 502, "5.5.2", "Command xyzzy not recognized"));
}

TEST_F(UnknownBody, WithoutAnUnknownRuleTheStepIsSwitchedOff) {
    ASSERT_NO_FATAL_FAILURE(start("body", kBodyRules));
    mc::Client c = daemon_->connect();
    mc::Negotiated n = c.negotiate(kAllActions, kAllSteps);
    EXPECT_EQ(n.protocol & SMFIP_NOUNKNOWN, SMFIP_NOUNKNOWN);
    EXPECT_EQ(n.protocol & SMFIP_NOBODY, 0u);  // the body rules need it
}

// Only a policy that reads the body gets it (a header rule does not; message.size does).
TEST_F(UnknownBody, OnlyAPolicyThatUsesTheBodyGetsBodyChunks) {
    ASSERT_NO_FATAL_FAILURE(start("header", R"(
rule "subject" at message when header["Subject"] matches /lottery/i reject
)"));
    mc::Client c = daemon_->connect();
    mc::Negotiated n = c.negotiate(kAllActions, kAllSteps);
    EXPECT_EQ(n.protocol & SMFIP_NOBODY, SMFIP_NOBODY);
    EXPECT_EQ(n.protocol & SMFIP_NOUNKNOWN, SMFIP_NOUNKNOWN);
}

TEST_F(UnknownBody, AMatchAcrossTwoBodyPacketsIsFound) {
    ASSERT_NO_FATAL_FAILURE(start("body", kBodyRules));
    mc::Client c = daemon_->connect();
    c.negotiate(kAllActions, kAllSteps);
    connect_info(c);
    to_data(c);
    EXPECT_TRUE(Is(c.body("Dear friend,\r\nyou are our lottery win"), Outcome::NoReply));
    EXPECT_TRUE(Is(c.body("ner!\r\n"), Outcome::NoReply));
    EXPECT_TRUE(IsReply(c.end_of_message(), 554, "5.7.1", "Message content rejected"));
    // The next message is scanned afresh; CRLF is a line end to ^ and $.
    c.mail({"<alice@example.net>"});
    c.rcpt({"<bob@example.com>"});
    c.data();
    c.end_of_header();
    c.body("Hello\r\nCheap ");
    c.body("Pills\r");
    c.body("\nbye\r\n");
    EXPECT_TRUE(IsReply(c.end_of_message(), 550, "5.7.1", "No pills"));
    c.mail({"<alice@example.net>"});
    c.rcpt({"<bob@example.com>"});
    c.data();
    c.end_of_header();
    c.body("lottery\r\nwinner\r\nvery cheap pills\r\n");
    EXPECT_TRUE(IsEom(c.end_of_message(), Outcome::Continue, {}));
}

TEST_F(UnknownBody, NothingBeyondTheScanLimitIsScanned) {
    ASSERT_NO_FATAL_FAILURE(start("limit", kBodyRules, {"--body-scan-limit", "100K"}));
    mc::Client c = daemon_->connect();
    c.negotiate(kAllActions, kAllSteps);
    connect_info(c);
    to_data(c);
    std::string filler(60'000, 'x');
    c.body(filler);
    c.body(filler);  // 120,000 bytes: past the limit
    c.body("lottery winner\r\n");
    EXPECT_TRUE(IsEom(c.end_of_message(), Outcome::Continue, {}));
    c.mail({"<alice@example.net>"});
    c.rcpt({"<bob@example.com>"});
    c.data();
    c.end_of_header();
    c.body(filler);
    c.body("lottery winner\r\n");
    EXPECT_TRUE(IsReply(c.end_of_message(), 554, "5.7.1", "Message content rejected"));
}

}  // namespace
}  // namespace pm::protocol
