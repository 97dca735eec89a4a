// SPDX-License-Identifier: BSD-2-Clause
// policy-milter.rules(5), STAGES AND FIELDS, CONDITIONS, ACTIONS: each field at each stage, each
// operator, each list item kind, actions.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace pm {
namespace {

using testing::diagnostics_of;
using testing::must_load;
using testing::Session;
using testing::summary;

struct Tx {
    std::string ip = "192.0.2.10";
    std::string name = "mx.example.net";
    std::string helo = "mx.example.net";
    std::string from = "<Alice@Example.NET>";
    std::string auth;
    std::uint64_t size = 0;
    bool tls = false;
    std::vector<std::string> rcpts = {"<bob@example.org>"};
    std::vector<std::pair<std::string, std::string>> headers = {{"Subject", "Hello"}};
    std::uint64_t body = 100;
};

// Runs a whole transaction and returns "stage:verdict" for the first deciding event,
// or "none".
std::string first_decision(const std::string& rules, const Tx& tx = {}) {
    auto p = must_load(rules);
    if (!p) return "load failed";
    Session s(p);
    auto report = [](const Decision& d) {
        return std::string(stage_name(d.stage)) + ":" + summary(d);
    };
    Decision d = s.conv.connect(parse_ip(tx.ip), tx.name, 4711);
    if (d.verdict != Verdict::Continue) return report(d);
    d = s.conv.helo(tx.helo);
    if (d.verdict != Verdict::Continue) return report(d);
    d = s.conv.mail(tx.from, tx.auth, tx.size, tx.tls);
    if (d.verdict != Verdict::Continue) return report(d);
    for (const auto& r : tx.rcpts) {
        d = s.conv.rcpt(r);
        if (d.verdict != Verdict::Continue) return report(d);
    }
    d = s.conv.data();
    if (d.verdict != Verdict::Continue) return report(d);
    for (const auto& [n, v] : tx.headers) s.conv.header(n, v);
    s.conv.body_bytes(tx.body);
    d = s.conv.message();
    if (d.verdict != Verdict::Continue) return report(d);
    return "none";
}

std::string at(const std::string& stage, const std::string& cond) {
    return "rule \"r\" at " + stage + " when " + cond + " reject";
}

// Runs rules once per case, with set() putting the case's input into a default Tx, and
// checks the first `width` characters of first_decision: the deciding stage, or "none".
template <class Set>
void expect_decisions(const std::string& rules, Set set, std::size_t width,
                      const std::vector<testing::Case>& cases) {
    testing::expect_each(
        [&](const std::string& in) {
            Tx t;
            set(t, in);
            return first_decision(rules, t).substr(0, width);
        },
        cases);
}

TEST(Fields, EachFieldAtItsFirstStage) {
    EXPECT_EQ(first_decision(at("connect", "client.ip == 192.0.2.10")),
              "connect:reject 554 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("connect", "client.name == \"MX.example.net.\"")),
              "connect:reject 554 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("connect", "client.port == 4711")),
              "connect:reject 554 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("helo", "helo == \"mx.EXAMPLE.net\"")),
              "helo:reject 550 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("mail", "sender == \"alice@example.net\"")),
              "mail:reject 550 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("mail", "sender.local == \"ALICE\"")),
              "mail:reject 550 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("mail", "sender.domain == \"example.net\"")),
              "mail:reject 550 5.7.1 Rejected by policy");
    Tx authed;
    authed.auth = "Carol";
    EXPECT_EQ(first_decision(at("mail", "auth.user == \"carol\""), authed),
              "mail:reject 550 5.7.1 Rejected by policy");
    Tx sized;
    sized.size = 21 << 20;
    EXPECT_EQ(first_decision(at("mail", "mail.size > 20MB"), sized),
              "mail:reject 550 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("mail", "mail.size > 20MB")), "none");
    Tx tls;
    tls.tls = true;
    EXPECT_EQ(first_decision(at("mail", "tls"), tls), "mail:reject 550 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("mail", "not tls"), tls), "none");
    EXPECT_EQ(first_decision(at("rcpt", "recipient == \"BOB@example.org\"")),
              "rcpt:reject 550 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("rcpt", "recipient.local == \"bob\"")),
              "rcpt:reject 550 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("rcpt", "recipient.domain == \"example.org\"")),
              "rcpt:reject 550 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("rcpt", "rcpt.count >= 1")),
              "rcpt:reject 550 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("message", "header[\"SUBJECT\"] == \"hello\"")),
              "message:reject 554 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("message", "header[\"X-Missing\"] == \"\"")),
              "message:reject 554 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("message", "message.size == 100")),
              "message:reject 554 5.7.1 Rejected by policy");
}

