// SPDX-License-Identifier: BSD-2-Clause
// Protocol economy (issue 13): the MTA waits for a reply only where the policy can decide.
// Steps no rule decides are negotiated without reply (SMFIP_NR_*) and answered with
// SMFIS_NOREPLY; filtering ends early with SMFIS_ACCEPT where nothing later can decide,
// never while a later recipient could still be refused. A waited step is counted here as
// the MTA counts it: a command whose answer it reads. Deterministic, not a timing.
#include <gtest/gtest.h>
#include <libmilter/mfapi.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "milter_client.h"
#include "protocol_fixture.h"

namespace pm::protocol {
namespace {

using mc::Outcome;
using namespace std::chrono_literals;

constexpr std::uint32_t kAllActions = 0x1FF;
constexpr std::uint32_t kAllSteps = 0x1FFFFF;
constexpr std::uint32_t kNoReplyBits = SMFIP_NR_HDR | SMFIP_NR_CONN | SMFIP_NR_HELO |
                                       SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA |
                                       SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY;

// packaging/examples/rules.conf with its list files inline (the daemon's directory has
// no copies of them): the same stages, fields, limit and actions.
const char* const kExamplePolicy = R"(
list local_nets   = [ 127.0.0.0/8, ::1 ]
list blocked_nets = [ 192.0.2.0/24 ]
list no_such_user = [ "nobody@example.com" ]
rule "blocked-network" at connect
    when client.ip in blocked_nets
    reject 554 5.7.1 "Access denied for {client.ip}"
rule "forged-helo" at helo
    when not client.ip in local_nets
         and helo matches /^(localhost|127\.0\.0\.1|\[127\.0\.0\.1\])$/i
    reject 550 5.7.1 "Bogus HELO {helo}"
rule "declared-size" at mail
    when mail.size > 50MB
    reject 552 5.3.4 "Message size exceeds fixed limit"
rule "unknown-user" at rcpt
    when recipient in no_such_user
    reject 550 5.1.1 "<{recipient}>: Recipient address rejected: User unknown"
rule "too-many-recipients" at rcpt
    when rcpt.count > 100
    tempfail 452 4.5.3 "Too many recipients"
rule "size" at message
    when message.size > 50MB
    reject 552 5.3.4 "Message size exceeds fixed limit"
rule "lottery-subject" at message
    when header["Subject"] matches /lottery winner/i
    reject 554 5.7.1 "Message content rejected"
    observe
rule "stamp" at message
    add-header "X-Policy-Milter" "checked"
limit "sender-hourly" at mail
    key sender
    when sender != "" and not client.ip in local_nets
    max 500 per 1h
    tempfail 452 4.7.1 "Too many messages from {sender}, try again later"
    observe
)";

const char* const kSingleRcptRule = R"(
rule "unknown-user" at rcpt
    when recipient in [ "nobody@example.com" ]
    reject 550 5.1.1 "<{recipient}>: Recipient address rejected: User unknown"
)";

// A message rule: end of message can decide, so no step accepts early.
const char* const kMessageRule = R"(
rule "huge" at message
    when message.size > 50MB
    reject 552 5.3.4 "Message too big"
)";

const std::string kUnknownUser = "<nobody@example.com>: Recipient address rejected: User unknown";

// Counts the commands whose answer the MTA waits for.
struct Counter {
    int waited = 0;
    mc::Response operator()(mc::Response r) {
        if (r.outcome != Outcome::NotSent && r.outcome != Outcome::NoReply) ++waited;
        return r;
    }
};

const std::vector<std::pair<std::string, std::string>> kSixHeaders = {
    {"From", "Sender <alice@example.net>"},
    {"To", "Bob <bob@example.com>"},
    {"Subject", "hello"},
    {"Date", "Sat, 28 Nov 2026 12:00:00 +0000"},
    {"Message-ID", "<economy@example.net>"},
    {"MIME-Version", "1.0"},
};

mc::Response connect_info(mc::Client& c, const std::string& ip = "203.0.113.10") {
    return c.connect_info("mx.example.net", SMFIA_INET, 4242, ip,
                          {{"{client_name}", "mx.example.net"}});
}

