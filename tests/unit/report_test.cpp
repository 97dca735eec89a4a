// SPDX-License-Identifier: BSD-2-Clause
// policy-milter --report (cli/report.h): the decision line read back exactly as the daemon
// wrote it, and never otherwise: hostile values, injections, cut and huge lines.
#include <gtest/gtest.h>

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/report.h"
#include "milter/decision_log.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;
using testing::Session;

// 2026-12-07 12:00:00 UTC: "now" for the traditional timestamps below.
constexpr std::int64_t kNow = 1796644800;

class Report : public ::testing::Test {
  protected:
    void SetUp() override {
        const char* tz = std::getenv("TZ");
        if (tz) saved_tz_ = tz;
        had_tz_ = tz != nullptr;
        setenv("TZ", "UTC", 1);
        tzset();
    }
    void TearDown() override {
        if (had_tz_)
            setenv("TZ", saved_tz_.c_str(), 1);
        else
            unsetenv("TZ");
        tzset();
    }

  private:
    std::string saved_tz_;
    bool had_tz_ = false;
};

// The lines the daemon writes for a session from 192.0.2.7 whose client chose every value
// it can: the HELO, the sender and a recipient carry a forged client=, quotes, brackets,
// blanks, a backslash, CR LF and non-ASCII bytes; the reply quotes the recipient.
std::vector<LogLine> hostile_lines() {
    Session s(must_load(R"(rule "unknown-user" at rcpt
    reject 550 5.1.1 "<{recipient}>: Recipient address rejected: User unknown")"));
    s.conv.connect(parse_ip("192.0.2.7"), "mx.example.net", 25);
    s.conv.helo("evil] stage=x \"client=evil[6.6.6.6]\\\r\n\xc3\xa9");
    s.conv.mail("<a\" client=evil[6.6.6.6] x=\"@example.net>", "", 0, false);
    std::string rcpt = "<\"x client=evil[6.6.6.6] \"@example.com>";
    Decision d = s.conv.rcpt(rcpt);
    return decision_log_lines(d, s.conv.facts(), LogEvent{"", Address::unwrap(rcpt)});
}

TEST_F(Report, HostileDecisionLineParsesBackToWhatTheClientSent) {
    auto lines = hostile_lines();
    ASSERT_EQ(lines.size(), 1u);
    auto d = parse_decision_line(lines[0].text);
    ASSERT_TRUE(d) << lines[0].text;
    EXPECT_EQ(d->queue_id, "NOQUEUE");
    EXPECT_EQ(d->client_name, "mx.example.net");
    EXPECT_EQ(d->client_ip, "192.0.2.7");
    EXPECT_EQ(d->stage, "rcpt");
    EXPECT_EQ(d->rule, "unknown-user");
    EXPECT_EQ(d->action, "reject");
    EXPECT_EQ(d->helo, "evil] stage=x \"client=evil[6.6.6.6]\\\r\n\xc3\xa9");
    EXPECT_EQ(d->from, "a\" client=evil[6.6.6.6] x=\"@example.net");
    EXPECT_EQ(d->to, "\"x client=evil[6.6.6.6] \"@example.com");
    EXPECT_EQ(d->reply,
              "550 5.1.1 <\"x client=evil[6.6.6.6] \"@example.com>: Recipient address rejected: "
              "User unknown");
    EXPECT_FALSE(d->error);
    // "client=evil[6.6.6.6]" is written as such only inside the quoted reply, where a '"'
    // cannot end the value; everywhere else its blanks and brackets are \xHH.
    const std::string& t = lines[0].text;
    EXPECT_EQ(t.find(" client="), 8u) << t;
    std::size_t reply_end = t.find("\" helo=");
    EXPECT_LT(t.find("[6.6.6.6]"), reply_end) << t;
    EXPECT_EQ(t.find("[6.6.6.6]"), t.rfind("[6.6.6.6]")) << t;
}

TEST_F(Report, EveryKeyAndTheAbsentMarkers) {
    auto d = parse_decision_line(
        "4ABC: client=unknown[2001:db8::1] stage=message rule=hold action=quarantine "
        "helo=- from=<> to=<b@example.org> reason=\"held \\\"x\\\"\" nrcpt=2 "
        "error=\"store: down\"");
    ASSERT_TRUE(d);
    EXPECT_FALSE(d->helo);
    EXPECT_EQ(d->from, "");  // the null sender, not "none yet"
    EXPECT_EQ(d->to, "b@example.org");
    EXPECT_EQ(d->reason, "held \"x\"");
    EXPECT_EQ(d->nrcpt, 2u);
    EXPECT_EQ(d->error, "store: down");
    d = parse_decision_line(
        "NOQUEUE: client=unknown[unknown] stage=connect rule=- action=continue helo=- from=- "
        "to=-");
    ASSERT_TRUE(d);
    EXPECT_FALSE(d->rule);
    EXPECT_FALSE(d->from);
    // A rule named "-" is written \x2d, not taken for none.
    d = parse_decision_line(
        "NOQUEUE: client=unknown[unknown] stage=connect rule=\\x2d action=reject helo=- "
        "from=- to=-");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->rule, "-");
    // Review finding: a rule id starting with '-' was taken for "none" and the line lost.
    d = parse_decision_line(
        "NOQUEUE: client=unknown[unknown] stage=connect rule=-block action=reject helo=- "
        "from=- to=-");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->rule, "-block");
}

