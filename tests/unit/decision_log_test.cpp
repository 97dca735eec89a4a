// SPDX-License-Identifier: BSD-2-Clause
// policy-milter(8), LOGGING: one Postfix-style log line per decision, as the daemon writes it.
#include <gtest/gtest.h>

#include <spdlog/spdlog.h>

#include "config/log_escape.h"
#include "config/logging.h"
#include "milter/decision_log.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;
using testing::Session;

// The facts of a session from mx.example.net [192.0.2.10] with MAIL FROM
// alice@example.net, as the rcpt events below leave them.
Facts rcpt_facts() {
    return testing::mx_facts("192.0.2.10", "<alice@example.net>", 0);
}

// The adapter's part of the rcpt event: no queue id yet, the recipient.
const LogEvent kToNobody{"", "nobody@example.org"};

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

// The Info line for kUnknownUser's rule at rcpt_facts(), with its action.
std::string unknown_user_line(const std::string& action) {
    return "NOQUEUE: client=mx.example.net[192.0.2.10] stage=rcpt rule=unknown-user action=" +
           action +
           " reply=\"550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown\" "
           "helo=<mx.example.net> from=<alice@example.net> to=<nobody@example.org>";
}

// The lines for kUnknownUser refusing <nobody@example.org> at rcpt_facts(), before a queue id.
std::vector<LogLine> unknown_user_lines(ConversationOptions options = {}) {
    return decision_log_lines(rcpt_decision(kUnknownUser, "<nobody@example.org>", options),
                              rcpt_facts(), kToNobody);
}

// Default options with one switch turned on.
ConversationOptions with(bool ConversationOptions::*option) {
    ConversationOptions o;
    o.*option = true;
    return o;
}

TEST(DecisionLog, RejectAtRcptBeforeQueueId) {
    auto lines = unknown_user_lines();
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].level, LogLevel::Info);
    EXPECT_EQ(lines[0].text, unknown_user_line("reject"));
}

TEST(DecisionLog, QueueIdReplacesNoqueue) {
    LogEvent e{"4XyZ1abc", "nobody@example.org"};
    auto lines =
        decision_log_lines(rcpt_decision(kUnknownUser, "<nobody@example.org>"), rcpt_facts(), e);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text.rfind("4XyZ1abc: client=mx.example.net[192.0.2.10] stage=rcpt "
                                  "rule=unknown-user ",
                                  0),
              0u)
        << lines[0].text;
}

// Found by fuzz_facts: a queue id with ':' (from a hostile MTA's macro) ended the first
// field early, and the line did not parse back.
TEST(DecisionLog, QueueIdCannotEndItsFieldEarly) {
    LogEvent e{"4QA2001:db8::t", "nobody@example.org"};
    auto lines =
        decision_log_lines(rcpt_decision(kUnknownUser, "<nobody@example.org>"), rcpt_facts(), e);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text.rfind("4QA2001\\x3adb8\\x3a\\x3at: client=mx.example.net[", 0), 0u)
        << lines[0].text;
}

TEST(DecisionLog, NoRuleIsDebugOnly) {
    LogEvent e{"", "someone@example.org"};
    auto lines =
        decision_log_lines(rcpt_decision(kUnknownUser, "<someone@example.org>"), rcpt_facts(), e);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].level, LogLevel::Debug);
    EXPECT_EQ(lines[0].text,
              "NOQUEUE: client=mx.example.net[192.0.2.10] stage=rcpt rule=- action=continue "
              "helo=<mx.example.net> from=<alice@example.net> to=<someone@example.org>");
}

TEST(DecisionLog, ObserveLogsWouldReject) {
    auto lines = unknown_user_lines(with(&ConversationOptions::observe_all));
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0].level, LogLevel::Info);
    EXPECT_EQ(lines[0].text, unknown_user_line("would-reject"));
    EXPECT_EQ(lines[1].level, LogLevel::Debug);  // the event itself went on
}

