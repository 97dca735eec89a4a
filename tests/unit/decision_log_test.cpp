// Spec §8: one Postfix-style log line per decision, as the daemon writes it.
#include <gtest/gtest.h>

#include "config/decision_log.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;
using testing::Session;

LogSubject rcpt_subject() {
    LogSubject s;
    s.client_name = "mx.example.net";
    s.client_ip = "192.0.2.10";
    s.sender = "alice@example.net";
    s.recipient = "nobody@example.org";
    return s;
}

Decision rcpt_decision(const std::string& rules, const std::string& rcpt,
                       ConversationOptions options = {}) {
    Session s(must_load(rules), options);
    s.conv.connect(parse_ip("192.0.2.10"), "mx.example.net", 4711);
    s.conv.helo("mx.example.net");
    s.conv.mail("<alice@example.net>", "", 0, false);
    return s.conv.rcpt(rcpt);
}

const char* kUnknownUser = R"(rule "unknown-user" at rcpt
    when recipient == "nobody@example.org"
    reject 550 5.1.1 "<{recipient}>: Recipient address rejected: User unknown")";

TEST(DecisionLog, RejectAtRcptBeforeQueueId) {
    auto lines =
        decision_log_lines(rcpt_decision(kUnknownUser, "<nobody@example.org>"), rcpt_subject());
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].level, LogLevel::Info);
    EXPECT_EQ(lines[0].text,
              "NOQUEUE: stage=rcpt rule=unknown-user action=reject reply=\"550 5.1.1 "
              "<nobody@example.org>: Recipient address rejected: User unknown\" "
              "client=mx.example.net[192.0.2.10] from=<alice@example.net> "
              "to=<nobody@example.org>");
}

TEST(DecisionLog, QueueIdReplacesNoqueue) {
    LogSubject s = rcpt_subject();
    s.queue_id = "4XyZ1abc";
    auto lines = decision_log_lines(rcpt_decision(kUnknownUser, "<nobody@example.org>"), s);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text.rfind("4XyZ1abc: stage=rcpt rule=unknown-user ", 0), 0u)
        << lines[0].text;
}

TEST(DecisionLog, NoRuleIsDebugOnly) {
    LogSubject s = rcpt_subject();
    s.recipient = "someone@example.org";
    auto lines = decision_log_lines(rcpt_decision(kUnknownUser, "<someone@example.org>"), s);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].level, LogLevel::Debug);
    EXPECT_EQ(lines[0].text,
              "NOQUEUE: stage=rcpt action=continue client=mx.example.net[192.0.2.10] "
              "from=<alice@example.net> to=<someone@example.org>");
}

TEST(DecisionLog, ObserveLogsWouldReject) {
    ConversationOptions observe;
    observe.observe_all = true;
    auto lines = decision_log_lines(rcpt_decision(kUnknownUser, "<nobody@example.org>", observe),
                                    rcpt_subject());
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0].level, LogLevel::Info);
    EXPECT_EQ(lines[0].text,
              "NOQUEUE: stage=rcpt rule=unknown-user action=would-reject reply=\"550 5.1.1 "
              "<nobody@example.org>: Recipient address rejected: User unknown\" "
              "client=mx.example.net[192.0.2.10] from=<alice@example.net> "
              "to=<nobody@example.org>");
    EXPECT_EQ(lines[1].level, LogLevel::Debug);  // the event itself went on
}

// The daemon asks only for the levels its logger writes; the lines it gets are the same.
TEST(DecisionLog, LinesBelowTheMinimumLevelAreLeftOut) {
    ConversationOptions observe;
    observe.observe_all = true;
    Decision d = rcpt_decision(kUnknownUser, "<nobody@example.org>", observe);
    auto all = decision_log_lines(d, rcpt_subject());
    auto info = decision_log_lines(d, rcpt_subject(), LogLevel::Info);
    ASSERT_EQ(all.size(), 2u);
    ASSERT_EQ(info.size(), 1u);  // the would-reject line, not the debug one
    EXPECT_EQ(info[0].level, LogLevel::Info);
    EXPECT_EQ(info[0].text, all[0].text);
    EXPECT_TRUE(decision_log_lines(d, rcpt_subject(), LogLevel::Warning).empty());

    Decision refused = rcpt_decision(kUnknownUser, "<nobody@example.org>");
    auto refused_info = decision_log_lines(refused, rcpt_subject(), LogLevel::Info);
    ASSERT_EQ(refused_info.size(), 1u);
    EXPECT_EQ(refused_info[0].text, decision_log_lines(refused, rcpt_subject())[0].text);
}

TEST(DecisionLog, ConnectWithoutIpOrSender) {
    Session s(must_load(R"(rule "blocked" at connect reject 554 5.7.1 "Go away")"));
    Decision d = s.conv.connect(std::nullopt, "unknown", 0);
    LogSubject subject;  // unix-socket client: no IP, no name
    auto lines = decision_log_lines(d, subject);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text,
              "NOQUEUE: stage=connect rule=blocked action=reject reply=\"554 5.7.1 Go away\" "
              "client=unknown[unknown]");
}

TEST(DecisionLog, MessageStageAddHeaderAndQuarantine) {
    Session s(must_load(R"(
rule "tag" at message add-header "X-Policy" "checked {message.size}"
rule "hold" at message when header["Subject"] matches /invoice/i quarantine "suspicious invoice")"));
    s.conv.connect(parse_ip("2001:db8::1"), "unknown", 25);
    s.conv.mail("<>", "", 0, false);
    s.conv.rcpt("<bob@example.org>");
    s.conv.data();
    s.conv.header("Subject", "Your Invoice");
    s.conv.body_bytes(100);
    Decision d = s.conv.message();
    LogSubject subject;
    subject.queue_id = "ABC123";
    subject.client_ip = "2001:db8::1";
    subject.sender = "";
    subject.recipient_count = 1;
    auto lines = decision_log_lines(d, subject);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0].text,
              "ABC123: stage=message rule=tag action=add-header header=\"X-Policy: checked "
              "100\" client=unknown[2001:db8::1] from=<> nrcpt=1");
    EXPECT_EQ(lines[1].text,
              "ABC123: stage=message rule=hold action=quarantine reason=\"suspicious invoice\" "
              "client=unknown[2001:db8::1] from=<> nrcpt=1");
}

TEST(DecisionLog, NoAddHeaderLineForARefusedMessage) {
    Session s(must_load(R"(
rule "tag" at message add-header "X-Policy" "checked"
rule "big" at message when message.size > 10 reject 552 5.3.4 "Too big")"));
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 25);
    s.conv.mail("<a@example.net>", "", 0, false);
    s.conv.rcpt("<b@example.org>");
    s.conv.data();
    s.conv.body_bytes(100);
    auto lines = decision_log_lines(s.conv.message(), LogSubject{});
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].text.find("rule=big action=reject"), std::string::npos) << lines[0].text;
}

TEST(DecisionLog, SoftBounceShowsTheTempfailSent) {
    ConversationOptions soft;
    soft.soft_bounce = true;
    auto lines = decision_log_lines(rcpt_decision(kUnknownUser, "<nobody@example.org>", soft),
                                    rcpt_subject());
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].text.find("action=tempfail reply=\"450 4.1.1 "), std::string::npos)
        << lines[0].text;
}

}  // namespace
}  // namespace pm
