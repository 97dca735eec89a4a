// SPDX-License-Identifier: BSD-2-Clause
// Postfix policy delegation without sockets (policy/delegation.h): requests read from
// bytes, protocol_state to stage, decisions to action= values, sessions driven through the
// steps a request implies, the session table's bounds; and the vrfy and etrn stages.

#include "policy/delegation.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "store/greylist_store.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::diagnostics_of;
using testing::must_load;

PolicyRequest request(std::initializer_list<std::pair<std::string, std::string>> attrs) {
    PolicyRequest r;
    r.attributes.assign(attrs.begin(), attrs.end());
    return r;
}

// The attributes Postfix sends at RCPT (SMTPD_POLICY_README), some of them.
PolicyRequest rcpt(const std::string& recipient, const std::string& instance = "i1",
                   const std::string& sender = "s@example.org") {
    return request({{"request", "smtpd_access_policy"},
                    {"protocol_state", "RCPT"},
                    {"client_address", "192.0.2.1"},
                    {"client_port", "40000"},
                    {"client_name", "mx.example.net"},
                    {"helo_name", "mx.example.net"},
                    {"sender", sender},
                    {"recipient", recipient},
                    {"instance", instance}});
}

// A DATA request of a session the service was not asked about before (no RCPT).
PolicyRequest rcpt_request_for_data(const std::string& recipient, const std::string& instance) {
    PolicyRequest r = rcpt(recipient, instance);
    r.attributes[1].second = "DATA";
    return r;
}

std::string answer(DelegationSession& s, Stage stage, const PolicyRequest& r, bool at_end = false) {
    return action_of(s.handle(stage, r, at_end).decision);
}

TEST(PolicyRequestReader, SplitsRequestsAndKeepsTheRest) {
    RequestReader reader;
    std::string bytes = "request=smtpd_access_policy\nrecipient=a@b\n\nprotocol_state=RCPT\n";
    std::string_view data = bytes;
    PolicyRequest r;
    std::string why;
    ASSERT_EQ(reader.feed(data, r, why), RequestReader::Result::Request);
    EXPECT_EQ(r.get("recipient"), "a@b");
    EXPECT_EQ(r.get("absent"), "");
    EXPECT_EQ(reader.feed(data, r, why), RequestReader::Result::NeedMore);
    std::string more = "sender=x=y\n\n";  // '=' in a value is the value's
    data = more;
    ASSERT_EQ(reader.feed(data, r, why), RequestReader::Result::Request);
    EXPECT_EQ(r.get("protocol_state"), "RCPT");
    EXPECT_EQ(r.get("sender"), "x=y");
}

TEST(PolicyRequestReader, ByteByByte) {
    RequestReader reader;
    std::string bytes = "a=1\nb=%s\n\n";
    PolicyRequest r;
    std::string why;
    int requests = 0;
    for (char c : bytes) {
        std::string_view one(&c, 1);
        if (reader.feed(one, r, why) == RequestReader::Result::Request) ++requests;
    }
    EXPECT_EQ(requests, 1);
    EXPECT_EQ(r.get("b"), "%s");
}

RequestReader::Result feed_all(const std::string& bytes, std::string& why) {
    RequestReader reader;
    std::string_view data = bytes;
    PolicyRequest r;
    RequestReader::Result result = RequestReader::Result::NeedMore;
    while (!data.empty() && result == RequestReader::Result::NeedMore)
        result = reader.feed(data, r, why);
    return result;
}

TEST(PolicyRequestReader, GarbageIsAnError) {
    std::string why;
    EXPECT_EQ(feed_all("GET / HTTP/1.0\n", why), RequestReader::Result::Error);
    EXPECT_EQ(why, "a line without '='");
    EXPECT_EQ(feed_all("=x\n", why), RequestReader::Result::Error);
    EXPECT_EQ(feed_all("a b=x\n", why), RequestReader::Result::Error);
    EXPECT_EQ(feed_all(std::string("a=x\0y\n", 6), why), RequestReader::Result::Error);
    EXPECT_EQ(why, "a NUL byte");
}

