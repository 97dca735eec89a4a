// SPDX-License-Identifier: BSD-2-Clause
// Hostile facts through the real daemon (issue 10): a header repeated 100,000 times
// (item 5), control bytes in every value that reaches the log (item 6), and a reload whose
// rules need a macro an open connection never asked the MTA for (item 8). The daemon is
// started as in protocol_test.cpp (protocol_fixture.h); each test has a daemon of its own.
#include <gtest/gtest.h>
#include <libmilter/mfapi.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "milter_client.h"
#include "protocol_fixture.h"

namespace pm::protocol {
namespace {

using mc::Outcome;

constexpr std::uint32_t kAllActions = 0x1FF;
constexpr std::uint32_t kAllSteps = kAnsweredSteps;  // protocol_fixture.h

// A test with a daemon of its own (it must stop cleanly) that it can reload.
class OwnDaemonTest : public OwnDaemon {
  protected:
    // Writes new rules and reloads with SIGUSR1 (the reload signal libmilter leaves alone),
    // waiting for the daemon to log that it reloaded.
    void reload(const std::string& rules) {
        std::size_t mark = daemon_->log_size();
        write_file(daemon_->dir() + "/rules.conf", rules);
        ASSERT_EQ(::kill(daemon_->pid(), SIGUSR1), 0);
        ASSERT_TRUE(daemon_->wait_for_log("info: reloaded: ", mark, scaled(10s)))
            << daemon_->diagnostics();
    }
};

mc::Client session(const Daemon& d) {
    mc::Client c = d.connect();
    c.negotiate(kAllActions, kAllSteps);
    EXPECT_TRUE(Is(c.connect_info("mx.example.net", SMFIA_INET, 4242, "203.0.113.10",
                                  {{"{client_name}", "mx.example.net"}}),
                   Outcome::Continue));
    return c;
}

// =========================================================================================
// Item 8: a reload cannot give an open connection rules that need a macro it never asked
// the MTA for: {auth_authen} for auth.user, {tls_version} for tls.
// =========================================================================================

class ReloadMacros : public OwnDaemonTest {};

const char* kNoMacros = R"(
rule "blocked" at mail
    when sender.domain == "blocked.example"
    reject 550 5.7.1 "Sender blocked"
)";
const char* kNoMacrosNewText = R"(
rule "blocked" at mail
    when sender.domain == "blocked.example"
    reject 550 5.7.1 "Sender blocked, reloaded"
)";
const char* kNeedsTls = R"(
rule "tls-only" at mail
    when not tls
    reject 550 5.7.1 "TLS required"
)";
const char* kNeedsAuth = R"(
rule "auth-only" at mail
    when auth.user == ""
    reject 550 5.7.1 "Authentication required"
)";

TEST_F(ReloadMacros, AnOpenConnectionKeepsItsRulesWhenTheReloadedOnesNeedNewMacros) {
    ASSERT_NO_FATAL_FAILURE(start("reload-macros", kNoMacros));
    mc::Client old = session(*daemon_);
    // The MTA is told to send only the queue id at MAIL: an MTA then sends no
    // {auth_authen} and no {tls_version}, even for an authenticated client over TLS.
    ASSERT_EQ(old.negotiated().macros.at(SMFIM_ENVFROM), "i");
    EXPECT_TRUE(IsReply(old.mail({"<a@blocked.example>"}), 550, "5.7.1", "Sender blocked"));
    old.abort();

    // Rules that need nothing new apply to the open connection from its next MAIL.
    ASSERT_NO_FATAL_FAILURE(reload(kNoMacrosNewText));
    EXPECT_TRUE(
        IsReply(old.mail({"<a@blocked.example>"}), 550, "5.7.1", "Sender blocked, reloaded"));
    old.abort();

    // A first tls condition: the open connection would see every client as without TLS.
    std::size_t mark = daemon_->log_size();
    ASSERT_NO_FATAL_FAILURE(reload(kNeedsTls));
    // Accept: nothing after MAIL can decide (issue 13).
    EXPECT_TRUE(Is(old.mail({"<alice@example.net>"}), Outcome::Accept));
    old.abort();
    EXPECT_TRUE(IsReply(old.mail({"<a@blocked.example>"}), 550, "5.7.1",
                        "Sender blocked, reloaded"));  // its rules, whole
    old.abort();
    EXPECT_TRUE(daemon_->wait_for_log("an open connection keeps its rules", mark));

    // A first auth.user condition: it would see every client as unauthenticated.
    ASSERT_NO_FATAL_FAILURE(reload(kNeedsAuth));
    // Accept: nothing after MAIL can decide (issue 13).
    EXPECT_TRUE(Is(old.mail({"<alice@example.net>"}), Outcome::Accept));
    old.abort();

    // A new connection asks for the macro and runs the new rules.
    mc::Client fresh = session(*daemon_);
    EXPECT_EQ(fresh.negotiated().macros.at(SMFIM_ENVFROM), "i {auth_authen}");
    EXPECT_TRUE(
        IsReply(fresh.mail({"<alice@example.net>"}), 550, "5.7.1", "Authentication required"));
    fresh.abort();
    EXPECT_TRUE(
        Is(fresh.mail({"<alice@example.net>"}, {{"{auth_authen}", "alice"}}), Outcome::Accept));
    fresh.quit();
    old.quit();
}