TEST(Fields, LaterStagesSeeEarlierFields) {
    EXPECT_EQ(first_decision(at("message",
                                "client.ip in [192.0.2.0/24] and helo == \"mx.example.net\" "
                                "and sender.domain == \"example.net\" and rcpt.count == 1")),
              "message:reject 554 5.7.1 Rejected by policy");
}

TEST(Fields, NotYetAvailableIsALoadError) {
    EXPECT_EQ(diagnostics_of(at("connect", "helo == \"x\"")),
              "t.rules:1:26: error: field 'helo' is not available at the connect stage (it is "
              "known from helo on)\n");
    EXPECT_EQ(diagnostics_of(at("rcpt", "message.size > 1")),
              "t.rules:1:23: error: field 'message.size' is not available at the rcpt stage (it "
              "is known from message on)\n");
}

TEST(Fields, RcptCountCountsAcceptedRecipientsAndTheCurrentOne) {
    auto p = must_load(
        "rule \"no-x\" at rcpt when recipient.local == \"x\" reject 550 5.1.1\n"
        "rule \"busy\" at rcpt when recipient.local == \"busy\" tempfail 452 4.2.2\n"
        "rule \"third\" at rcpt when rcpt.count > 2 tempfail 452 4.5.3 \"Too many recipients\"\n"
        "rule \"data\" at data when rcpt.count == 2 tempfail 451\n");
    Session s(p);
    testing::start_mail(s.conv, "<>");
    EXPECT_EQ(summary(s.conv.rcpt("<a@x>")), "continue");  // count 1
    EXPECT_EQ(summary(s.conv.rcpt("<x@x>")), "reject 550 5.1.1 Rejected by policy");
    EXPECT_EQ(summary(s.conv.rcpt("<busy@x>")),  // tempfailed: not counted
              "tempfail 452 4.2.2 Temporarily rejected by policy, try again later");
    EXPECT_EQ(summary(s.conv.rcpt("<b@x>")), "continue");  // count 2
    EXPECT_EQ(summary(s.conv.rcpt("<c@x>")), "tempfail 452 4.5.3 Too many recipients");
    EXPECT_EQ(s.conv.facts().rcpt_count, 2u);
    EXPECT_EQ(summary(s.conv.data()),
              "tempfail 451 4.7.1 Temporarily rejected by policy, try again later");
    s.conv.abort();
    EXPECT_EQ(s.conv.facts().rcpt_count, 0u);
}

TEST(Fields, RecipientConditionAfterRcptMeansAnyAcceptedRecipient) {
    Tx two;
    two.rcpts = {"<a@one.example>", "<b@two.example>"};
    EXPECT_EQ(first_decision(at("data", "recipient.domain == \"two.example\""), two),
              "data:reject 554 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("message", "recipient in [\"@one.example\"]"), two),
              "message:reject 554 5.7.1 Rejected by policy");
    EXPECT_EQ(first_decision(at("data", "recipient.domain == \"three.example\""), two), "none");
}