// One whole session as an MTA runs it: each step sent unless switched off, the message
// ended where the milter accepted or refused it. Returns the last answer.
mc::Response one_message(mc::Client& c, Counter& count, std::vector<std::string> rcpts) {
    mc::Response r = count(connect_info(c));
    if (r.outcome != Outcome::Continue && r.outcome != Outcome::NoReply) return r;
    count(c.helo("client.example"));
    r = count(c.mail({"<alice@example.net>", "SIZE=1000"}));
    if (r.outcome == Outcome::Accept) return r;
    for (const auto& rcpt : rcpts) r = count(c.rcpt({rcpt}));
    r = count(c.data());
    if (r.outcome == Outcome::Accept) return r;
    for (const auto& [name, value] : kSixHeaders) count(c.header(name, value));
    count(c.end_of_header());
    count(c.body("Hello.\r\n"));
    return count(c.end_of_message());
}

class Economy : public OwnDaemon {
  protected:
    void reload(const std::string& rules) {
        std::size_t mark = daemon_->log_size();
        write_file(daemon_->dir() + "/rules.conf", rules);
        ASSERT_EQ(::kill(daemon_->pid(), SIGUSR1), 0);
        ASSERT_TRUE(daemon_->wait_for_log("info: reloaded: ", mark, scaled(10s)))
            << daemon_->diagnostics();
    }
};

// Issue 13's first target: the example policy, one message with six headers, at most 6
// waited steps (it was 14): connect, HELO, MAIL, RCPT and end of message.
TEST_F(Economy, ExamplePolicyWaitsAtMostSixStepsForASixHeaderMessage) {
    ASSERT_NO_FATAL_FAILURE(start("example", kExamplePolicy));
    mc::Client c = daemon_->connect();
    mc::Negotiated n = c.negotiate(kAllActions, kAllSteps);
    EXPECT_EQ(n.protocol & kNoReplyBits,
              SMFIP_NR_DATA | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY | SMFIP_NR_UNKN);
    Counter count;
    mc::Response eom = one_message(c, count, {"<bob@example.com>"});
    EXPECT_TRUE(IsEom(eom, Outcome::Continue, {"h X-Policy-Milter: checked"}));
    EXPECT_LE(count.waited, 6);
    EXPECT_EQ(count.waited, 5);
}

// The second: a policy of a single rcpt rule, at most 3 (it was 6): RCPT, and DATA,
// answered with accept (nothing after it can decide).
TEST_F(Economy, SingleRcptRulePolicyWaitsAtMostThreeSteps) {
    ASSERT_NO_FATAL_FAILURE(start("rcpt-rule", kSingleRcptRule));
    mc::Client c = daemon_->connect();
    c.negotiate(kAllActions, kAllSteps);
    Counter count;
    mc::Response last = one_message(c, count, {"<bob@example.com>"});
    EXPECT_TRUE(Is(last, Outcome::Accept));
    EXPECT_LE(count.waited, 3);
    EXPECT_EQ(count.waited, 2);
}

// The early accept at DATA never comes before the last recipient: the second recipient of
// the same message is still refused (milter-regex's multi-recipient gap).
TEST_F(Economy, AcceptAtDataComesAfterEveryRecipientWasChecked) {
    ASSERT_NO_FATAL_FAILURE(start("rcpt-rule", kSingleRcptRule));
    mc::Client c = daemon_->connect();
    c.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(c), Outcome::NoReply));
    EXPECT_TRUE(Is(c.mail({"<alice@example.net>"}), Outcome::NoReply));
    EXPECT_TRUE(Is(c.rcpt({"<bob@example.com>"}), Outcome::Continue));
    EXPECT_TRUE(IsReply(c.rcpt({"<nobody@example.com>"}), 550, "5.1.1", kUnknownUser));
    EXPECT_TRUE(Is(c.rcpt({"<carol@example.com>"}), Outcome::Continue));
    EXPECT_TRUE(Is(c.data(), Outcome::Accept));
    // The next message on the connection is checked again.
    EXPECT_TRUE(Is(c.mail({"<alice@example.net>"}), Outcome::NoReply));
    EXPECT_TRUE(IsReply(c.rcpt({"<nobody@example.com>"}), 550, "5.1.1", kUnknownUser));
}