// The daemon asks only for the levels its logger writes; the lines it gets are the same.
TEST(DecisionLog, LinesBelowTheMinimumLevelAreLeftOut) {
    Decision d = rcpt_decision(kUnknownUser, "<nobody@example.org>",
                               with(&ConversationOptions::observe_all));
    auto all = decision_log_lines(d, rcpt_facts(), kToNobody);
    auto info = decision_log_lines(d, rcpt_facts(), kToNobody, LogLevel::Info);
    ASSERT_EQ(all.size(), 2u);
    ASSERT_EQ(info.size(), 1u);  // the would-reject line, not the debug one
    EXPECT_EQ(info[0].level, LogLevel::Info);
    EXPECT_EQ(info[0].text, all[0].text);
    EXPECT_TRUE(decision_log_lines(d, rcpt_facts(), kToNobody, LogLevel::Warning).empty());

    Decision refused = rcpt_decision(kUnknownUser, "<nobody@example.org>");
    auto refused_info = decision_log_lines(refused, rcpt_facts(), kToNobody, LogLevel::Info);
    ASSERT_EQ(refused_info.size(), 1u);
    EXPECT_EQ(refused_info[0].text, decision_log_lines(refused, rcpt_facts(), kToNobody)[0].text);
}

TEST(DecisionLog, ConnectWithoutIpOrSender) {
    Session s(must_load(R"(rule "blocked" at connect reject 554 5.7.1 "Go away")"));
    Decision d = s.conv.connect(std::nullopt, "unknown", 0);
    // A unix-socket client: no IP, no name.
    auto lines = decision_log_lines(d, s.conv.facts(), LogEvent{});
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text,
              "NOQUEUE: client=unknown[unknown] stage=connect rule=blocked action=reject "
              "reply=\"554 5.7.1 Go away\" helo=- from=- to=-");
}

// Drives a session from ip (no name, port 25) through MAIL FROM from, one RCPT TO and DATA:
// the message's headers come next.
void through_data(Session& s, const std::string& ip, const std::string& from,
                  const std::string& rcpt) {
    s.conv.connect(parse_ip(ip), "unknown", 25);
    s.conv.mail(from, "", 0, false);
    s.conv.rcpt(rcpt);
    s.conv.data();
}

TEST(DecisionLog, MessageStageAddHeaderAndQuarantine) {
    Session s(must_load(R"(
rule "tag" at message add-header "X-Policy" "checked {message.size}"
rule "hold" at message when header["Subject"] matches /invoice/i quarantine "suspicious invoice")"));
    through_data(s, "2001:db8::1", "<>", "<bob@example.org>");
    s.conv.header("Subject", "Your Invoice");
    s.conv.body_bytes(100);
    Decision d = s.conv.message();
    // The facts of the message stay until the next transaction: the log reads them.
    auto lines = decision_log_lines(d, s.conv.facts(), LogEvent{"ABC123", ""});
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0].text,
              "ABC123: client=unknown[2001:db8::1] stage=message rule=tag action=add-header "
              "helo=- from=<> to=<bob@example.org> header=\"X-Policy: checked 100\" nrcpt=1");
    EXPECT_EQ(lines[1].text,
              "ABC123: client=unknown[2001:db8::1] stage=message rule=hold action=quarantine "
              "helo=- from=<> to=<bob@example.org> reason=\"suspicious invoice\" nrcpt=1");
}

TEST(DecisionLog, NoAddHeaderLineForARefusedMessage) {
    Session s(must_load(R"(
rule "tag" at message add-header "X-Policy" "checked"
rule "big" at message when message.size > 10 reject 552 5.3.4 "Too big")"));
    through_data(s, "192.0.2.1", "<a@example.net>", "<b@example.org>");
    s.conv.body_bytes(100);
    Decision d = s.conv.message();
    auto lines = decision_log_lines(d, s.conv.facts(), LogEvent{});
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].text.find("rule=big action=reject"), std::string::npos) << lines[0].text;
}

TEST(DecisionLog, SoftBounceShowsTheTempfailSent) {
    auto lines = unknown_user_lines(with(&ConversationOptions::soft_bounce));
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].text.find("action=tempfail reply=\"450 4.1.1 "), std::string::npos)
        << lines[0].text;
}