TEST(Operators, ComparisonsAndBooleans) {
    Tx t;
    t.size = 1000;
    EXPECT_EQ(first_decision(at("mail", "mail.size < 1001"), t).substr(0, 4), "mail");
    EXPECT_EQ(first_decision(at("mail", "mail.size <= 1000"), t).substr(0, 4), "mail");
    EXPECT_EQ(first_decision(at("mail", "mail.size > 999"), t).substr(0, 4), "mail");
    EXPECT_EQ(first_decision(at("mail", "mail.size >= 1000"), t).substr(0, 4), "mail");
    EXPECT_EQ(first_decision(at("mail", "mail.size != 1000"), t), "none");
    EXPECT_EQ(first_decision(at("mail", "mail.size == 1K"), t), "none");
    EXPECT_EQ(first_decision(at("mail", "sender != \"alice@example.net\""), t), "none");
    // Precedence: not binds tighter than and, and tighter than or.
    EXPECT_EQ(first_decision(at("mail", "not tls and mail.size == 1000 or mail.size == 5"), t)
                  .substr(0, 4),
              "mail");
    EXPECT_EQ(first_decision(at("mail", "not (tls or mail.size == 1000)"), t), "none");
    EXPECT_EQ(first_decision(at("mail", "mail.size == 5 or not not tls"), t), "none");
}

TEST(Operators, RegexSearchesAndHonoursFlags) {
    EXPECT_EQ(first_decision(at("helo", "helo matches /EXAMPLE/")), "none");
    EXPECT_EQ(first_decision(at("helo", "helo matches /EXAMPLE/i")).substr(0, 4), "helo");
    EXPECT_EQ(first_decision(at("helo", "helo matches /^example/")), "none");
    EXPECT_EQ(first_decision(at("mail", "sender matches /^alice@/i")).substr(0, 4), "mail");
    EXPECT_EQ(first_decision(at("mail", "sender matches /a\\/b/")), "none");
    EXPECT_EQ(first_decision(at("connect", "client.ip matches /^192\\.0\\.2\\./")).substr(0, 7),
              "connect");
    // RE2 is linear: a classic catastrophic-backtracking pattern returns at once.
    Tx evil;
    evil.helo = std::string(5000, 'a') + "!";
    EXPECT_EQ(first_decision(at("helo", "helo matches /^(a+)+$/"), evil), "none");
}

TEST(Lists, IpPrefixesV4V6AndMapped) {
    std::string rules =
        at("connect", "client.ip in [ 10.0.0.0/8, 192.0.2.128/25, 2001:db8::/32, ::1 ]");
    expect_decisions(rules, [](Tx& t, const std::string& a) { t.ip = a; }, 7,
                     {
                         {"10.255.1.1", "connect"},
                         {"11.0.0.1", "none"},
                         {"192.0.2.200", "connect"},
                         {"192.0.2.10", "none"},
                         {"2001:db8:1::5", "connect"},
                         {"2001:db9::5", "none"},
                         {"::1", "connect"},
                         {"::ffff:10.1.2.3", "connect"},  // IPv4-mapped matches the IPv4 entry
                         {"::ffff:11.1.2.3", "none"},
                         {"::2", "none"},
                     });
}

TEST(Lists, AddressItemKinds) {
    std::string rules = at("rcpt",
                           "recipient in [ \"Exact@Example.com\", \"@domain.example\", "
                           "\".sub.example\", \"*-bounces@*\", \"ab*cd@x.example\" ]");
    expect_decisions(rules, [](Tx& t, const std::string& a) { t.rcpts = {a}; }, 4,
                     {
                         {"<exact@EXAMPLE.COM>", "rcpt"},
                         {"<exact2@example.com>", "none"},
                         {"<anyone@domain.example>", "rcpt"},
                         {"<anyone@www.domain.example>", "none"},  // @domain: that domain exactly
                         {"<u@a.sub.example>", "rcpt"},
                         {"<u@a.b.sub.example>", "rcpt"},
                         {"<u@sub.example>", "none"},  // .domain: subdomains only, as in Postfix
                         {"<list-bounces@lists.example>", "rcpt"},
                         {"<AB-x-CD@x.example>", "rcpt"},
                         {"<abcd@x.example>", "rcpt"},
                         {"<abc@x.example>", "none"},
                         {"<user+tag@domain.example>", "rcpt"},  // no extension stripping needed
                     });
}