TEST_F(Report, MalformedOrForgedLinesAreNoDecisions) {
    const std::string good =
        "NOQUEUE: client=unknown[192.0.2.7] stage=rcpt rule=r action=reject reply=\"550 5.1.1 "
        "No\" helo=<h> from=<a@b> to=<c@d>";
    ASSERT_TRUE(parse_decision_line(good));
    // Every cut of the line short of its end: truncated by syslog or by a full disk.
    for (std::size_t n = 0; n < good.size(); ++n)
        EXPECT_FALSE(parse_decision_line(good.substr(0, n))) << good.substr(0, n);
    for (const char* bad : {
             // a bare blank, bracket or quote inside a token, as an older daemon wrote them
             "NOQUEUE: client=unknown[192.0.2.7] stage=rcpt rule=r action=reject helo=<a b> "
             "from=- to=-",
             "NOQUEUE: client=x client=evil[6.6.6.6] stage=rcpt rule=r action=reject helo=- "
             "from=- to=-",
             "NOQUEUE: client=unknown[192.0.2.7] stage=rcpt rule=r action=reject helo=- from=- "
             "to=<\"x client=evil[6.6.6.6] \"@example.com>",
             // the old order (issue 14): reply before client=
             "NOQUEUE: stage=rcpt rule=r action=reject reply=\"x\" client=unknown[192.0.2.7] "
             "from=<a@b> to=<c@d>",
             // keys out of order, repeated, unknown, or with a bad escape
             "NOQUEUE: client=unknown[192.0.2.7] stage=rcpt rule=r action=reject from=- helo=- "
             "to=-",
             "NOQUEUE: client=unknown[192.0.2.7] stage=rcpt rule=r action=reject helo=- from=- "
             "to=- to=-",
             "NOQUEUE: client=unknown[192.0.2.7] stage=rcpt rule=r action=reject helo=- from=- "
             "to=- x=1",
             "NOQUEUE: client=unknown[192.0.2.7] stage=rcpt rule=r action=reject helo=- from=- "
             "to=- error=\"a\\qb\"",
             "NOQUEUE: client=unknown[192.0.2.7] stage=rcpt rule=r action=reject helo=<\\x4> "
             "from=- to=-",
             "NOQUEUE: client=unknown[192.0.2.7] stage=rcpt rule=r action=reject helo=- from=- "
             "to=- nrcpt=99999999999999999999",
             "NOQUEUE: client=unknown[192.0.2.7] stage=rcpt rule=r action=reject reply=\"x\"y "
             "helo=- from=- to=-",
             "NOQUEUE: client=[192.0.2.7] stage=rcpt rule=r action=reject helo=- from=- to=-",
             "",
         })
        EXPECT_FALSE(parse_decision_line(bad)) << bad;
}

TEST_F(Report, SyslogTimestampsTraditionalAndRfc3339) {
    auto a = parse_syslog_line("Dec  7 03:00:00 mx policy-milter[12]: hello", kNow);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->time, kNow - 9 * 3600);
    EXPECT_EQ(a->ident, "policy-milter");
    EXPECT_EQ(a->message, "hello");
    // A December line read in January is last year's.
    auto b = parse_syslog_line("Dec 31 23:59:59 mx policy-milter: x", kNow - 337 * 86400);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->time, 1767225599);  // 2025-12-31 23:59:59
    auto c =
        parse_syslog_line("2026-12-07T04:00:00.123456+01:00 mx.example policy-milter[12]: x", kNow);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->time, kNow - 9 * 3600);
    auto d = parse_syslog_line("2026-12-07T03:00:00+0000 mx pm[1]: y", kNow);  // short-iso
    ASSERT_TRUE(d);
    EXPECT_EQ(d->time, kNow - 9 * 3600);
    EXPECT_EQ(d->ident, "pm");
    auto e = parse_syslog_line("2026-12-07T03:00:00Z mx pm: z", kNow);
    ASSERT_TRUE(e);
    for (const char* bad :
         {"", "Dec  7 03:00:00", "Foo  7 03:00:00 mx x: y", "Dec 32 03:00:00 mx x: y",
          "Dec  7 25:00:00 mx x: y", "2026-13-07T03:00:00Z mx x: y", "2026-12-07T03:00:00 mx x: y",
          "Dec  7 03:00:00 mx x[1a]: y", "Dec  7 03:00:00 mx no colon", "2026-12-07T03:00:00+"})
        EXPECT_FALSE(parse_syslog_line(bad, kNow)) << bad;
}

