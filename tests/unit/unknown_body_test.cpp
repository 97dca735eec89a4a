// SPDX-License-Identifier: BSD-2-Clause
// The unknown stage (field `command`) and the body conditions `body matches` and
// `body contains` (policy/body_scan.h): parsing, reply codes, the streamed scan.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/body_scan.h"
#include "policy/conversation.h"
#include "policy/reply_codes.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::diagnostics_of;
using testing::must_load;
using testing::Session;
using testing::summary;

// ---- the unknown stage ------------------------------------------------------------------

TEST(UnknownStage, ReplyCodesAre500To504And421) {
    EXPECT_EQ(allowed_codes_text(Stage::Unknown, Refusal::Reject), "500, 501, 502, 504");
    EXPECT_EQ(allowed_codes_text(Stage::Unknown, Refusal::Tempfail), "421");
    EXPECT_EQ(default_code(Stage::Unknown, Refusal::Reject), 502);
    EXPECT_EQ(default_code(Stage::Unknown, Refusal::Tempfail), 421);
    EXPECT_EQ(stage_from_name("unknown"), Stage::Unknown);
}

TEST(UnknownStage, TheIssueExampleLoadsAndDecides) {
    Session s(
        must_load("rule \"x\" at unknown when command matches /^XYZZY/i "
                  "reject 502 5.5.2 \"no {command}\"\n"));
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
    EXPECT_EQ(summary(s.conv.unknown("xyzzy plugh")), "reject 502 5.5.2 no xyzzy plugh");
    EXPECT_EQ(summary(s.conv.unknown("PLUGH")), "continue");
}

TEST(UnknownStage, OtherCodesAreLoadErrorsWithTheirPlace) {
    EXPECT_EQ(diagnostics_of("rule \"x\" at unknown reject 550\n"),
              "t.rules:1:28: error: reply code 550 is not allowed for 'reject' at the unknown "
              "stage; allowed: 500, 501, 502, 504\n");
    EXPECT_EQ(diagnostics_of("rule \"x\" at unknown tempfail 451\n"),
              "t.rules:1:30: error: reply code 451 is not allowed for 'tempfail' at the unknown "
              "stage; allowed: 421\n");
    for (const char* ok : {"500", "501", "502", "504"})
        must_load(std::string("rule \"x\" at unknown reject ") + ok + "\n");
    must_load("rule \"x\" at unknown tempfail 421 4.7.0 \"bye\"\n");
}

TEST(UnknownStage, SeesConnectAndHeloFieldsAndCommandOnly) {
    must_load(
        "rule \"a\" at unknown when client.ip == 192.0.2.0/24 and helo == \"x\" and "
        "command == \"xyzzy\" reject\n");
    EXPECT_EQ(diagnostics_of("rule \"a\" at unknown when sender == \"a@b\" reject\n"),
              "t.rules:1:26: error: field 'sender' is not available at the unknown stage "
              "(only command and the connect and helo fields)\n");
    EXPECT_EQ(diagnostics_of("rule \"a\" at message when command == \"x\" reject\n"),
              "t.rules:1:26: error: field 'command' is not available at the message stage "
              "(only at unknown)\n");
    EXPECT_NE(diagnostics_of("rule \"a\" at rcpt reject \"{command}\"\n").find("only at unknown"),
              std::string::npos);
}

TEST(UnknownStage, OnlyPassRejectAndTempfailAndNoLimits) {
    EXPECT_NE(diagnostics_of("rule \"a\" at unknown accept\n")
                  .find("action 'accept' is not allowed at the unknown stage"),
              std::string::npos);
    EXPECT_NE(diagnostics_of("rule \"a\" at unknown discard\n")
                  .find("action 'discard' is not allowed at the unknown stage"),
              std::string::npos);
    EXPECT_NE(diagnostics_of("rule \"a\" at unknown quarantine \"q\"\n").find("message only"),
              std::string::npos);
    EXPECT_NE(diagnostics_of("limit \"l\" at unknown key client.ip max 3 per 1m tempfail\n")
                  .find("a limit cannot count at the unknown stage"),
              std::string::npos);
    must_load("rule \"a\" at unknown when command matches /^GET /  pass\n");
}