TEST(Lists, NullSenderItem) {
    Tx bounce;
    bounce.from = "<>";
    EXPECT_EQ(first_decision(at("mail", "sender in [ \"\" ]"), bounce).substr(0, 4), "mail");
    EXPECT_EQ(first_decision(at("mail", "sender in [ \"<>\" ]"), bounce).substr(0, 4), "mail");
    EXPECT_EQ(first_decision(at("mail", "sender == \"\""), bounce).substr(0, 4), "mail");
    EXPECT_EQ(first_decision(at("mail", "sender in [ \"\" ]")), "none");
}

TEST(Lists, HostAndTextItems) {
    std::string rules = at("helo", "helo in [ \"localhost\", \".dyn.example\", \"*.dsl.*\" ]");
    expect_decisions(rules, [](Tx& t, const std::string& h) { t.helo = h; }, 4,
                     {
                         {"LOCALHOST", "helo"},
                         {"localhost.", "helo"},
                         {"h1.dyn.example", "helo"},
                         {"dyn.example", "none"},
                         {"host.dsl.isp.example", "helo"},
                         {"mx.example.net", "none"},
                     });
    Tx t;
    t.auth = "Bob.Smith";
    EXPECT_EQ(first_decision(at("mail", "auth.user in [ \"bob.*\" ]"), t).substr(0, 4), "mail");
    EXPECT_EQ(first_decision(at("message", "header[\"Subject\"] in [ \"HELLO\" ]")).substr(0, 7),
              "message");
    EXPECT_EQ(first_decision(at("connect", "client.port in [ 25, 4711 ]")).substr(0, 7), "connect");
}

TEST(Lists, FileBackedRelativeToRulesFile) {
    auto dir = std::filesystem::temp_directory_path() / "pm-lists-test";
    std::filesystem::create_directories(dir / "lists");
    std::ofstream(dir / "lists" / "nets.txt")
        << "# blocked\n\n  10.0.0.0/8   # comment\n2001:db8::/32\r\n";
    std::ofstream(dir / "users.txt") << "bob@example.org\n";
    auto p = must_load(
        "list nets = file \"lists/nets.txt\"\n"
        "rule \"n\" at connect when client.ip in nets reject\n"
        "rule \"u\" at rcpt when recipient in file \"users.txt\" reject 550 5.1.1\n",
        dir.string());
    ASSERT_TRUE(p);
    EXPECT_EQ(p->source_files().size(), 3u);
    Session s(p);
    EXPECT_EQ(s.conv.connect(parse_ip("10.9.9.9"), "unknown", 1).verdict, Verdict::Reject);
    Session s2(p);
    EXPECT_EQ(s2.conv.connect(parse_ip("2001:db8::9"), "unknown", 1).verdict, Verdict::Reject);
    Session s3(p);
    EXPECT_EQ(s3.conv.connect(parse_ip("192.0.2.1"), "unknown", 1).verdict, Verdict::Continue);
    s3.conv.mail("<>", "", 0, false);
    EXPECT_EQ(summary(s3.conv.rcpt("<Bob@Example.org>")), "reject 550 5.1.1 Rejected by policy");
    std::filesystem::remove_all(dir);
}

TEST(Actions, PassSkipsTheRestOfTheStageOnly) {
    auto p = must_load(
        "rule \"vip\" at rcpt when recipient == \"vip@x\" pass\n"
        "rule \"all\" at rcpt reject\n"
        "rule \"d\" at data when recipient == \"vip@x\" reject\n");
    Session s(p);
    testing::start_mail(s.conv, "<>");
    Decision d = s.conv.rcpt("<vip@x>");
    EXPECT_EQ(d.verdict, Verdict::Pass);
    EXPECT_EQ(d.rule_id, "vip");
    EXPECT_EQ(s.conv.rcpt("<other@x>").rule_id, "all");
    EXPECT_EQ(summary(s.conv.data()), "reject 554 5.7.1 Rejected by policy");
}

