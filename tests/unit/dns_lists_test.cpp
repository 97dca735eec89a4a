// SPDX-License-Identifier: BSD-2-Clause
// DNS lists on the language side (policy/dns_lists.h): declarations and their errors,
// query names, hostile names never queried, the `returns` filter and the 127/8 default,
// {dnsbl.txt}, on-error tempfail, client.ptr and client.resolve. The answers are put in
// the facts as the resolver would; dns_test.cpp runs the real resolver against rbldnsd.

#include "policy/dns_lists.h"

#include <gtest/gtest.h>

#include "policy/evaluator.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::diagnostics_of;
using testing::must_load;

DnsList list_of(DnsListKind kind, std::string zone) {
    DnsList l;
    l.name = "t";
    l.kind = kind;
    l.zone = std::move(zone);
    return l;
}

DnsAnswer found(std::initializer_list<const char*> addresses, std::string txt = "") {
    DnsAnswer a;
    a.status = DnsAnswer::Status::Found;
    for (const char* s : addresses) a.addresses.push_back(parse_ip(s)->v4_bits);
    a.txt = std::move(txt);
    return a;
}

DnsAnswer failed(std::string why) {
    DnsAnswer a;
    a.error = std::move(why);
    return a;
}

const char* kIssueExample = R"(
list zen  = dnsbl "zen.example.org"          # any A answer in 127.0.0.0/8
list zen4 = dnsbl "zen.example.org" returns [ 127.0.0.4, 127.0.0.10-127.0.0.11 ]
list dbl  = rhsbl "dbl.example.org"
list strict = dnsbl "bl.example.net" on-error tempfail

rule "dnsbl" at connect
    when client.ip in zen
    reject 554 5.7.1 "Service unavailable; client [{client.ip}] blocked: {dnsbl.txt}"

rule "zen4" at connect
    when client.ip in zen4
    reject 554 5.7.1 "zen4"

rule "strict" at helo
    when client.ip in strict
    reject 550 5.7.1 "strict"

rule "rhsbl" at mail
    when sender.domain in dbl
    reject 550 5.7.1 "Sender domain {sender.domain} listed"
)";

TEST(DnsLists, IssueExampleLoadsAndRecordsItsUses) {
    auto p = must_load(kIssueExample);
    ASSERT_TRUE(p);
    ASSERT_EQ(p->dns_uses().size(), 4u);
    EXPECT_TRUE(p->uses_dnsbl_txt());
    const DnsUse& zen4 = p->dns_uses()[1];
    EXPECT_EQ(zen4.list->zone, "zen.example.org");
    ASSERT_EQ(zen4.list->returns.size(), 2u);
    EXPECT_EQ(zen4.list->returns[1].first, parse_ip("127.0.0.10")->v4_bits);
    EXPECT_EQ(zen4.list->returns[1].last, parse_ip("127.0.0.11")->v4_bits);
    EXPECT_TRUE(p->dns_uses()[2].list->on_error_tempfail);
    EXPECT_EQ(p->dns_uses()[3].list->kind, DnsListKind::Rhsbl);
}