TEST(PolicyRequestReader, BoundsLineRequestAndAttributes) {
    std::string why;
    EXPECT_EQ(feed_all("a=" + std::string(kMaxPolicyLine - 2, 'x') + "\n\n", why),
              RequestReader::Result::Request);
    EXPECT_EQ(feed_all("a=" + std::string(kMaxPolicyLine - 1, 'x'), why),
              RequestReader::Result::Error);
    EXPECT_EQ(why, "a line longer than 4096 bytes");
    std::string big;
    for (int i = 0; i < 20; ++i)
        big += "a" + std::to_string(i) + "=" + std::string(4000, 'x') + "\n";
    EXPECT_EQ(feed_all(big, why), RequestReader::Result::Error);
    EXPECT_EQ(why, "a request larger than 65536 bytes");
    std::string many;
    for (int i = 0; i <= 128; ++i) many += "a" + std::to_string(i) + "=1\n";
    EXPECT_EQ(feed_all(many, why), RequestReader::Result::Error);
    EXPECT_EQ(why, "more than 128 attributes");
    // The same name again replaces the value: no growth.
    std::string repeated;
    for (int i = 0; i < 1000; ++i) repeated += "a=1\n";
    EXPECT_EQ(feed_all(repeated + "\n", why), RequestReader::Result::Request);
}

TEST(PolicyDelegation, ProtocolStates) {
    EXPECT_EQ(stage_of_state("CONNECT"), Stage::Connect);
    EXPECT_EQ(stage_of_state("EHLO"), Stage::Helo);
    EXPECT_EQ(stage_of_state("HELO"), Stage::Helo);
    EXPECT_EQ(stage_of_state("MAIL"), Stage::Mail);
    EXPECT_EQ(stage_of_state("RCPT"), Stage::Rcpt);
    EXPECT_EQ(stage_of_state("DATA"), Stage::Data);
    // Review finding: Postfix runs smtpd_data_restrictions at a CHUNKING client's first
    // BDAT with protocol_state=BDAT (smtpd.c: where = the command's name). It was answered
    // DUNNO: data rules, a data greylist and data limits skipped every such client.
    EXPECT_EQ(stage_of_state("BDAT"), Stage::Data);
    EXPECT_EQ(stage_of_state("END-OF-MESSAGE"), Stage::Message);
    EXPECT_EQ(stage_of_state("VRFY"), Stage::Vrfy);
    EXPECT_EQ(stage_of_state("ETRN"), Stage::Etrn);
    EXPECT_EQ(stage_of_state("rcpt"), std::nullopt);
    EXPECT_EQ(stage_of_state(""), std::nullopt);
}

TEST(PolicyDelegation, ActionMapping) {
    Decision d;
    EXPECT_EQ(action_of(d), "DUNNO");
    d.verdict = Verdict::Pass;
    EXPECT_EQ(action_of(d), "DUNNO");
    d.verdict = Verdict::Accept;
    EXPECT_EQ(action_of(d), "OK");
    d.verdict = Verdict::Discard;
    EXPECT_EQ(action_of(d), "DISCARD");
    d.verdict = Verdict::Quarantine;
    EXPECT_EQ(action_of(d), "HOLD");
    d.quarantine_reason = "why";
    EXPECT_EQ(action_of(d), "HOLD why");
    d.verdict = Verdict::Reject;
    d.reply = Reply{550, {5, 1, 1}, "no such user"};
    EXPECT_EQ(action_of(d), "550 5.1.1 no such user");
    d.verdict = Verdict::Tempfail;
    d.reply = Reply{450, {4, 7, 1}, "later"};
    EXPECT_EQ(action_of(d), "450 4.7.1 later");
    Decision h;
    h.headers_to_add = {{"X-Policy", "checked"}, {"X-Two", "2"}};
    EXPECT_EQ(action_of(h), "PREPEND X-Policy: checked");
}