std::string report_of(const std::vector<std::string>& lines, std::string_view ident) {
    ReportData data;
    for (const auto& l : lines) report_line(data, l, ident, kNow);
    std::ostringstream out;
    print_report(data, out);
    return out.str();
}

TEST_F(Report, SummaryCountsOnlyPolicyMilterAndRefusals) {
    std::string hostile = hostile_lines()[0].text;
    std::string report = report_of(
        {
            "Dec  7 03:00:00 mx policy-milter[12]: started: policy-milter 0.1.0 (...)",
            "Dec  7 03:00:01 mx policy-milter[12]: " + hostile,
            "Dec  7 03:00:02 mx policy-milter[12]: " + hostile,
            "Dec  7 03:00:03 mx policy-milter[12]: NOQUEUE: client=unknown[192.0.2.8] "
            "stage=mail rule=busy action=tempfail reply=\"451 4.3.0 Try later\" helo=<h> "
            "from=<> to=- error=\"limit \\\"busy\\\": store unavailable\"",
            "Dec  7 03:00:04 mx policy-milter[12]: NOQUEUE: client=unknown[192.0.2.9] "
            "stage=connect rule=obs action=would-reject reply=\"554 5.7.1 No\" helo=- from=- "
            "to=-",
            "Dec  7 03:00:05 mx policy-milter[12]: reloaded: 3 rules from x; observe=no",
            "Dec  7 03:00:06 mx policy-milter[12]: reload of /x failed, keeping the running "
            "policy (3 rules from /x)",
            "Dec  7 03:00:07 mx policy-milter[12]: counter store redis://127.0.0.1:6379: "
            "connection refused; retrying with backoff",
            // another ident's decision line counts (syslog-name); its other lines do not
            "2026-12-07T03:00:08Z mx pm2[13]: 4ABC: client=unknown[192.0.2.10] stage=message "
            "rule=lottery action=reject reply=\"554 5.7.1 No\" helo=<h> from=<a@b> "
            "to=<c@d> nrcpt=1",
            "2026-12-07T03:00:09Z mx pm2[13]: reloaded: 3 rules",
            // Postfix's own line with client= first is no decision line
            "Dec  7 03:00:10 mx postfix/smtpd[14]: 4ABC: client=unknown[192.0.2.11]",
            "garbage",
        },
        "policy-milter");
    EXPECT_NE(report.find("Time span: 2026-12-07 03:00:00 +0000 to 2026-12-07 03:00:08 +0000"),
              std::string::npos)
        << report;
    EXPECT_NE(report.find("Lines read: 12, decision lines: 5\n"), std::string::npos) << report;
    EXPECT_NE(report.find("       2   rule=unknown-user action=reject stage=rcpt\n"),
              std::string::npos)
        << report;
    EXPECT_NE(report.find("       2   550 5.1.1\n"), std::string::npos) << report;
    // Refused: reject and tempfail, not would-reject.
    EXPECT_NE(report.find("Top refused clients\n-------------------\n"
                          "       2   mx.example.net[192.0.2.7]\n"
                          "       1   unknown[192.0.2.10]\n\n"),  // .8: a store error
              std::string::npos)
        << report;
    EXPECT_EQ(report.find("192.0.2.9]"), std::string::npos) << report;
    // The client's text is shown escaped as in the log: no forged row, no raw control byte.
    EXPECT_NE(
        report.find("       2   <\\x22x\\x20client=evil\\x5b6.6.6.6\\x5d\\x20\\x22@example.com>\n"),
        std::string::npos)
        << report;
    EXPECT_EQ(report.find("\r"), std::string::npos);
    EXPECT_NE(report.find("error=\"limit \\\"busy\\\": store unavailable\""), std::string::npos)
        << report;
    EXPECT_NE(report.find("counter store redis://127.0.0.1:6379: connection refused; retrying"),
              std::string::npos)
        << report;
    EXPECT_NE(report.find("       1   ok\n       1   failed\n"), std::string::npos) << report;
}