TEST(DnsLists, BadDeclarationsAreFileLineColErrors) {
    EXPECT_EQ(diagnostics_of("list z = dnsbl \"zen..example.org\"\n"
                             "rule \"r\" at connect when client.ip in z reject\n"),
              "t.rules:1:16: error: DNS zone must be labels of letters, digits, '-' and '_' of 1 "
              "to 63 octets, separated by single dots: \"zen..example.org\"\n");
    EXPECT_NE(diagnostics_of("list z = dnsbl \"org\"\nrule \"r\" at connect when client.ip in z "
                             "reject\n")
                  .find("t.rules:1:16: error: DNS zone needs at least two labels"),
              std::string::npos);
    EXPECT_NE(diagnostics_of("list z = dnsbl \"bl.example.org\" returns [ 127.0.0.x ]\n"
                             "rule \"r\" at connect when client.ip in z reject\n")
                  .find("t.rules:1:43: error: expected an IPv4 address or a range"),
              std::string::npos);
    EXPECT_NE(diagnostics_of("list z = dnsbl \"bl.example.org\" on-error maybe\n"
                             "rule \"r\" at connect when client.ip in z reject\n")
                  .find("t.rules:1:42: error: expected 'tempfail' or 'pass' after 'on-error'"),
              std::string::npos);
    EXPECT_NE(diagnostics_of("list z = dnsbl \"bl.example.org\"\n"
                             "rule \"r\" at helo when helo in z reject\n")
                  .find("t.rules:2:31: error: list 'z' is a dnsbl list: it takes client.ip, not "
                        "'helo'"),
              std::string::npos);
    EXPECT_NE(diagnostics_of("list z = rhsbl \"bl.example.org\"\n"
                             "rule \"r\" at connect when client.ip in z reject\n")
                  .find("t.rules:2:39: error: list 'z' is an rhsbl list"),
              std::string::npos);
    std::string zone(70, 'a');
    EXPECT_NE(diagnostics_of("list z = rhsbl \"" + zone + ".org\"\n" +
                             "rule \"r\" at mail when sender.domain in z reject\n")
                  .find("t.rules:1:16: error: DNS zone must be labels"),
              std::string::npos);
}

TEST(DnsLists, QueryNames) {
    DnsList bl = list_of(DnsListKind::Dnsbl, "zen.example.org");
    EXPECT_EQ(*dns_query_name(bl, *parse_ip("192.0.2.7")), "7.2.0.192.zen.example.org");
    EXPECT_EQ(*dns_query_name(bl, *parse_ip("2001:db8::1")),
              "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example.org");
    // An IPv4-mapped IPv6 client is the IPv4 client.
    EXPECT_EQ(*dns_query_name(bl, *parse_ip("::ffff:192.0.2.7")), "7.2.0.192.zen.example.org");
    DnsList rhs = list_of(DnsListKind::Rhsbl, "dbl.example.org");
    EXPECT_EQ(*dns_query_name(rhs, "spam.example"), "spam.example.dbl.example.org");
    EXPECT_FALSE(dns_query_name(rhs, *parse_ip("192.0.2.7")));
    EXPECT_FALSE(dns_query_name(bl, "spam.example"));
}

TEST(DnsLists, HostileNamesAreNeverQueried) {
    DnsList rhs = list_of(DnsListKind::Rhsbl, "dbl.example.org");
    for (std::string bad :
         {std::string("unknown"), std::string(""), std::string("[192.0.2.1]"), std::string("a..b"),
          std::string(".a.b"), std::string("a_b.example"), std::string("*.example"),
          std::string("a b.example"), std::string("evil.example\n"),
          std::string("x\0y.example", 11), std::string("caf\xc3\xa9.example"),
          std::string(64, 'a') + ".example", std::string("a.") + std::string(236, 'b')}) {
        SCOPED_TRACE(bad);
        EXPECT_FALSE(dns_query_name(rhs, bad));
    }
    EXPECT_TRUE(dns_query_name(rhs, std::string(63, 'a') + ".example"));
    // 253 octets in all: the longest name the resolver is asked for.
    std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                          std::string(63, 'c') + "." + std::string(45, 'd');
    ASSERT_EQ(longest.size() + 1 + rhs.zone.size(), kMaxDnsName);
    EXPECT_TRUE(dns_query_name(rhs, longest));
    EXPECT_FALSE(dns_query_name(rhs, longest + "d"));
}

TEST(DnsLists, DefaultFilterIs127SlashEightWithout127_255_255) {
    DnsList bl = list_of(DnsListKind::Dnsbl, "zen.example.org");
    bool refused = false;
    EXPECT_TRUE(dns_list_matches(bl, found({"127.0.0.2"}), refused));
    EXPECT_FALSE(refused);
    EXPECT_FALSE(dns_list_matches(bl, found({"10.0.0.2"}), refused));
    EXPECT_FALSE(dns_list_matches(bl, found({"127.255.255.254"}), refused));
    EXPECT_TRUE(refused);
    EXPECT_FALSE(dns_list_matches(bl, found({"127.255.255.252", "127.255.255.255"}), refused));
    EXPECT_TRUE(refused);
    EXPECT_TRUE(dns_list_matches(bl, found({"127.255.255.254", "127.0.0.4"}), refused));
    EXPECT_FALSE(dns_list_matches(bl, failed("timeout"), refused));
    DnsAnswer nx;
    nx.status = DnsAnswer::Status::NotFound;
    EXPECT_FALSE(dns_list_matches(bl, nx, refused));
}