// Merge finding: the policy service ran without the daemon's greylist store, so a greylist
// rule met "no store" there. Now both front ends share one: postgrey's place.
TEST(PolicyDelegation, GreylistsThroughTheSharedStore) {
    std::atomic<std::uint64_t> now{1'000'000'000'000};
    MemoryGreylistStore greylist(1000, [&] { return now.load(); });
    MemoryCounterStore store;
    auto policy = must_load("rule \"grey\" at rcpt greylist delay 5m\n");
    DelegationSession first(policy, store, {}, &greylist);
    EXPECT_EQ(answer(first, Stage::Rcpt, rcpt("b@example.com", "i1")),
              "451 4.7.1 Greylisted, try again later");
    now += 6 * 60 * 1000;
    DelegationSession retry(policy, store, {}, &greylist);  // Postfix's next connection
    EXPECT_EQ(answer(retry, Stage::Rcpt, rcpt("b@example.com", "i2")), "DUNNO");
    EXPECT_EQ(answer(retry, Stage::Rcpt, rcpt("c@example.com", "i2")),
              "451 4.7.1 Greylisted, try again later");
}

// Review finding: with the service only in smtpd_data_restrictions (or _end_of_data_), it
// saw no RCPT, so a data greylist had no triplet to ask about and passed every message,
// and recipient conditions at data held for nobody. Postfix names the recipient at DATA
// when it accepted only one: that one is the transaction's now.
TEST(PolicyDelegation, GreylistAtDataOnlyUsesPostfixsRecipient) {
    std::atomic<std::uint64_t> now{1'000'000'000'000};
    MemoryGreylistStore greylist(1000, [&] { return now.load(); });
    MemoryCounterStore store;
    auto policy = must_load(
        "rule \"grey\" at data greylist delay 5m\n"
        "rule \"vip\" at message when recipient.domain == \"vip.example\" quarantine \"v\"\n");
    auto data = [](const std::string& rcpt, const std::string& instance, const std::string& n) {
        PolicyRequest d = rcpt_request_for_data(rcpt, instance);
        d.attributes.emplace_back("recipient_count", n);
        return d;
    };
    DelegationSession s(policy, store, {}, &greylist);
    EXPECT_EQ(answer(s, Stage::Data, data("b@example.com", "i1", "1")),
              "451 4.7.1 Greylisted, try again later");
    now += 6 * 60 * 1000;
    DelegationSession t(policy, store, {}, &greylist);
    EXPECT_EQ(answer(t, Stage::Data, data("b@example.com", "i2", "1")), "DUNNO");
    PolicyRequest eom = data("a@vip.example", "i3", "1");
    eom.attributes[1].second = "END-OF-MESSAGE";
    EXPECT_EQ(answer(t, Stage::Message, eom), "HOLD v");
}

TEST(PolicyDelegation, PostfixsPrefixIsNotDoubled) {
    EXPECT_EQ(without_postfix_prefix("<a@b>: Recipient address rejected: no such user"),
              "no such user");
    EXPECT_EQ(without_postfix_prefix("<>: Sender address rejected: x"), "x");
    EXPECT_EQ(without_postfix_prefix("<h[1.2.3.4]>: Client host rejected: x"), "x");
    EXPECT_EQ(without_postfix_prefix("<a@b>: Recipient address refused: x"),
              "<a@b>: Recipient address refused: x");
    EXPECT_EQ(without_postfix_prefix("no such user"), "no such user");
    EXPECT_EQ(without_postfix_prefix("<a@b> no"), "<a@b> no");
}

const char* kRules =
    "rule \"bad-rcpt\" at rcpt when recipient == \"bad@example.com\" reject 550 5.1.1 "
    "\"<{recipient}>: Recipient address rejected: no such user\"\n"
    "rule \"later\" at rcpt when recipient == \"later@example.com\" tempfail 450 4.2.0 \"later\"\n"
    "rule \"ok\" at rcpt when recipient == \"vip@example.com\" accept\n"
    "rule \"bin\" at rcpt when recipient == \"bin@example.com\" discard\n"
    "rule \"hold\" at message when message.size > 1000 quarantine \"big\"\n"
    "rule \"tag\" at message add-header \"X-Policy\" \"seen {sender}\"\n"
    "rule \"no-vrfy\" at vrfy when recipient.local == \"root\" reject 550 5.7.1 \"no\"\n"
    "rule \"vrfy-later\" at vrfy when recipient.local == \"busy\" tempfail\n"
    "rule \"etrn\" at etrn when domain != \"example.com\" tempfail 459 4.7.1 \"not {domain}\"\n"
    "rule \"bad-client\" at connect when client.ip == 198.51.100.7 reject 554 5.7.1 \"go\"\n";