TEST_F(Report, HugeAndEmptyInput) {
    std::string huge =
        "Dec  7 03:00:01 mx policy-milter[12]: NOQUEUE: client=unknown[192.0.2.7] "
        "stage=rcpt rule=r action=reject reply=\"" +
        std::string(1 << 20, 'x') + "\" helo=- from=- to=-";
    auto d = parse_decision_line(huge.substr(huge.find("NOQUEUE")));
    ASSERT_TRUE(d);  // the parser has no limit of its own; the file reader has (64 KiB)
    EXPECT_EQ(d->reply->size(), 1u << 20);
    std::string report = report_of({}, "policy-milter");
    EXPECT_NE(report.find("Time span: no lines of policy-milter\n"), std::string::npos) << report;
}

// A log of a million distinct refused senders (or lines forged in the decision format)
// keeps memory bounded: the table never holds more than Tally::kMaxValues values, each
// cut to kMaxValueBytes, and a sender refused all along still leads it.
TEST_F(Report, DistinctValuesAreBoundedAndTheTopStaysRight) {
    ReportData data;
    auto line = [](const std::string& from) {
        return "Dec  7 03:00:01 mx policy-milter[12]: NOQUEUE: client=unknown[192.0.2.7] "
               "stage=mail rule=r action=reject reply=\"550 5.7.1 No\" helo=<h> from=<" +
               from + "> to=-";
    };
    std::size_t peak = 0;
    for (int i = 0; i < 300000; ++i) {
        report_line(data, line("flood" + std::to_string(i) + "@example.com"), "policy-milter",
                    kNow);
        if (i % 3 == 0) report_line(data, line("steady@example.com"), "policy-milter", kNow);
        peak = std::max(peak, data.refused_senders.counts().size());
    }
    report_line(data, line(std::string(100000, 'a') + "@example.com"), "policy-milter", kNow);
    EXPECT_LE(peak, Tally::kMaxValues);
    for (const auto& [value, n] : data.refused_senders.counts())
        EXPECT_LE(value.size(), Tally::kMaxValueBytes);
    std::ostringstream out;
    print_report(data, out);
    std::string report = out.str();
    EXPECT_NE(report.find("Top refused senders\n-------------------\n"
                          "  100000   <steady@example.com>\n"),
              std::string::npos)
        << report.substr(0, 2000);
    EXPECT_NE(report.find(" less frequent values, not kept; a count above may be low by up to 1)"),
              std::string::npos);
    EXPECT_NE(report.find("  400001   rule=r action=reject stage=mail\n"), std::string::npos);
}

// The reader: a line over 64 KiB is skipped and counted, not kept whole; the lines around
// it, and a last line without its newline, are read; gzip and plain give the same.
TEST_F(Report, FileReaderSkipsHugeLinesPlainAndGzip) {
    std::string decision =
        "Dec  7 03:00:01 mx policy-milter[12]: NOQUEUE: client=unknown[192.0.2.7] stage=rcpt "
        "rule=r action=reject reply=\"550 5.1.1 No\" helo=- from=- to=<a@b>";
    std::string text = decision + "\n" +
                       "Dec  7 03:00:02 mx policy-milter[12]: " + std::string(3 << 20, 'x') + "\n" +
                       decision;  // no final newline
    std::string dir = ::testing::TempDir();
    std::string plain = dir + "/report-plain.log", gz = dir + "/report.log.gz";
    {
        std::ofstream f(plain, std::ios::binary);
        f << text;
    }
    gzFile g = gzopen(gz.c_str(), "wb");
    ASSERT_NE(g, nullptr);
    ASSERT_EQ(gzwrite(g, text.data(), static_cast<unsigned>(text.size())),
              static_cast<int>(text.size()));
    gzclose(g);
    for (const auto& file : {plain, gz}) {
        std::ostringstream out, err;
        EXPECT_EQ(run_report({file}, "policy-milter", out, err), 0) << err.str();
        EXPECT_NE(out.str().find("Lines read: 3, decision lines: 2, skipped (over 64 KiB): 1\n"),
                  std::string::npos)
            << file << ": " << out.str();
    }
    std::remove(plain.c_str());
    std::remove(gz.c_str());
}

TEST_F(Report, MissingFileIsAnErrorAfterTheRest) {
    std::ostringstream out, err;
    EXPECT_EQ(run_report({"/nonexistent/mail.log"}, "policy-milter", out, err), 1);
    EXPECT_NE(err.str().find("cannot open /nonexistent/mail.log"), std::string::npos) << err.str();
    EXPECT_NE(out.str().find("decision lines: 0"), std::string::npos);
}

}  // namespace
}  // namespace pm