TEST(DnsLists, ReturnsFilter) {
    DnsList bl = list_of(DnsListKind::Dnsbl, "zen.example.org");
    bl.returns = {{parse_ip("127.0.0.4")->v4_bits, parse_ip("127.0.0.4")->v4_bits},
                  {parse_ip("127.0.0.10")->v4_bits, parse_ip("127.0.0.11")->v4_bits}};
    bool refused = false;
    EXPECT_TRUE(dns_list_matches(bl, found({"127.0.0.4"}), refused));
    EXPECT_TRUE(dns_list_matches(bl, found({"127.0.0.2", "127.0.0.11"}), refused));
    EXPECT_FALSE(dns_list_matches(bl, found({"127.0.0.2"}), refused));
    EXPECT_FALSE(dns_list_matches(bl, found({"127.0.0.12"}), refused));
}

class DnsEvaluation : public ::testing::Test {
  protected:
    Decision run(Stage stage, const Facts& facts) {
        ledger.begin_event();
        Decision d = evaluate(*policy, stage, facts, ledger, {});
        ledger.end_event(!d.refused());
        return d;
    }
    std::shared_ptr<const Policy> policy = must_load(kIssueExample);
    MemoryCounterStore store;
    LimitLedger ledger{store, StoreErrorMode::Tempfail};
};

TEST_F(DnsEvaluation, ListedClientGetsTheTxtInItsReply) {
    Facts f;
    f.set_client(parse_ip("127.0.0.2"), "", 25);
    f.dns["2.0.0.127.zen.example.org"] =
        found({"127.0.0.2"}, "https://example.org/lookup?ip=127.0.0.2\r\n%s");
    Decision d = run(Stage::Connect, f);
    EXPECT_EQ(d.rule_id, "dnsbl");
    ASSERT_TRUE(d.reply);
    // Sanitised like all template text: no CR/LF reaches the reply.
    EXPECT_EQ(d.reply->line(),
              "554 5.7.1 Service unavailable; client [127.0.0.2] blocked: "
              "https://example.org/lookup?ip=127.0.0.2  %s");
}

TEST_F(DnsEvaluation, ReturnsListMatchesOnlyItsCodes) {
    Facts f;
    f.set_client(parse_ip("127.0.0.10"), "", 25);
    f.dns["10.0.0.127.zen.example.org"] = found({"127.255.255.254"});
    Decision d = run(Stage::Connect, f);
    EXPECT_EQ(d.verdict, Verdict::Continue);
    ASSERT_EQ(d.dns_errors.size(), 1u);
    EXPECT_NE(d.dns_errors[0].find("zen.example.org"), std::string::npos);
    f.dns["10.0.0.127.zen.example.org"] = found({"127.0.0.10"});
    EXPECT_EQ(run(Stage::Connect, f).rule_id, "dnsbl");
}

TEST_F(DnsEvaluation, FailureFailsOpenWithAWarningNamingTheZone) {
    Facts f;
    f.set_client(parse_ip("192.0.2.9"), "", 25);
    f.dns["9.2.0.192.zen.example.org"] = failed("timeout");
    Decision d = run(Stage::Connect, f);
    EXPECT_EQ(d.verdict, Verdict::Continue);
    ASSERT_FALSE(d.dns_warnings.empty());
    EXPECT_EQ(d.dns_warnings[0],
              "dns list zen (zen.example.org): lookup of 9.2.0.192.zen.example.org failed: "
              "timeout; not listed");
}

