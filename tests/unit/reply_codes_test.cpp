// SPDX-License-Identifier: BSD-2-Clause
// policy-milter.rules(5), REPLY CODES: every allowed code at every stage loads; a code outside the
// set is refused with the allowed list; defaults fill in what a rule leaves out.
#include <gtest/gtest.h>

#include "policy/reply_codes.h"
#include "test_util.h"

namespace pm {
namespace {

using namespace testing;  // must_load, diagnostics_of, Session, summary

struct StageCodes {
    Stage stage;
    std::vector<int> reject, tempfail;
    std::string default_reject, default_tempfail;
};

const std::vector<StageCodes> kTable = {
    {Stage::Connect, {554, 521}, {421}, "554 5.7.1", "421 4.7.0"},
    {Stage::Helo, {550, 501, 504, 521}, {421}, "550 5.7.1", "421 4.7.0"},
    {Stage::Mail, {550, 552, 553, 501, 555}, {421, 451, 452, 455}, "550 5.7.1", "451 4.7.1"},
    {Stage::Rcpt,
     {550, 551, 552, 553, 521, 501, 555},
     {421, 450, 451, 452, 455},
     "550 5.7.1",
     "450 4.7.1"},
    {Stage::Data, {554}, {421, 451}, "554 5.7.1", "451 4.7.1"},
    {Stage::Message, {554, 550, 552}, {421, 450, 451, 452}, "554 5.7.1", "451 4.7.1"},
};

std::string rule(Stage s, const std::string& action) {
    return "rule \"r\" at " + std::string(stage_name(s)) + " " + action + "\n";
}

// Drives a session up to `stage` so the unconditional rule there decides.
Decision run_to(Session& s, Stage stage) {
    Decision d = s.conv.connect(parse_ip("192.0.2.1"), "mx.example.net", 25);
    if (stage == Stage::Connect) return d;
    d = s.conv.helo("mx.example.net");
    if (stage == Stage::Helo) return d;
    d = s.conv.mail("<a@example.net>", "", 0, false);
    if (stage == Stage::Mail) return d;
    d = s.conv.rcpt("<b@example.org>");
    if (stage == Stage::Rcpt) return d;
    d = s.conv.data();
    if (stage == Stage::Data) return d;
    return s.conv.message();
}

TEST(ReplyCodes, TableMatchesSpec) {
    for (const auto& row : kTable) {
        for (int c : row.reject) EXPECT_TRUE(code_allowed(row.stage, Refusal::Reject, c));
        for (int c : row.tempfail) EXPECT_TRUE(code_allowed(row.stage, Refusal::Tempfail, c));
        EXPECT_EQ(reply_codes_for(row.stage).reject_codes.size(), row.reject.size());
        EXPECT_EQ(reply_codes_for(row.stage).tempfail_codes.size(), row.tempfail.size());
    }
}

TEST(ReplyCodes, EveryAllowedCodeLoadsAndIsSentVerbatim) {
    for (const auto& row : kTable) {
        for (int code : row.reject) {
            std::string x = "5.7.1";
            auto p =
                must_load(rule(row.stage, "reject " + std::to_string(code) + " " + x + " \"no\""));
            ASSERT_TRUE(p);
            Session s(p);
            EXPECT_EQ(summary(run_to(s, row.stage)), "reject " + std::to_string(code) + " 5.7.1 no")
                << stage_name(row.stage);
        }
        for (int code : row.tempfail) {
            std::string x = code == 421 ? "4.7.0" : "4.7.1";
            auto p = must_load(
                rule(row.stage, "tempfail " + std::to_string(code) + " " + x + " \"later\""));
            ASSERT_TRUE(p);
            Session s(p);
            EXPECT_EQ(summary(run_to(s, row.stage)),
                      "tempfail " + std::to_string(code) + " " + x + " later")
                << stage_name(row.stage);
        }
    }
}

TEST(ReplyCodes, RefusedCodesListTheAllowedOnes) {
    for (const auto& row : kTable) {
        // 552 is allowed for reject somewhere but never at connect, helo or data; 500 nowhere.
        std::string text = rule(row.stage, "reject 500");
        std::string allowed;
        for (int c : row.reject) allowed += (allowed.empty() ? "" : ", ") + std::to_string(c);
        EXPECT_EQ(diagnostics_of(text),
                  "t.rules:1:" + std::to_string(21 + stage_name(row.stage).size()) +
                      ": error: reply code 500 is not allowed for 'reject' at the " +
                      std::string(stage_name(row.stage)) + " stage; allowed: " + allowed + "\n");
        std::string tallowed;
        for (int c : row.tempfail) tallowed += (tallowed.empty() ? "" : ", ") + std::to_string(c);
        EXPECT_NE(diagnostics_of(rule(row.stage, "tempfail 459")).find("allowed: " + tallowed),
                  std::string::npos);
    }
}

TEST(ReplyCodes, Rcpt554SuggestsFiveFifty) {
    EXPECT_EQ(
        diagnostics_of("rule \"r\" at rcpt reject 554 5.7.1"),
        "t.rules:1:25: error: reply code 554 is not allowed for 'reject' at the rcpt stage; "
        "allowed: 550, 551, 552, 553, 521, 501, 555 (RFC 5321 has no 554 for RCPT: use 550)\n");
}

TEST(ReplyCodes, DefaultsPerStage) {
    for (const auto& row : kTable) {
        Session r(must_load(rule(row.stage, "reject")));
        EXPECT_EQ(summary(run_to(r, row.stage)),
                  "reject " + row.default_reject + " Rejected by policy");
        Session t(must_load(rule(row.stage, "tempfail")));
        EXPECT_EQ(summary(run_to(t, row.stage)),
                  "tempfail " + row.default_tempfail +
                      " Temporarily rejected by policy, try again later");
    }
}

TEST(ReplyCodes, DefaultEnhancedCodeFollowsTheClass) {
    Session s(must_load("rule \"r\" at rcpt tempfail 452 \"full\""));
    EXPECT_EQ(summary(run_to(s, Stage::Rcpt)), "tempfail 452 4.7.1 full");
    Session c(must_load("rule \"r\" at mail tempfail 421"));
    EXPECT_EQ(summary(run_to(c, Stage::Mail)),
              "tempfail 421 4.7.0 Temporarily rejected by policy, try again later");
}

TEST(ReplyCodes, SoftBounceTurnsFiveIntoFour) {
    ConversationOptions o;
    o.soft_bounce = true;
    Session s(must_load("rule \"r\" at rcpt reject 550 5.1.1 \"unknown\""), o);
    EXPECT_EQ(summary(run_to(s, Stage::Rcpt)), "tempfail 450 4.1.1 unknown");
    Session c(must_load("rule \"r\" at connect reject"), o);
    EXPECT_EQ(summary(run_to(c, Stage::Connect)),
              "tempfail 421 4.7.1 Temporarily rejected by policy, try again later");
}

TEST(EnhancedCodes, ParseAndRegistry) {
    auto c = parse_enhanced_code("5.1.1");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->to_string(), "5.1.1");
    EXPECT_TRUE(enhanced_code_registered(*c));
    EXPECT_TRUE(enhanced_code_registered(*parse_enhanced_code("4.7.30")));
    EXPECT_FALSE(enhanced_code_registered(*parse_enhanced_code("5.7.99")));
    EXPECT_FALSE(parse_enhanced_code("3.1.1"));
    EXPECT_FALSE(parse_enhanced_code("5.1"));
    EXPECT_FALSE(parse_enhanced_code("5.1.1000"));
    EXPECT_FALSE(parse_enhanced_code("55.1.1"));
    EXPECT_FALSE(parse_enhanced_code("5..1"));
    EXPECT_EQ(enhanced_code_stage_mismatch(*parse_enhanced_code("5.1.1"), Stage::Mail),
              "describes a recipient address, which the mail stage does not have yet");
    EXPECT_EQ(enhanced_code_stage_mismatch(*parse_enhanced_code("5.1.1"), Stage::Rcpt), "");
    EXPECT_EQ(enhanced_code_stage_mismatch(*parse_enhanced_code("5.1.8"), Stage::Helo),
              "describes the sender's address, which the helo stage does not have yet");
    EXPECT_EQ(enhanced_code_stage_mismatch(*parse_enhanced_code("5.1.8"), Stage::Rcpt), "");
}

}  // namespace
}  // namespace pm