TEST(PolicyDelegation, ExactActionsForEachVerdict) {
    MemoryCounterStore store;
    DelegationSession s(must_load(kRules), store, {});
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("bad@example.com")),
              "550 5.1.1 no such user");  // Postfix adds the prefix once
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("later@example.com")), "450 4.2.0 later");
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("fine@example.com")), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("bin@example.com")), "DISCARD");
    MemoryCounterStore store2;
    DelegationSession t(must_load(kRules), store2, {});
    EXPECT_EQ(answer(t, Stage::Rcpt, rcpt("vip@example.com")), "OK");
    MemoryCounterStore store3;
    DelegationSession m(must_load(kRules), store3, {});
    PolicyRequest eom = rcpt("fine@example.com");
    eom.attributes[1].second = "END-OF-MESSAGE";
    eom.attributes.emplace_back("size", "2000");
    EXPECT_EQ(answer(m, Stage::Rcpt, rcpt("fine@example.com")), "DUNNO");
    EXPECT_EQ(answer(m, Stage::Message, eom), "HOLD big");
    eom.attributes.back().second = "10";
    eom.attributes[8].second = "i2";
    EXPECT_EQ(answer(m, Stage::Message, eom), "PREPEND X-Policy: seen s@example.org");
}

// Asked at DATA only, the service takes rcpt.count from Postfix's recipient_count.
TEST(PolicyDelegation, RecipientCountFromPostfix) {
    MemoryCounterStore store;
    DelegationSession s(
        must_load("rule \"many\" at data when rcpt.count > 2 reject 554 5.7.1 \"{rcpt.count}\"\n"),
        store, {});
    PolicyRequest d = rcpt("");
    d.attributes[1].second = "DATA";
    d.attributes.emplace_back("recipient_count", "3");
    EXPECT_EQ(answer(s, Stage::Data, d), "554 5.7.1 3");
    d.attributes.back().second = "2";
    d.attributes[8].second = "i2";
    EXPECT_EQ(answer(s, Stage::Data, d), "DUNNO");
}

TEST(PolicyDelegation, CatchesUpWithConnect) {
    MemoryCounterStore store;
    DelegationSession s(must_load(kRules), store, {});
    PolicyRequest r = rcpt("fine@example.com");
    r.attributes[2].second = "198.51.100.7";
    EXPECT_EQ(answer(s, Stage::Rcpt, r), "554 5.7.1 go");
}

// An earlier stage's accept ends the rules for the session: DUNNO, not Postfix's OK,
// which would also skip the rest of Postfix's restriction list.
TEST(PolicyDelegation, AnEarlierAcceptIsNoOk) {
    MemoryCounterStore store;
    DelegationSession s(must_load("rule \"trusted\" at connect when client.ip == 192.0.2.1 accept\n"
                                  "rule \"r\" at rcpt reject\n"),
                        store, {});
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("a@x")), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("b@x")), "DUNNO");
    MemoryCounterStore store2;
    DelegationSession t(must_load("rule \"trusted\" at connect accept\n"), store2, {});
    PolicyRequest c = rcpt("a@x");
    c.attributes[1].second = "CONNECT";
    EXPECT_EQ(answer(t, Stage::Connect, c), "OK");  // its own stage: OK
}

TEST(PolicyDelegation, VrfyAndEtrn) {
    MemoryCounterStore store;
    DelegationSession s(must_load(kRules), store, {});
    PolicyRequest v = request({{"protocol_state", "VRFY"},
                               {"client_address", "192.0.2.1"},
                               {"recipient", "root@example.com"}});
    EXPECT_EQ(answer(s, Stage::Vrfy, v), "550 5.7.1 no");
    v.attributes[2].second = "busy";
    EXPECT_EQ(answer(s, Stage::Vrfy, v),
              "450 4.7.1 Temporarily rejected by policy, try again later");
    v.attributes[2].second = "someone";
    EXPECT_EQ(answer(s, Stage::Vrfy, v), "DUNNO");
    PolicyRequest e = request({{"protocol_state", "ETRN"},
                               {"client_address", "192.0.2.1"},
                               {"etrn_domain", "@Other.Example"}});
    EXPECT_EQ(answer(s, Stage::Etrn, e), "459 4.7.1 not Other.Example");
    e.attributes[2].second = "example.com";
    EXPECT_EQ(answer(s, Stage::Etrn, e), "DUNNO");
}