TEST(Actions, AcceptEndsAllChecksForTheMessage) {
    auto p = must_load(
        "rule \"ok\" at mail when sender == \"friend@x\" accept\n"
        "rule \"r\" at rcpt reject\n");
    Session s(p);
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
    EXPECT_EQ(s.conv.mail("<friend@x>", "", 0, false).verdict, Verdict::Accept);
    EXPECT_EQ(s.conv.rcpt("<a@y>").verdict, Verdict::Continue);
    s.conv.message();
    s.conv.mail("<stranger@x>", "", 0, false);
    EXPECT_EQ(s.conv.rcpt("<a@y>").verdict, Verdict::Reject);  // next message: rules again
}

TEST(Actions, AcceptAtConnectCoversEveryMessage) {
    auto p = must_load(
        "rule \"lan\" at connect when client.ip in [10.0.0.0/8] accept\n"
        "rule \"r\" at rcpt reject\n");
    Session s(p);
    EXPECT_EQ(s.conv.connect(parse_ip("10.0.0.1"), "unknown", 1).verdict, Verdict::Accept);
    s.conv.mail("<a@x>", "", 0, false);
    EXPECT_EQ(s.conv.rcpt("<b@y>").verdict, Verdict::Continue);
    s.conv.message();
    s.conv.mail("<a@x>", "", 0, false);
    EXPECT_EQ(s.conv.rcpt("<b@y>").verdict, Verdict::Continue);
}

TEST(Actions, MessageStageActions) {
    auto p = must_load(
        "rule \"tag\" at message add-header \"X-Policy\" \"checked {sender}\"\n"
        "rule \"tag2\" at message when header[\"Subject\"] matches /spam/i add-header \"X-Spam\" "
        "\"yes\"\n"
        "rule \"hold\" at message when header[\"Subject\"] matches /hold/ quarantine \"held: "
        "{header[Subject]}\"\n"
        "rule \"drop\" at message when header[\"Subject\"] == \"drop\" discard\n");
    auto run = [&](const std::string& subject) {
        Session s(p);
        testing::start_mail(s.conv, "<a@x>");
        s.conv.rcpt("<b@y>");
        s.conv.data();
        s.conv.header("Subject", subject);
        return s.conv.message();
    };
    Decision d = run("spam and hold");
    EXPECT_EQ(d.verdict, Verdict::Quarantine);
    EXPECT_EQ(d.quarantine_reason, "held: spam and hold");
    ASSERT_EQ(d.headers_to_add.size(), 2u);
    EXPECT_EQ(d.headers_to_add[0],
              (std::pair<std::string, std::string>("X-Policy", "checked a@x")));
    EXPECT_EQ(d.headers_to_add[1].first, "X-Spam");
    EXPECT_EQ(run("drop").verdict, Verdict::Discard);
    EXPECT_EQ(run("fine").verdict, Verdict::Continue);
}

// Only headers some rule, key or text reads are kept; those are found in any case, and
// the first of several wins (the only one kept).
TEST(Actions, OnlyHeadersThePolicyReadsAreKept) {
    auto p = must_load(
        "rule \"subj\" at message when header[\"Subject\"] == \"first\" reject\n"
        "rule \"tag\" at message add-header \"X-Seen\" \"{header[X-Mailer]}\"\n");
    Session s(p);
    testing::start_mail(s.conv, "<a@x>");
    s.conv.rcpt("<b@y>");
    s.conv.data();
    s.conv.header("From", "a@x");
    s.conv.header("x-MAILER", "Mailer 1.0");
    s.conv.header("SUBJECT", "First");
    s.conv.header("Subject", "second");
    s.conv.header("Received", "from somewhere");
    EXPECT_EQ(s.conv.facts().headers.size(), 2u);
    Decision d = s.conv.message();
    EXPECT_EQ(d.rule_id, "subj");

    // Kept for the decision log until the next transaction starts, then reset.
    s.conv.mail("<a@x>", "", 0, false);
    EXPECT_EQ(s.conv.facts().headers.size(), 0u);
    s.conv.rcpt("<b@y>");
    s.conv.data();
    s.conv.header("X-Mailer", "Mailer 2.0");
    d = s.conv.message();
    ASSERT_EQ(d.headers_to_add.size(), 1u);
    EXPECT_EQ(d.headers_to_add[0].second, "Mailer 2.0");
}