TEST_F(DnsEvaluation, OnErrorTempfailAnswersTheStageDefault) {
    Facts f;
    f.set_client(parse_ip("192.0.2.9"), "", 25);
    f.set_helo("mx.example.net");
    f.dns["9.2.0.192.bl.example.net"] = failed("SERVFAIL");
    Decision d = run(Stage::Helo, f);
    EXPECT_EQ(d.verdict, Verdict::Tempfail);
    ASSERT_TRUE(d.reply);
    EXPECT_EQ(d.reply->code, 421);
    EXPECT_NE(d.error.find("bl.example.net"), std::string::npos);

    auto p = must_load(
        "list strict = rhsbl \"dbl.example.org\" on-error tempfail\n"
        "rule \"r\" at mail when sender.domain in strict reject\n");
    f.set_sender("<a@spam.example>", "", 0, false);
    ledger.begin_event();
    d = evaluate(*p, Stage::Mail, f, ledger, {});  // no answer at all: a failure
    ledger.end_event(false);
    ASSERT_TRUE(d.reply);
    EXPECT_EQ(d.reply->line(), "451 4.4.3 DNS list lookup failed, try again later");
}

// Review finding: a failed on-error tempfail list tempfailed a rule whose other condition
// was false anyway; now only a rule the lookup could have decided tempfails.
TEST_F(DnsEvaluation, OnErrorTempfailOnlyWhereTheLookupCouldDecide) {
    auto p = must_load(
        "list strict = dnsbl \"bl.example.net\" on-error tempfail\n"
        "rule \"r\" at mail when client.ip in strict and sender.domain == \"x.example\" "
        "reject\n"
        "rule \"n\" at mail when not client.ip in strict reject 550 5.7.1 \"not listed\"\n");
    Facts f = testing::mx_facts("192.0.2.9", "<a@other.example>", 0);
    f.dns["9.2.0.192.bl.example.net"] = failed("timeout");
    ledger.begin_event();
    Decision d = evaluate(*p, Stage::Mail, f, ledger, {});
    ledger.end_event(false);
    // "r" cannot hold (the sender is not x.example); "not in" fails open: it holds.
    EXPECT_EQ(d.rule_id, "n");
    f.set_sender("<a@x.example>", "", 0, false);
    ledger.begin_event();
    d = evaluate(*p, Stage::Mail, f, ledger, {});
    ledger.end_event(false);
    EXPECT_EQ(d.rule_id, "r");
    ASSERT_TRUE(d.reply);
    EXPECT_EQ(d.reply->line(), "451 4.4.3 DNS list lookup failed, try again later");
}

// Merge finding: the unknown stage allows only 421 as a tempfail, so a DNS failure there
// must not answer 451; the policy service's vrfy and etrn get their own codes.
TEST_F(DnsEvaluation, OnErrorTempfailUsesEachStagesOwnCode) {
    auto p = must_load(
        "list strict = dnsbl \"bl.example.net\" on-error tempfail\n"
        "rule \"u\" at unknown when client.ip in strict reject 502 5.5.2 \"no\"\n"
        "rule \"v\" at vrfy when client.ip in strict reject 550 5.7.1 \"no\"\n"
        "rule \"e\" at etrn when client.ip in strict reject 501 5.7.1 \"no\"\n");
    Facts f = testing::mx_facts("192.0.2.9", "<a@x.example>", 0);
    f.dns["9.2.0.192.bl.example.net"] = failed("timeout");
    for (auto [stage, line] :
         {std::pair{Stage::Unknown, "421 4.4.3"}, std::pair{Stage::Vrfy, "450 4.4.3"},
          std::pair{Stage::Etrn, "458 4.4.3"}}) {
        ledger.begin_event();
        Decision d = evaluate(*p, stage, f, ledger, {});
        ledger.end_event(false);
        ASSERT_TRUE(d.reply) << stage_name(stage);
        EXPECT_EQ(d.reply->line(), std::string(line) + " DNS list lookup failed, try again later");
    }
}