// The command as libmilter hands it, from a hostile client: control bytes become spaces,
// 8-bit bytes stay, '%' stays (the reply encoding doubles it for libmilter), the line is
// cut to 510 bytes.
TEST(UnknownStage, TheCommandIsSanitised) {
    Facts f;
    f.set_command("XYZZY\tA\x01\x7f \xc3\xa9 100%\r\n");
    EXPECT_EQ(f.command, "XYZZY A   \xc3\xa9 100%");
    EXPECT_EQ(f.command_lower, "xyzzy a   \xc3\xa9 100%");
    f.set_command(std::string(5000, 'A'));
    EXPECT_EQ(f.command.size(), kMaxCommandBytes);
}

TEST(UnknownStage, AReplyWithTheCommandIsSafe) {
    Session s(must_load("rule \"x\" at unknown reject 500 5.5.1 \"{command} unknown\"\n"));
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
    Decision d = s.conv.unknown("%s%n \xff\xfe " + std::string(3000, 'B'));
    ASSERT_TRUE(d.reply);
    EXPECT_EQ(d.reply->line().substr(0, 20), "500 5.5.1 %s%n ?? BB");
    EXPECT_LE(d.reply->line().size() + 2, kMaxReplyLine);
}

TEST(UnknownStage, NeitherStartsNorEndsATransaction) {
    Session s(
        must_load("rule \"u\" at unknown when command == \"x\" reject\n"
                  "rule \"r\" at rcpt when rcpt.count > 1 reject\n"));
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
    s.conv.mail("<a@b>", "", 0, false);
    EXPECT_EQ(summary(s.conv.rcpt("<c@d>")), "continue");
    EXPECT_EQ(s.conv.unknown("X").verdict, Verdict::Reject);
    EXPECT_EQ(summary(s.conv.rcpt("<e@d>")), "reject 550 5.7.1 Rejected by policy");
}

// Review finding (design): soft-bounce once made this reject a 421, which ends the
// session; refusing a command loses no mail, so the reject stays.
TEST(UnknownStage, SoftBounceLeavesItsRejectAlone) {
    ConversationOptions o;
    o.soft_bounce = true;
    Session s(must_load("rule \"t\" at unknown when command matches /^T/ tempfail\n"
                        "rule \"x\" at unknown reject 502 5.5.2 \"no\"\n"),
              o);
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
    EXPECT_EQ(summary(s.conv.unknown("T")),
              "tempfail 421 4.7.0 Temporarily rejected by policy, try again later");
    EXPECT_EQ(summary(s.conv.unknown("X")), "reject 502 5.5.2 no");
}

// ---- body conditions: parsing ----------------------------------------------------------

TEST(BodyConditions, Parse) {
    auto p = must_load(
        "rule \"a\" at message when body matches /viagra/i or body contains \"Click HERE\" "
        "reject 554 5.7.1 \"spam\"\n");
    ASSERT_EQ(p->body_patterns().size(), 2u);
    EXPECT_EQ(p->body_patterns()[1].text, "click here");
    EXPECT_TRUE(p->uses_field(FieldId::Body));
}