// Issue 10, item 5: a header repeated by the sender is kept once, the first copy (the only
// one any rule, key or text reads), whatever the case of its name; a connection so keeps
// at most one value per header name its policy reads.
TEST(Actions, RepeatedHeaderKeepsOnlyItsFirstCopy) {
    auto p = must_load(
        "rule \"subj\" at message when header[\"Subject\"] == \"first\" reject\n"
        "limit \"per-from\" at message key header[\"From\"] max 5 per 1h tempfail\n");
    Session s(p);
    s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
    for (int message = 0; message < 2; ++message) {
        s.conv.mail("<a@x>", "", 0, false);
        s.conv.rcpt("<b@y>");
        s.conv.data();
        s.conv.header("Subject", message == 0 ? "First" : "other");
        for (int i = 0; i < 100000; ++i) {
            s.conv.header(i % 2 ? "SUBJECT" : "subject", "copy " + std::to_string(i));
            s.conv.header("From", "x" + std::to_string(i) + "@example.org");
        }
        const auto& kept = s.conv.facts().headers;
        ASSERT_EQ(kept.size(), 2u);
        EXPECT_EQ(kept[0].name, "subject");
        EXPECT_EQ(kept[0].value, message == 0 ? "First" : "other");
        EXPECT_EQ(kept[1].name, "from");
        EXPECT_EQ(kept[1].value, "x0@example.org");
        Decision d = s.conv.message();
        EXPECT_EQ(d.rule_id, message == 0 ? "subj" : "") << summary(d);
    }
}

TEST(Actions, ObserveLogsAndGoesOn) {
    auto p = must_load(
        "rule \"trial\" at rcpt when recipient.domain == \"y\" reject 550 5.1.1 \"no {recipient}\" "
        "observe\n"
        "rule \"real\" at rcpt when recipient.local == \"b\" tempfail 450 4.2.1\n");
    Session s(p);
    testing::start_mail(s.conv, "<a@x>");
    Decision d = s.conv.rcpt("<b@y>");
    ASSERT_EQ(d.observed.size(), 1u);
    EXPECT_EQ(d.observed[0].rule_id, "trial");
    EXPECT_EQ(d.observed[0].reply->line(), "550 5.1.1 no b@y");
    EXPECT_EQ(d.rule_id, "real");
    EXPECT_EQ(d.verdict, Verdict::Tempfail);
}

TEST(Actions, GlobalObserveNeverRefuses) {
    ConversationOptions o;
    o.observe_all = true;
    Session s(must_load("rule \"r\" at connect reject"), o);
    Decision d = s.conv.connect(parse_ip("192.0.2.1"), "unknown", 1);
    EXPECT_EQ(d.verdict, Verdict::Continue);
    ASSERT_EQ(d.observed.size(), 1u);
}

TEST(Index, EqualityIndexKeepsFileOrder) {
    std::string rules;
    for (int i = 0; i < 100; ++i)
        rules += "rule \"u" + std::to_string(i) + "\" at rcpt when recipient == \"u" +
                 std::to_string(i) + "@x\" and rcpt.count < 5 reject 550 5.1.1 \"u" +
                 std::to_string(i) + "\"\n";
    rules += "rule \"first-catchall\" at rcpt when recipient.domain == \"y\" reject\n";
    rules = "rule \"early\" at rcpt when recipient == \"u50@x\" tempfail 450\n" + rules;
    auto p = must_load(rules);
    Session s(p);
    testing::start_mail(s.conv, "<a@x>");
    EXPECT_EQ(s.conv.rcpt("<U7@X>").rule_id, "u7");
    EXPECT_EQ(s.conv.rcpt("<u50@x>").rule_id, "early");
    EXPECT_EQ(s.conv.rcpt("<u500@x>").rule_id, "");
    EXPECT_EQ(s.conv.rcpt("<q@y>").rule_id, "first-catchall");
}

}  // namespace
}  // namespace pm