// An MTA that cannot be told which macros to send (no SMFIF_SETSYMLIST) sends those of its
// own configuration whatever the rules: a reload needing a macro is adopted as before.
TEST_F(ReloadMacros, WithoutMacroListsTheMtasOwnMacrosApplyToReloadedRules) {
    ASSERT_NO_FATAL_FAILURE(start("reload-no-symlist", kNoMacros));
    mc::Client old = daemon_->connect();
    old.negotiate(kAllActions & ~static_cast<std::uint32_t>(SMFIF_SETSYMLIST), kAllSteps);
    EXPECT_TRUE(old.negotiated().macros.empty());
    EXPECT_TRUE(Is(old.connect_info("mx.example.net", SMFIA_INET, 4242, "203.0.113.10"),
                   Outcome::Continue));
    ASSERT_NO_FATAL_FAILURE(reload(kNeedsAuth));
    EXPECT_TRUE(
        IsReply(old.mail({"<alice@example.net>"}), 550, "5.7.1", "Authentication required"));
    old.abort();
    EXPECT_TRUE(
        Is(old.mail({"<alice@example.net>"}, {{"{auth_authen}", "alice"}}), Outcome::Accept));
    old.quit();
}

// =========================================================================================
// Item 5: a header the policy reads, repeated by the sender, is kept once.
// =========================================================================================

class HeaderFlood : public OwnDaemonTest {};

// The daemon's resident set, in KiB (0 if unknown).
long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return 0;
}

// Sends `count` headers `name: value N` in batches (as an MTA streams them), each answered
// with continue.
void send_headers(mc::Client& c, const std::string& name, std::size_t count) {
    constexpr std::size_t kBatch = 1000;
    for (std::size_t sent = 0; sent < count;) {
        std::string batch;
        std::size_t n = std::min(kBatch, count - sent);
        for (std::size_t i = 0; i < n; ++i) {
            std::string payload = name + '\0' + "copy " + std::to_string(sent + i) +
                                  " of a subject line that a sender repeats" + '\0';
            std::uint32_t len = static_cast<std::uint32_t>(payload.size() + 1);
            for (int shift = 24; shift >= 0; shift -= 8)
                batch += static_cast<char>((len >> shift) & 0xFF);
            batch += SMFIC_HEADER;
            batch += payload;
        }
        c.send_raw(batch);
        for (std::size_t i = 0; i < n; ++i) {
            auto [cmd, body] = c.read_packet();
            ASSERT_EQ(cmd, SMFIR_CONTINUE) << "header " << sent + i;
        }
        sent += n;
    }
}