// A message rule, a transaction limit (committed at end of message), add-header or
// quarantine: no early accept, end of message decides.
TEST_F(Economy, NoEarlyAcceptWhileEndOfMessageCanDecide) {
    for (const char* later : {
             "rule \"m\" at message\n    when message.size > 1MB\n    reject\n",
             "limit \"l\" at rcpt\n    key recipient\n    max 100 per 1h\n    tempfail\n",
             "rule \"s\" at message\n    add-header \"X-S\" \"yes\"\n",
             "rule \"q\" at message\n    when header[\"X-Hold\"] == \"yes\"\n"
             "    quarantine \"held\"\n",
         }) {
        SCOPED_TRACE(later);
        ASSERT_NO_FATAL_FAILURE(start("no-early", std::string(kSingleRcptRule) + later));
        mc::Client c = daemon_->connect();
        c.negotiate(kAllActions, kAllSteps);
        EXPECT_TRUE(Is(connect_info(c), Outcome::NoReply));
        EXPECT_TRUE(Is(c.mail({"<alice@example.net>"}), Outcome::NoReply));
        EXPECT_TRUE(Is(c.rcpt({"<bob@example.com>"}), Outcome::Continue));
        EXPECT_TRUE(Is(c.data(), Outcome::NoReply));
        c.header("X-Hold", "no");
        EXPECT_TRUE(Is(c.end_of_header(), Outcome::NoReply));
        EXPECT_NE(c.end_of_message().outcome, Outcome::Accept);
        c.quit();
        TearDown();
        daemon_.reset();
    }
}

// The limit of the example: a second message over it is refused at end of message, where
// the transaction's counts are committed; the steps before it got no reply or continue.
TEST_F(Economy, LimitCommitStillRefusesAtEndOfMessage) {
    ASSERT_NO_FATAL_FAILURE(start("limit", R"(
limit "per-rcpt" at rcpt
    key recipient
    max 1 per 1h
    tempfail 452 4.7.1 "Too many for {recipient}"
)"));
    mc::Client c = daemon_->connect();
    c.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(c), Outcome::NoReply));
    for (int i = 0; i < 2; ++i) {
        EXPECT_TRUE(Is(c.mail({"<alice@example.net>"}), Outcome::NoReply));
        mc::Response r = c.rcpt({"<bob@example.com>"});
        if (i == 0) {
            EXPECT_TRUE(Is(r, Outcome::Continue));
            EXPECT_TRUE(Is(c.data(), Outcome::NoReply));
            EXPECT_TRUE(Is(c.end_of_header(), Outcome::NoReply));
            EXPECT_TRUE(IsEom(c.end_of_message(), Outcome::Continue, {}));
        } else {
            EXPECT_TRUE(IsReply(r, 452, "4.7.1", "Too many for bob@example.com"));
            c.abort();
        }
    }
}

// A mail rule alone: accept at MAIL ends the message; the next MAIL is checked again.
TEST_F(Economy, MailOnlyPolicyAcceptsAtMailAndChecksTheNextMessage) {
    ASSERT_NO_FATAL_FAILURE(start("mail-rule", R"(
rule "bad-sender" at mail
    when sender == "spam@example.org"
    reject 550 5.7.1 "No"
)"));
    mc::Client c = daemon_->connect();
    c.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(c), Outcome::NoReply));
    EXPECT_TRUE(Is(c.mail({"<alice@example.net>"}), Outcome::Accept));
    EXPECT_TRUE(IsReply(c.mail({"<spam@example.org>"}), 550, "5.7.1", "No"));
}