TEST_F(DnsEvaluation, RhsblReadsTheSenderDomain) {
    Facts f = testing::mx_facts("192.0.2.1", "<Bob@Spam.Example>", 0);
    f.dns["spam.example.dbl.example.org"] = found({"127.0.1.2"});
    Decision d = run(Stage::Mail, f);
    ASSERT_TRUE(d.reply);
    EXPECT_EQ(d.reply->line(), "550 5.7.1 Sender domain Spam.Example listed");
}

TEST(DnsQueries, EarlyQueriesOnlyForKnownFacts) {
    auto p = must_load(kIssueExample);
    Facts f;
    f.set_client(parse_ip("192.0.2.9"), "", 25);
    std::array<bool, kStageCount> all{};
    all.fill(true);
    std::vector<std::string> names = dns_queries(p->dns_uses(), all, f);
    EXPECT_EQ(names,
              (std::vector<std::string>{"9.2.0.192.zen.example.org", "9.2.0.192.bl.example.net"}));
    f.set_sender("<a@x.example>", "", 0, false);
    names = dns_queries(p->dns_uses(), all, f);
    EXPECT_EQ(names.back(), "x.example.dbl.example.org");
    f.set_sender("<a@[192.0.2.1]>", "", 0, false);
    EXPECT_EQ(dns_queries(p->dns_uses(), all, f).size(), 2u);  // a literal is never sent
}

// Review finding: vrfy comes after rcpt in the stage order, so its recipient.domain was
// read from the accepted recipients (none outside a transaction) and never looked up:
// the rule failed open, or always tempfailed with on-error tempfail.
TEST(DnsQueries, VrfyLooksUpItsOwnRecipient) {
    auto p = must_load(
        "list dbl = rhsbl \"dbl.example.org\"\n"
        "rule \"v\" at vrfy when recipient.domain in dbl reject 550 5.7.1 \"listed\"\n");
    Facts f;
    f.set_client(parse_ip("192.0.2.9"), "", 25);
    f.recipient = Address::from_smtp("<a@spam.example>");
    std::array<bool, kStageCount> vrfy{};
    vrfy[stage_index(Stage::Vrfy)] = true;
    EXPECT_EQ(dns_queries(p->dns_uses(), vrfy, f),
              (std::vector<std::string>{"spam.example.dbl.example.org"}));
}

TEST(ClientLookup, PostfixDerivation) {
    Facts f;
    f.set_client(parse_ip("192.0.2.1"), "mx.example.net", 25);
    f.set_client_lookup("MX.example.net.", "");
    EXPECT_EQ(f.client_resolve, "ok");
    EXPECT_EQ(f.client_ptr, "MX.example.net.");
    EXPECT_EQ(f.client_ptr_lower, "mx.example.net");
    f.set_client(parse_ip("192.0.2.1"), "unknown", 25);
    f.set_client_lookup("mx.example.net", "");
    EXPECT_EQ(f.client_resolve, "forged");
    f.set_client_lookup("unknown", "");
    EXPECT_EQ(f.client_resolve, "fail");
    f.set_client_lookup("", "TEMP");  // Sendmail says it
    EXPECT_EQ(f.client_resolve, "temp");
    EXPECT_EQ(f.client_ptr, "unknown");
}

TEST(ClientLookup, FieldsInRules) {
    auto p = must_load(
        "list dbl = rhsbl \"dbl.example.org\"\n"
        "rule \"forged\" at connect when client.resolve == \"forged\" reject 554 \"{client.ptr}\"\n"
        "rule \"ptr\" at connect when client.ptr in dbl reject\n");
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->uses_field(FieldId::ClientPtr));
    EXPECT_TRUE(p->uses_field(FieldId::ClientResolve));
    MemoryCounterStore store;
    Conversation conv(p, store);
    Decision d = conv.connect(parse_ip("192.0.2.1"), "unknown", 25, {"Fake.example.net", ""});
    ASSERT_TRUE(d.reply);
    EXPECT_EQ(d.reply->line(), "554 5.7.1 Fake.example.net");
}

}  // namespace
}  // namespace pm