TEST(PolicyDelegation, VrfyAndEtrnCodesCheckedAtLoad) {
    EXPECT_EQ(diagnostics_of("rule \"v\" at vrfy reject 554\n"),
              "t.rules:1:25: error: reply code 554 is not allowed for 'reject' at the vrfy stage; "
              "allowed: 550, 551, 553, 502, 504\n");
    EXPECT_EQ(diagnostics_of("rule \"v\" at vrfy tempfail 451\n"),
              "t.rules:1:27: error: reply code 451 is not allowed for 'tempfail' at the vrfy "
              "stage; allowed: 421, 450\n");
    EXPECT_EQ(diagnostics_of("rule \"e\" at etrn tempfail 421\n"),
              "t.rules:1:27: error: reply code 421 is not allowed for 'tempfail' at the etrn "
              "stage; allowed: 458, 459\n");
    EXPECT_EQ(diagnostics_of("rule \"e\" at etrn reject 550\n"),
              "t.rules:1:25: error: reply code 550 is not allowed for 'reject' at the etrn "
              "stage; allowed: 500, 501\n");
    for (int code : {550, 551, 553, 502, 504})
        EXPECT_EQ(diagnostics_of("rule \"v\" at vrfy reject " + std::to_string(code) + "\n"), "");
    for (int code : {421, 450})
        EXPECT_EQ(diagnostics_of("rule \"v\" at vrfy tempfail " + std::to_string(code) + "\n"), "");
    for (int code : {500, 501})
        EXPECT_EQ(diagnostics_of("rule \"e\" at etrn reject " + std::to_string(code) + "\n"), "");
    for (int code : {458, 459})
        EXPECT_EQ(diagnostics_of("rule \"e\" at etrn tempfail " + std::to_string(code) + "\n"), "");
}

TEST(PolicyDelegation, VrfyAndEtrnFields) {
    EXPECT_EQ(diagnostics_of("rule \"v\" at vrfy when recipient.domain == \"x\" and helo == "
                             "\"h\" and client.ip == 192.0.2.1 reject\n"),
              "");
    EXPECT_EQ(diagnostics_of("rule \"e\" at etrn when domain == \"x\" reject\n"), "");
    EXPECT_EQ(diagnostics_of("rule \"v\" at vrfy when sender == \"x\" reject\n"),
              "t.rules:1:23: error: field 'sender' is not available at the vrfy stage (it is "
              "known from mail on)\n");
    EXPECT_EQ(diagnostics_of("rule \"e\" at etrn when recipient == \"x\" reject\n"),
              "t.rules:1:23: error: field 'recipient' is not available at the etrn stage (it is "
              "known from rcpt on and at vrfy)\n");
    EXPECT_EQ(diagnostics_of("rule \"r\" at rcpt when domain == \"x\" reject\n"),
              "t.rules:1:23: error: field 'domain' is not available at the rcpt stage (it is "
              "known only at etrn)\n");
    EXPECT_EQ(diagnostics_of("rule \"m\" at message when domain == \"x\" reject\n"),
              "t.rules:1:26: error: field 'domain' is not available at the message stage (it "
              "is known only at etrn)\n");
    EXPECT_NE(diagnostics_of("rule \"v\" at vrfy discard\n"), "");
    EXPECT_NE(diagnostics_of("limit \"v\" at vrfy key client.ip max 2 recipients per 1h\n"), "");
    EXPECT_EQ(diagnostics_of("limit \"v\" at vrfy key recipient max 2 per 1h reject 550\n"), "");
}