TEST(BodyConditions, Errors) {
    auto has = [](const std::string& rules, const std::string& what) {
        std::string d = diagnostics_of(rules);
        EXPECT_NE(d.find(what), std::string::npos) << d;
    };
    has("rule \"a\" at rcpt when body contains \"x\" reject\n",
        "field 'body' is not available at the rcpt stage (it is known from message on)");
    has("rule \"a\" at message when body == \"x\" reject\n",
        "expected 'matches' or 'contains' after 'body'");
    has("rule \"a\" at message when body in [\"x\"] reject\n",
        "expected 'matches' or 'contains' after 'body'");
    has("rule \"a\" at message when header[\"Subject\"] contains \"x\" reject\n",
        "'contains' tests the body only");
    has("rule \"a\" at message when body contains \"\" reject\n", "empty text");
    has("rule \"a\" at message when body contains \"" + std::string(1025, 'x') + "\" reject\n",
        "text longer than 1024 bytes");
    has("rule \"a\" at message when body matches /(/ reject\n", "invalid regex /(/: missing )");
    has("rule \"a\" at message reject \"{body}\"\n", "the body is not shown in a text");
    has("limit \"l\" at message key body max 3 per 1m tempfail\n", "the body is no key");
}

// ---- the scanner -----------------------------------------------------------------------

// Feeds `chunks` to a scanner of `rules`' body patterns; the hits as "10" strings.
std::string scan(const std::string& rules, const std::vector<std::string>& chunks,
                 std::uint64_t limit = kDefaultBodyScanLimit) {
    auto p = must_load(rules);
    BodyScanner s;
    s.start(p->body_patterns(), limit);
    for (const auto& c : chunks) s.feed(c);
    s.finish();
    std::string out;
    for (auto h : s.hits()) out += h ? '1' : '0';
    return out;
}

std::string rule_with(const std::string& conditions) {
    return "rule \"a\" at message when " + conditions + " reject\n";
}

TEST(BodyScan, AMatchAcrossAChunkBoundaryIsFound) {
    std::string rules = rule_with("body contains \"lottery winner\" or body matches /lot+ery w/");
    EXPECT_EQ(scan(rules, {"you are our lott", "ery winner\r\n"}), "11");
    EXPECT_EQ(scan(rules, {"l", "o", "t", "t", "e", "r", "y", " ", "w", "inner"}), "11");
    EXPECT_EQ(scan(rules, {"lottery", "\r\n", "winner"}), "00");
    // Over many blocks: a 200 KB body whose only hit straddles the third chunk boundary.
    std::string line(79, 'a');
    line += "\r\n";
    std::string big;
    while (big.size() < 150'000) big += line;
    big += "lottery winner";
    std::vector<std::string> chunks;
    for (std::size_t i = 0; i < big.size(); i += 65'536) chunks.push_back(big.substr(i, 65'536));
    EXPECT_EQ(scan(rules, chunks), "11");
}

TEST(BodyScan, StopsAtTheScanLimit) {
    std::string rules = rule_with("body contains \"needle\" or body matches /needle/");
    std::string body = std::string(1000, 'x') + "needle";
    EXPECT_EQ(scan(rules, {body}, 1006), "11");
    EXPECT_EQ(scan(rules, {body}, 1005), "00");  // straddles the limit: not found
    EXPECT_EQ(scan(rules, {std::string(1000, 'x'), "needle"}, 1000), "00");
    EXPECT_EQ(scan(rules, {body}, 0), "00");
}

// A body regex matches bytes (RE2's Latin-1 mode): \xff is the byte 0xff, and a UTF-8
// text in the pattern matches the same bytes.
TEST(BodyScan, EightBitBytes) {
    std::string rules = rule_with(
        "body contains \"gr\xc3\xbc\xc3\x9f"
        "e\" or body matches /\\xff\\x00?\\xfe/ or "
        "body matches /caf\xc3\xa9$/");
    EXPECT_EQ(scan(rules, {"GR\xc3\xbc",
                           "\xc3\x9f"
                           "E\r\n\xff\xfe\r\ncaf\xc3\xa9\r\n"}),
              "111");
    EXPECT_EQ(scan(rules, {"GR\xc3\x9c\xc3\x9f"
                           "E \xff\xfd caf\xc3\xa9!"}),
              "000");
    // A NUL byte in the body is a byte like any other.
    EXPECT_EQ(
        scan(rule_with("body contains \"a\"  or body matches /b\\x00c/"), {std::string("b\0c", 3)}),
        "01");
}