// --- issue 10, item 6: no field of any log line carries a control byte ------------------

// True if every byte of `line` is printable ASCII.
bool printable(const std::string& line) {
    for (char ch : line) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c >= 0x7F) return false;
    }
    return true;
}

// A folded Subject in an observed add-header and quarantine reason, addresses with CR,
// LF, ESC, NUL, '"', '\' and non-ASCII bytes: each field is escaped where it stands, and a
// quoted value cannot be ended early by a '"' of the sender's.
TEST(DecisionLog, ControlBytesInEveryFieldAreEscaped) {
    ConversationOptions observe;
    observe.observe_all = true;
    Session s(must_load(R"(
rule "tag" at message add-header "X-Subject" "{header[Subject]}"
rule "hold" at message quarantine "held: {header[Subject]}")"),
              observe);
    through_data(s, "192.0.2.1", "<a@example.net>", "<b@example.org>");
    s.conv.header("Subject", "a\r\n b\" client=evil[6.6.6.6] \\x0a\xc3\xa9");
    Decision d = s.conv.message();
    Facts facts = s.conv.facts();
    facts.set_client(parse_ip("192.0.2.1"), "mx\x1b[2J.example", 25);
    facts.set_sender(std::string_view("a\r\nb\0c@x", 8), "", 0, false);
    auto lines = decision_log_lines(d, facts, LogEvent{"Q\n1", ""});
    ASSERT_EQ(lines.size(), 3u);
    const std::string head = "Q\\x0a1: client=mx\\x1b\\x5b2J.example[192.0.2.1] stage=message ";
    const std::string envelope = " helo=- from=<a\\x0d\\x0ab\\x00c@x> to=<b@example.org>";
    EXPECT_EQ(lines[0].text, head + "rule=tag action=would-add-header" + envelope +
                                 " header=\"X-Subject: a\\x0d\\x0a b\\\" client=evil[6.6.6.6] "
                                 "\\\\x0a\\xc3\\xa9\" nrcpt=1");
    EXPECT_EQ(lines[1].text, head + "rule=hold action=would-quarantine" + envelope +
                                 " reason=\"held: a\\x0d\\x0a b\\\" client=evil[6.6.6.6] "
                                 "\\\\x0a\\xc3\\xa9\" nrcpt=1");
    for (const auto& line : lines) EXPECT_TRUE(printable(line.text)) << line.text;
}

// The decision line's quoted values: a reply with '"' and '\', an error with a LF; a
// recipient and a rule's id are escaped too.
TEST(DecisionLog, QuotedValuesEndOnlyAtTheirClosingQuote) {
    Decision d;
    d.stage = Stage::Rcpt;
    d.verdict = Verdict::Tempfail;
    d.rule_id = "r\x7f";
    d.reply = Reply{451, {4, 3, 0}, "say \"hi\" \\ bye"};
    d.error = "store: \"bad\"\nforged: line";
    LogEvent e{"", "<\"x client=evil[6.6.6.6] \"@example.com>\r"};
    auto lines = decision_log_lines(d, Facts{}, e);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text,
              "NOQUEUE: client=unknown[unknown] stage=rcpt rule=r\\x7f action=tempfail "
              "reply=\"451 4.3.0 say \\\"hi\\\" \\\\ bye\" helo=- from=- "
              "to=<\\x3c\\x22x\\x20client=evil\\x5b6.6.6.6\\x5d\\x20\\x22@example.com\\x3e\\x0d> "
              "error=\"store: \\\"bad\\\"\\x0aforged: line\"");
}