// A connect rule alone: accept at connect ends filtering of the connection; a blocked
// client is still refused. A helo rule: no connection-level accept (EHLO repeats after
// STARTTLS), and every EHLO is checked.
TEST_F(Economy, ConnectOnlyPolicyAcceptsTheConnectionHeloPolicyDoesNot) {
    ASSERT_NO_FATAL_FAILURE(start("connect-rule", R"(
rule "blocked" at connect
    when client.ip in [ 192.0.2.0/24 ]
    reject
rule "bad-helo" at helo
    when helo == "bad.example"
    reject 501 5.5.2 "Bad HELO"
)"));
    mc::Client c = daemon_->connect();
    c.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(c), Outcome::Continue));
    EXPECT_TRUE(Is(c.helo("good.example"), Outcome::Continue));
    EXPECT_TRUE(IsReply(c.helo("bad.example"), 501, "5.5.2", "Bad HELO"));
    c.quit();
    TearDown();
    daemon_.reset();

    ASSERT_NO_FATAL_FAILURE(start("connect-only", R"(
rule "blocked" at connect
    when client.ip in [ 192.0.2.0/24 ]
    reject
)"));
    mc::Client a = daemon_->connect();
    a.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(a), Outcome::Accept));
    mc::Client b = daemon_->connect();
    b.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(IsReply(connect_info(b, "192.0.2.9"), 554, "5.7.1", "Rejected by policy"));
}

// An MTA without the no-reply flags gets a reply at every step, as before.
TEST_F(Economy, WithoutNoReplyOfferedEveryStepIsAnswered) {
    ASSERT_NO_FATAL_FAILURE(start("example", kExamplePolicy));
    mc::Client c = daemon_->connect();
    mc::Negotiated n = c.negotiate(kAllActions, kAllSteps & ~kNoReplyBits);
    EXPECT_EQ(n.protocol & kNoReplyBits, 0u);
    Counter count;
    mc::Response eom = one_message(c, count, {"<bob@example.com>"});
    EXPECT_TRUE(IsEom(eom, Outcome::Continue, {"h X-Policy-Milter: checked"}));
    EXPECT_EQ(count.waited, 14);
}

// The reload guarantee extended to replies: a reloaded policy that would decide at a step
// an open connection negotiated without reply is not applied to that connection (its
// refusal could not be sent); a new connection gets it.
TEST_F(Economy, ReloadNeedingAReplyAtANoReplyStepKeepsTheOpenConnectionsRules) {
    ASSERT_NO_FATAL_FAILURE(start("reload", std::string(kSingleRcptRule) + R"(
rule "needs-mail" at rcpt
    when sender == "spam@example.org"
    reject 550 5.7.1 "No"
)"));
    mc::Client open = daemon_->connect();
    open.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(open), Outcome::NoReply));
    ASSERT_NO_FATAL_FAILURE(reload(std::string(kSingleRcptRule) + R"(
rule "bad-sender" at mail
    when sender == "spam@example.org"
    reject 550 5.7.1 "Sender refused"
)"));
    // The open connection: MAIL has no reply; the old rules still apply at RCPT.
    EXPECT_TRUE(Is(open.mail({"<spam@example.org>"}), Outcome::NoReply));
    EXPECT_TRUE(IsReply(open.rcpt({"<bob@example.com>"}), 550, "5.7.1", "No"));
    open.abort();
    mc::Client fresh = daemon_->connect();
    fresh.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(fresh), Outcome::NoReply));
    EXPECT_TRUE(IsReply(fresh.mail({"<spam@example.org>"}), 550, "5.7.1", "Sender refused"));
}

// Hostile: a session after SMFIC_QUIT_NC has no negotiation of its own; its no-reply
// steps must still get no reply (a stray reply would answer the MTA's next command).
// Each message ends at end of message (a message rule keeps early accept off: libmilter
// takes no SMFIC_QUIT_NC after an accept), and each session is its own client.
TEST_F(Economy, SessionAfterQuitNcKeepsTheNoReplySteps) {
    const std::string rules = std::string(kSingleRcptRule) + kMessageRule;
    ASSERT_NO_FATAL_FAILURE(start("rcpt-rule", rules));
    mc::Client c = daemon_->connect();
    c.negotiate(kAllActions, kAllSteps);
    for (int session = 0; session < 3; ++session) {
        SCOPED_TRACE(session);
        EXPECT_TRUE(
            Is(connect_info(c, "203.0.113." + std::to_string(10 + session)), Outcome::NoReply));
        EXPECT_TRUE(Is(c.mail({"<alice@example.net>"}), Outcome::NoReply));
        EXPECT_TRUE(IsReply(c.rcpt({"<nobody@example.com>"}), 550, "5.1.1", kUnknownUser));
        EXPECT_TRUE(Is(c.rcpt({"<bob@example.com>"}), Outcome::Continue));
        EXPECT_TRUE(Is(c.data(), Outcome::NoReply));
        EXPECT_TRUE(Is(c.end_of_header(), Outcome::NoReply));
        EXPECT_TRUE(Is(c.end_of_message(), Outcome::Continue));
        c.quit_new_connection();
    }
    EXPECT_TRUE(daemon_->wait_for_log("client=mx.example.net[203.0.113.12] stage=rcpt", 0));
}