// CRLF is LF to the regexes: ^ and $ match at each line, $ does not see the CR, and no
// match spans a line end (not even with \s or [^x]).
TEST(BodyScan, CrlfLineEnds) {
    EXPECT_EQ(scan(rule_with("body matches /^Dear friend,$/"), {"Hello\r\nDear friend,\r\nx"}),
              "1");
    EXPECT_EQ(scan(rule_with("body matches /^Dear friend,$/"), {"Hello Dear friend,\r\n"}), "0");
    EXPECT_EQ(scan(rule_with("body matches /friend,$/"), {"Dear friend,\r", "\nx"}), "1");
    EXPECT_EQ(scan(rule_with("body matches /friend,\\r/"), {"Dear friend,\r\n"}), "0");
    EXPECT_EQ(scan(rule_with("body matches /a\\sb/ or body matches /a[^x]b/"), {"a\r\nb"}), "00");
    EXPECT_EQ(scan(rule_with("body matches /a\\sb/"), {"a b"}), "1");
    // A bare CR is kept.
    EXPECT_EQ(scan(rule_with("body matches /a\\rb/"), {"a\rb\r\n"}), "1");
    EXPECT_EQ(scan(rule_with("body contains \"x\"  or body matches /a\\rb/"), {"a\r", "b"}), "01");
}

// A line longer than a block is cut; ^ and $ still mean a real line start and end, and a
// match of up to 4 KiB across a cut is found (a longer one is not).
TEST(BodyScan, AVeryLongLine) {
    std::string rules = rule_with(
        "body matches /^zz/ or body matches /zz$/ or body matches /yyyyzzzz/ or body "
        "matches /qc+d$/ or body matches /^a+b$/");
    std::string line(200'000, 'a');
    line.replace(kBodyBlockBytes - 4, 8, "yyyyzzzz");  // across the first cut
    EXPECT_EQ(scan(rules, {line.substr(0, 65'536), line.substr(65'536)}), "00100");
    std::string a(70'000, 'a');
    EXPECT_EQ(scan(rules, {a + "q" + std::string(2000, 'c'), std::string(1000, 'c') + "d\r\n"}),
              "00010");
    EXPECT_EQ(scan(rules, {a + "q" + std::string(5000, 'c'), "d\r\n"}), "00000");
    EXPECT_EQ(scan(rules, {std::string(150'000, 'a'), "b\r\n"}), "00000");  // 150,001 bytes
    EXPECT_EQ(scan(rules, {std::string(60'000, 'a'), "b\r\n"}), "00001");
}

TEST(BodyScan, AllPatternsFoundEndsTheScanEarly) {
    BodyScanner s;
    auto p = must_load(rule_with("body contains \"x\""));
    s.start(p->body_patterns(), kDefaultBodyScanLimit);
    s.feed("x");
    s.feed(std::string(1000, 'y'));
    EXPECT_EQ(s.scanned(), 1u);
}

// Through the conversation, as the adapter and --test drive it.
TEST(BodyScan, ThroughTheConversation) {
    ConversationOptions o;
    o.body_scan_limit = 64;
    Session s(must_load(rule_with("body contains \"lottery\"") +
                        "rule \"b\" at message when body matches /^ok$/ add-header \"X\" \"y\"\n"),
              o);
    testing::start_mail(s.conv, "<a@b>");
    s.conv.rcpt("<c@d>");
    s.conv.scan_body("ok\r\nyou won the lot");
    s.conv.scan_body("tery\r\n");
    EXPECT_EQ(summary(s.conv.message()), "reject 554 5.7.1 Rejected by policy");
    // The next message starts afresh, and the limit applies to it.
    s.conv.mail("<a@b>", "", 0, false);
    s.conv.scan_body(std::string(64, 'x') + "lottery\r\n");
    Decision d = s.conv.message();
    EXPECT_EQ(summary(d), "continue");
    EXPECT_TRUE(d.headers_to_add.empty());
}

}  // namespace
}  // namespace pm