// Without END-OF-MESSAGE requests each accepted request commits at once, and a message
// counts once however many recipients it has.
TEST(PolicyDelegation, LimitsCommitAtOnceWithoutEndOfMessage) {
    MemoryCounterStore store;
    auto policy =
        must_load("limit \"msgs\" at rcpt key sender max 2 per 1h reject 550 5.7.1 \"too many\"\n");
    DelegationSession s(policy, store, {});
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("a@x", "i1")), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("b@x", "i1")), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("c@x", "i1")), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("a@x", "i2")), "DUNNO");
    // Another SMTP session (another smtpd, connection) sees both counted.
    DelegationSession t(policy, store, {});
    EXPECT_EQ(answer(t, Stage::Rcpt, rcpt("a@x", "i3")), "550 5.7.1 too many");
}

// With END-OF-MESSAGE requests, counts wait for them; an abandoned transaction counts none.
TEST(PolicyDelegation, LimitsCommitAtEndOfMessage) {
    MemoryCounterStore store;
    auto policy =
        must_load("limit \"msgs\" at rcpt key sender max 1 per 1h reject 550 5.7.1 \"too many\"\n");
    DelegationSession s(policy, store, {});
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("a@x", "i1"), true), "DUNNO");
    DelegationSession t(policy, store, {});
    EXPECT_EQ(answer(t, Stage::Rcpt, rcpt("a@x", "i2"), true), "DUNNO");  // i1 not ended
    PolicyRequest eom = rcpt("", "i1");
    eom.attributes[1].second = "END-OF-MESSAGE";
    EXPECT_EQ(answer(s, Stage::Message, eom, true), "DUNNO");
    DelegationSession u(policy, store, {});
    EXPECT_EQ(answer(u, Stage::Rcpt, rcpt("a@x", "i3"), true), "550 5.7.1 too many");
}

// Review finding: a VRFY in the middle of a transaction (Postfix sends it through
// smtpd_recipient_restrictions) committed the transaction's staged counts and dropped
// them: the message then counted twice, and counted even when abandoned after the VRFY.
TEST(PolicyDelegation, VrfyInATransactionLeavesItsCountsAlone) {
    MemoryCounterStore store;
    auto policy = must_load(
        "limit \"msgs\" at rcpt key sender max 2 per 1h reject 550 5.7.1 \"too many\"\n"
        "limit \"vrfys\" at vrfy key client.ip max 5 per 1h reject 550 5.7.1 \"no\"\n");
    PolicyRequest v = request({{"protocol_state", "VRFY"},
                               {"client_address", "192.0.2.1"},
                               {"client_port", "40000"},
                               {"recipient", "root@example.com"}});
    PolicyRequest eom = rcpt("", "i1");
    eom.attributes[1].second = "END-OF-MESSAGE";
    DelegationSession s(policy, store, {});
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("a@x", "i1"), true), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Vrfy, v, true), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("b@x", "i1"), true), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Message, eom, true), "DUNNO");
    EXPECT_EQ(store.count("msgs\x1fs@example.org", 3600), 1u);
    EXPECT_EQ(store.count("vrfys\x1f"
                          "192.0.2.1",
                          3600),
              1u);
    // Abandoned after a VRFY (RSET, QUIT): nothing of it counts.
    DelegationSession t(policy, store, {});
    EXPECT_EQ(answer(t, Stage::Rcpt, rcpt("a@x", "i2"), true), "DUNNO");
    EXPECT_EQ(answer(t, Stage::Vrfy, v, true), "DUNNO");
    EXPECT_EQ(store.count("msgs\x1fs@example.org", 3600), 1u);
    // Without END-OF-MESSAGE requests a message still counts once.
    MemoryCounterStore store2;
    DelegationSession u(policy, store2, {});
    EXPECT_EQ(answer(u, Stage::Rcpt, rcpt("a@x", "i3")), "DUNNO");
    EXPECT_EQ(answer(u, Stage::Vrfy, v), "DUNNO");
    EXPECT_EQ(answer(u, Stage::Rcpt, rcpt("b@x", "i3")), "DUNNO");
    EXPECT_EQ(store2.count("msgs\x1fs@example.org", 3600), 1u);
}