// Issue 12: the log reads the conversation's facts, which keep what the event saw until
// the next event: the sender of a refused MAIL, the sender and recipients of a message.
TEST(DecisionLog, RefusedMailAndEndOfMessageKeepTheirFacts) {
    Session s(must_load(R"(
rule "spoofed" at mail when sender.domain == "forged.example" reject 553 5.7.1 "No"
rule "lottery" at message reject 554 5.7.1 "Message content rejected")"));
    s.conv.connect(parse_ip("192.0.2.1"), "[192.0.2.1]", 25);
    Decision d = s.conv.mail("<someone@forged.example>", "", 0, false);
    auto lines = decision_log_lines(d, s.conv.facts(), LogEvent{});
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text,
              "NOQUEUE: client=unknown[192.0.2.1] stage=mail rule=spoofed action=reject "
              "reply=\"553 5.7.1 No\" helo=- from=<someone@forged.example> to=-");

    s.conv.mail("<alice@example.net>", "", 0, false);
    s.conv.rcpt("<b@example.org>");
    s.conv.rcpt("<c@example.org>");
    s.conv.data();
    d = s.conv.message();
    lines = decision_log_lines(d, s.conv.facts(), LogEvent{"Q1", ""});
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text,
              "Q1: client=unknown[192.0.2.1] stage=message rule=lottery action=reject "
              "reply=\"554 5.7.1 Message content rejected\" helo=- from=<alice@example.net> "
              "to=<b@example.org> nrcpt=2");

    // A helo after the message (no RSET) says nothing of it; the next transaction, or
    // an abort, starts from nothing.
    lines = decision_log_lines(s.conv.helo("mx"), s.conv.facts(), LogEvent{});
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text,
              "NOQUEUE: client=unknown[192.0.2.1] stage=helo rule=- action=continue helo=<mx> "
              "from=- to=-");
    s.conv.abort();
    EXPECT_FALSE(s.conv.facts().mail_seen);
    EXPECT_TRUE(s.conv.facts().accepted_recipients.empty());
}

// A rcpt without MAIL (a hostile milter client) logs from=-, as no MAIL was seen.
TEST(DecisionLog, NoSenderWithoutMail) {
    Session s(must_load(R"(rule "r" at rcpt reject 550 5.1.1 "No")"));
    s.conv.connect(parse_ip("192.0.2.1"), "mx.example.net", 25);
    Decision d = s.conv.rcpt("<b@example.org>");
    auto lines = decision_log_lines(d, s.conv.facts(), LogEvent{"", "b@example.org"});
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text,
              "NOQUEUE: client=mx.example.net[192.0.2.1] stage=rcpt rule=r action=reject "
              "reply=\"550 5.1.1 No\" helo=- from=- to=<b@example.org>");
}

TEST(DecisionLog, EscapeLogLineKeepsBackslashesAndHexesTheRest) {
    EXPECT_EQ(escape_log_line("plain \\x41 text"), "plain \\x41 text");
    EXPECT_EQ(escape_log_line(std::string("a\r\nb\0\x7f\xff", 7)), "a\\x0d\\x0ab\\x00\\x7f\\xff");
    std::string out;
    append_log_value(out, "\\\"\t", LogValue::Quoted);
    EXPECT_EQ(out, "\\\\\\\"\\x09");
    out.clear();
    append_log_value(out, "a b<c>[d]\"e\\f=g\t\xff", LogValue::Token);
    EXPECT_EQ(out, "a\\x20b\\x3cc\\x3e\\x5bd\\x5d\\x22e\\x5cf=g\\x09\\xff");
}

// Every line the logger writes goes through the escaping, not only decision lines.
TEST(Logging, EveryLineIsEscapedOnStderr) {
    ASSERT_EQ(setup_logging("stderr", "info"), std::nullopt);
    ::testing::internal::CaptureStderr();
    spdlog::info("reload of {} failed", "rules\n2026-01-01 policy-milter[1]: info: forged");
    spdlog::warn("{}", std::string("nul\0esc\x1b", 8));
    std::string out = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(out.find(": info: reload of rules\\x0a2026-01-01 policy-milter[1]: info: forged "
                       "failed\n"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find(": warning: nul\\x00esc\\x1b\n"), std::string::npos) << out;
    std::size_t newlines = 0;
    for (char c : out) newlines += c == '\n';
    EXPECT_EQ(newlines, 2u) << out;
}

}  // namespace
}  // namespace pm