// 100,000 Subject lines (PM_HEADER_FLOOD=N for another count): the first one decides, and
// the daemon's memory does not grow with the copies (it grew by about 70 bytes per copy
// before: 54 MB for 800,000). The measured growth and end-of-message time are printed.
TEST_F(HeaderFlood, RepeatedSubjectIsKeptOnceAndCostsNoMemory) {
    ASSERT_NO_FATAL_FAILURE(start("header-flood", R"(
rule "spam" at message
    when header["Subject"] matches /lottery/
    reject 550 5.7.1 "Spam: {header[Subject]}"
)"));
#if defined(PM_PROTOCOL_ASAN) || defined(PM_PROTOCOL_TSAN)
    std::size_t count = 20000;  // the first-copy checks only: RSS says nothing here
#else
    std::size_t count = 100000;
#endif
    if (const char* env = std::getenv("PM_HEADER_FLOOD")) count = std::strtoul(env, nullptr, 10);

    for (int round = 0; round < 2; ++round) {
        mc::Client c = session(*daemon_);
        ASSERT_TRUE(Is(c.mail({"<alice@example.net>"}), Outcome::Continue));
        ASSERT_TRUE(Is(c.rcpt({"<bob@example.com>"}), Outcome::Continue));
        ASSERT_TRUE(Is(c.data(), Outcome::Continue));
        // Round 0: the first Subject is spam and decides; round 1: the first is clean and
        // later copies (never read) carry the word.
        ASSERT_TRUE(
            Is(c.header("Subject", round == 0 ? "lottery win" : "hello"), Outcome::Continue));
        long before = rss_kib(daemon_->pid());
        ASSERT_NO_FATAL_FAILURE(send_headers(c, "Subject", count));
        if (round == 1) {
            ASSERT_TRUE(Is(c.header("subject", "lottery"), Outcome::Continue));
        }
        long after = rss_kib(daemon_->pid());
        ASSERT_TRUE(Is(c.end_of_header(), Outcome::Continue));
        auto t0 = Clock::now();
        mc::Response eom = c.end_of_message();
        auto eom_ms =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count() /
            1000.0;
        if (round == 0)
            EXPECT_TRUE(IsReply(eom, 550, "5.7.1", "Spam: lottery win"));
        else
            EXPECT_TRUE(IsEom(eom, Outcome::Continue, {}));
        std::cerr << "[ measure  ] " << count << " Subject lines: daemon RSS " << before << " -> "
                  << after << " KiB (+" << (after - before) << " KiB), end of message " << eom_ms
                  << " ms\n";
#if !defined(PM_PROTOCOL_ASAN) && !defined(PM_PROTOCOL_TSAN)
        // Under the sanitizers freed packet buffers stay in quarantine: RSS says nothing.
        EXPECT_LT(after - before, 2048) << "the daemon's memory grew with the copies of one header";
#endif
        c.quit();
    }
}

// =========================================================================================
// Item 6: no log line carries a control byte of the sender's.
// =========================================================================================

class LogInjection : public OwnDaemonTest {};

TEST_F(LogInjection, FoldedHeadersAndAddressesCannotForgeALogLine) {
    ASSERT_NO_FATAL_FAILURE(start("log-injection", R"(
rule "tag" at message add-header "X-Subject" "{header[Subject]}"
rule "hold" at message quarantine "held: {header[Subject]}"
)",
                                  {"--observe"}));
    mc::Client c = session(*daemon_);
    std::size_t mark = daemon_->log_size();
    ASSERT_TRUE(Is(c.mail({"<a\r\nforged-from@example.net>"}), Outcome::Continue));
    ASSERT_TRUE(Is(c.rcpt({"<b\nforged-to@example.com>"}), Outcome::Continue));
    ASSERT_TRUE(Is(c.data(), Outcome::Continue));
    ASSERT_TRUE(Is(c.header("Subject", "hi\r\nforged: line\" \\\x1b[2J\xff"), Outcome::Continue));
    ASSERT_TRUE(Is(c.end_of_header(), Outcome::Continue));
    EXPECT_TRUE(IsEom(c.end_of_message(), Outcome::Continue, {}));
    c.quit();
    ASSERT_TRUE(daemon_->wait_for_log("action=would-quarantine", mark));
    std::string log = daemon_->log_since(mark);
    EXPECT_NE(log.find("client=mx.example.net[203.0.113.10] stage=message rule=tag "
                       "action=would-add-header helo=- from=<a\\x0d\\x0aforged-from@example.net> "
                       "to=<b\\x0aforged-to@example.com> header=\"X-Subject: hi\\x0d\\x0aforged: "
                       "line\\\" \\\\\\x1b[2J\\xff\" nrcpt=1\n"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("rule=hold action=would-quarantine helo=- "
                       "from=<a\\x0d\\x0aforged-from@example.net> "
                       "to=<b\\x0aforged-to@example.com> reason=\"held: hi\\x0d\\x0aforged: "
                       "line\\\" \\\\\\x1b[2J\\xff\""),
              std::string::npos)
        << log;
    // Every line of the log is the daemon's own: none starts with what the sender wrote,
    // and none holds a control byte.
    std::size_t start = 0;
    while (start < log.size()) {
        std::size_t end = log.find('\n', start);
        if (end == std::string::npos) end = log.size();
        std::string line = log.substr(start, end - start);
        EXPECT_EQ(line.rfind("forged", 0), std::string::npos) << line;
        for (char ch : line) {
            auto b = static_cast<unsigned char>(ch);
            EXPECT_TRUE(b >= 0x20 && b < 0x7F) << "byte " << int(b) << " in: " << line;
            if (b < 0x20 || b >= 0x7F) break;
        }
        start = end + 1;
    }
}

}  // namespace
}  // namespace pm::protocol