// Review finding: Postfix sets `instance` only after MAIL passed its restrictions
// (smtpd.c, mail_cmd()), so a MAIL request (smtpd_delay_reject = no) has none. The first
// RCPT, with an instance, started the transaction again: the mail rules ran twice, and a
// mail limit counted the message twice without END-OF-MESSAGE requests.
TEST(PolicyDelegation, TheMailRequestHasNoInstanceYet) {
    MemoryCounterStore store;
    auto policy =
        must_load("limit \"m\" at mail key sender max 5 per 1h reject 550 5.7.1 \"too many\"\n");
    DelegationSession s(policy, store, {});
    PolicyRequest mail = rcpt("", "");
    mail.attributes[1].second = "MAIL";
    EXPECT_EQ(answer(s, Stage::Mail, mail), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("a@x", "i1")), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("b@x", "i1")), "DUNNO");
    EXPECT_EQ(store.count("m\x1fs@example.org", 3600), 1u);
    // The next transaction: MAIL without an instance again, then its own.
    EXPECT_EQ(answer(s, Stage::Mail, mail), "DUNNO");
    EXPECT_EQ(answer(s, Stage::Rcpt, rcpt("a@x", "i2")), "DUNNO");
    EXPECT_EQ(store.count("m\x1fs@example.org", 3600), 2u);
}

TEST(PolicyDelegation, SameClient) {
    MemoryCounterStore store;
    DelegationSession s(must_load(kRules), store, {});
    PolicyRequest r = rcpt("a@x");
    EXPECT_FALSE(s.same_client(r));
    answer(s, Stage::Rcpt, r);
    EXPECT_TRUE(s.same_client(r));
    r.attributes[3].second = "40001";
    EXPECT_FALSE(s.same_client(r));
}

TEST(PolicyDelegation, HostileValuesStayInTheirPlace) {
    MemoryCounterStore store;
    DelegationSession s(
        must_load("rule \"r\" at rcpt reject 550 5.7.1 \"no {recipient} %s {helo}\"\n"), store, {});
    PolicyRequest r = rcpt("a\r\nb%n@x");
    r.attributes[5].second = std::string(3000, 'h');
    std::string a = answer(s, Stage::Rcpt, r);
    EXPECT_EQ(a.find('\n'), std::string::npos);
    EXPECT_EQ(a.find('\r'), std::string::npos);
    EXPECT_LE(a.size(), kMaxReplyLine);
    EXPECT_EQ(a.substr(0, 26), "550 5.7.1 no a  b%n@x %s h");
}

// A transaction that never ends, with recipients without end: its session keeps at most
// kMaxTransactionRecipients of them, or 64 KiB.
TEST(PolicyDelegation, RecipientsOfOneTransactionAreBounded) {
    MemoryCounterStore store;
    DelegationSession s(must_load(kRules), store, {});
    std::string big(4000, 'x');
    for (int i = 0; i < 5000; ++i) {
        EXPECT_EQ(answer(s, Stage::Rcpt, rcpt(big + std::to_string(i) + "@x")), "DUNNO");
        ASSERT_LE(s.facts().accepted_recipients.size(), 17u);
    }
    for (int i = 0; i < 5000; ++i) {
        answer(s, Stage::Rcpt, rcpt(std::to_string(i) + "@x"));
        ASSERT_LE(s.facts().accepted_recipients.size(), kMaxTransactionRecipients);
    }
    EXPECT_EQ(s.facts().sender.raw(), "s@example.org");  // MAIL again, from the request
}

// Memory stays bounded: sessions beyond the capacity, or idle too long, are forgotten.
TEST(PolicySessionTable, BoundedAndExpiring) {
    MemoryCounterStore store;
    auto policy = must_load(kRules);
    SessionTable table(100, std::chrono::seconds(60));
    auto now = SessionTable::Clock::now();
    for (int i = 0; i < 10000; ++i)
        table.put("i" + std::to_string(i),
                  std::make_shared<DelegationSession>(policy, store, ConversationOptions{}), now);
    EXPECT_EQ(table.size(), 100u);
    EXPECT_TRUE(table.find("i9999", now));
    EXPECT_FALSE(table.find("i0", now));
    EXPECT_TRUE(table.find("i9900", now + std::chrono::seconds(30)));
    EXPECT_FALSE(table.find("i9901", now + std::chrono::seconds(61)));
    EXPECT_EQ(table.size(), 1u);  // i9900, used at +30 s
}

}  // namespace
}  // namespace pm