// Review finding: after SMFIC_QUIT_NC, a reload the connection cannot run (a rule at a
// step negotiated without reply) left the next session without any rules, and the
// daemon crashed on its connect. The session keeps the connection's rules instead.
TEST_F(Economy, QuitNcAfterAReloadItCannotRunKeepsTheOldRules) {
    const std::string rules = std::string(kSingleRcptRule) + kMessageRule;
    ASSERT_NO_FATAL_FAILURE(start("rcpt-rule", rules));
    mc::Client c = daemon_->connect();
    c.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(c), Outcome::NoReply));
    EXPECT_TRUE(Is(c.mail({"<alice@example.net>"}), Outcome::NoReply));
    EXPECT_TRUE(Is(c.rcpt({"<bob@example.com>"}), Outcome::Continue));
    EXPECT_TRUE(Is(c.data(), Outcome::NoReply));
    EXPECT_TRUE(Is(c.end_of_header(), Outcome::NoReply));
    EXPECT_TRUE(Is(c.end_of_message(), Outcome::Continue));
    c.quit_new_connection();
    ASSERT_NO_FATAL_FAILURE(reload(rules + R"(
rule "bad-sender" at mail
    when sender == "spam@example.org"
    reject 550 5.7.1 "Sender refused"
)"));
    EXPECT_TRUE(Is(connect_info(c), Outcome::NoReply));
    EXPECT_TRUE(Is(c.mail({"<spam@example.org>"}), Outcome::NoReply));
    EXPECT_TRUE(IsReply(c.rcpt({"<nobody@example.com>"}), 550, "5.1.1", kUnknownUser));
    c.quit();
    mc::Client fresh = daemon_->connect();
    fresh.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(connect_info(fresh), Outcome::NoReply));
    EXPECT_TRUE(IsReply(fresh.mail({"<spam@example.org>"}), 550, "5.7.1", "Sender refused"));
}

// Hostile: a new MTA connection that sends MAIL before any negotiation, in a libmilter
// context whose memory earlier connections with no-reply steps used, gets the local-error
// reply as before, not the silence of a remembered no-reply MAIL (the negotiation is
// remembered by context and socket: the socket tells the new connection apart).
TEST_F(Economy, ANewConnectionInAReusedContextGetsNoStaleNoReplyStep) {
    ASSERT_NO_FATAL_FAILURE(start("rcpt-rule", kSingleRcptRule));
    for (int i = 0; i < 20; ++i) {
        mc::Client c = daemon_->connect();
        c.negotiate(kAllActions, kAllSteps);
        EXPECT_TRUE(Is(connect_info(c), Outcome::NoReply));
        EXPECT_TRUE(Is(c.mail({"<alice@example.net>"}), Outcome::NoReply));
        c.quit();
    }
    for (int i = 0; i < 5; ++i) {
        mc::Client c = daemon_->connect();
        std::string sender("<alice@example.net>\0", 20);
        std::string packet(4, '\0');
        std::uint32_t length = static_cast<std::uint32_t>(sender.size() + 1);
        for (int b = 0; b < 4; ++b) packet[b] = static_cast<char>(length >> (24 - 8 * b));
        c.send_raw(packet + 'M' + sender);
        auto [cmd, payload] = c.read_packet();
        EXPECT_EQ(cmd, SMFIR_REPLYCODE);
        EXPECT_EQ(payload,
                  std::string("451 4.3.0 Local error in processing, try again later\0", 53));
    }
}

}  // namespace
}  // namespace pm::protocol
