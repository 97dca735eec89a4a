// SPDX-License-Identifier: BSD-2-Clause
// The control socket's protocol (milter/control_protocol.h), the keys of `--ctl
// limit-show` (limit_key_of_values, the ledger's own key code) and the limit commands
// (milter/limit_control.h) against the memory store.
#include <gtest/gtest.h>

#include "milter/control_protocol.h"
#include "milter/limit_control.h"
#include "policy/evaluator.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;

TEST(ControlProtocol, RequestRoundTripsAnyByteButNul) {
    std::string why;
    std::string odd = "a\nb\r\x01\xff \"\\";
    auto bytes = encode_control_request({"limit-show", "r", odd, ""}, why);
    ASSERT_TRUE(bytes) << why;
    auto words = parse_control_request(*bytes, why);
    ASSERT_TRUE(words) << why;
    EXPECT_EQ(*words, (std::vector<std::string>{"limit-show", "r", odd, ""}));
    EXPECT_FALSE(encode_control_request({"x", std::string("a\0b", 3)}, why));
    EXPECT_FALSE(encode_control_request({}, why));
    EXPECT_FALSE(encode_control_request({"x", std::string(kMaxRequestBytes, 'a')}, why));
}

TEST(ControlProtocol, GarbageRequestsAreRefused) {
    std::string why;
    for (std::string bad :
         {std::string(), std::string("stats"), std::string("stats\0", 6), std::string("pmctl1"),
          std::string("pmctl1\0", 7), std::string("pmctl1\0\0", 8),
          std::string("pmctl1\0stats", 12), std::string("PMCTL1\0stats\0", 13),
          std::string("GET / HTTP/1.0\r\n\r\n")}) {
        EXPECT_FALSE(parse_control_request(bad, why)) << ::testing::PrintToString(bad);
        EXPECT_FALSE(why.empty());
    }
    std::string many = std::string(kControlMagic) + '\0';
    for (std::size_t i = 0; i <= kMaxArguments; ++i) many += std::string("x\0", 2);
    EXPECT_FALSE(parse_control_request(many, why));
    std::string huge = std::string(kControlMagic) + '\0' + std::string(kMaxRequestBytes, 'x');
    EXPECT_FALSE(parse_control_request(huge + '\0', why));
}

TEST(ControlProtocol, ReplyLinesArePrintableAndRoundTrip) {
    ControlReply r{true, {"count: 3", "key: \x1b[2J\nforged"}};
    std::string bytes = encode_control_reply(r);
    EXPECT_EQ(bytes, "ok\ncount: 3\nkey: \\x1b[2J\\x0aforged\n");
    auto back = parse_control_reply(bytes);
    ASSERT_TRUE(back);
    EXPECT_TRUE(back->ok);
    EXPECT_EQ(back->lines, (std::vector<std::string>{"count: 3", "key: \\x1b[2J\\x0aforged"}));
    auto failed = parse_control_reply("error\nno such limit\n");
    ASSERT_TRUE(failed);
    EXPECT_FALSE(failed->ok);
    EXPECT_FALSE(parse_control_reply(""));
    EXPECT_FALSE(parse_control_reply("ok\ncut sho"));  // the daemon died mid-reply
    EXPECT_FALSE(parse_control_reply("maybe\n"));
}

constexpr const char* kLimits = R"(
limit "per-sender" at mail
    key sender, client.ip/24, mail.size
    max 2 per 1h
    tempfail
limit "per-helo" at helo
    key helo, client.name
    max 1 per 1m
    tempfail
limit "per-domain" at rcpt
    key recipient.domain, sender.local, auth.user
    max 5 recipients per 1d
    tempfail
rule "plain" at mail when sender == "x@y" reject
)";

// The key an administrator names is the key a session counts under: built by the same
// code from the same normalised values.
TEST(ControlKeys, SameKeyAsTheSessions) {
    auto p = must_load(kLimits);
    const auto& st = p->statements();
    Facts f;
    f.set_client(parse_ip("192.0.2.77"), "Mail.Example.NET.", 25);
    f.set_helo("HELO.example.");
    f.set_sender("<Alice@Example.COM.>", "Bob", 1234, false);
    f.recipient = Address::from_smtp("<Carol@Dest.Example>");
    std::string why;
    auto key = limit_key_of_values(
        st[0], std::vector<std::string>{"alice@EXAMPLE.com", "192.0.2.1", "01234"}, why);
    ASSERT_TRUE(key) << why;
    EXPECT_EQ(*key, limit_key(st[0], f));
    key = limit_key_of_values(st[1], std::vector<std::string>{"helo.EXAMPLE", "mail.example.net."},
                              why);
    ASSERT_TRUE(key) << why;
    EXPECT_EQ(*key, limit_key(st[1], f));
    key =
        limit_key_of_values(st[2], std::vector<std::string>{"dest.example.", "ALICE", "bob"}, why);
    ASSERT_TRUE(key) << why;
    EXPECT_EQ(*key, limit_key(st[2], f));
    // A client without an IP address counts under an empty value.
    Facts no_ip;
    no_ip.set_sender("<a@b>", "", 0, false);
    key = limit_key_of_values(st[0], std::vector<std::string>{"a@b", "", "0"}, why);
    ASSERT_TRUE(key) << why;
    EXPECT_EQ(*key, limit_key(st[0], no_ip));
}

TEST(ControlKeys, WrongValuesSayWhy) {
    auto p = must_load(kLimits);
    const auto& st = p->statements();
    std::string why;
    EXPECT_FALSE(limit_key_of_values(st[0], std::vector<std::string>{"a@b"}, why));
    EXPECT_EQ(why,
              "limit per-sender has 3 key fields (sender, client.ip/24, mail.size), given 1 value");
    EXPECT_FALSE(limit_key_of_values(st[0], std::vector<std::string>{"a@b", "1.2.3", "0"}, why));
    EXPECT_NE(why.find("client.ip: not an IP address"), std::string::npos) << why;
    EXPECT_FALSE(limit_key_of_values(st[0], std::vector<std::string>{"a@b", "", "-1"}, why));
    EXPECT_NE(why.find("mail.size: not a number"), std::string::npos) << why;
    EXPECT_FALSE(limit_key_of_values(
        st[0], std::vector<std::string>{"a@b", "", "18446744073709551616"}, why));
    EXPECT_FALSE(limit_key_of_values(st[2], std::vector<std::string>{"a@b", "x", "y"}, why));
    // Review finding: the key separator inside a value would alias another tuple's key.
    EXPECT_FALSE(limit_key_of_values(st[0], std::vector<std::string>{"a\x1f@b", "", "0"}, why));
    EXPECT_NE(why.find("key separator"), std::string::npos) << why;
}

// A limit hits in a session, limit-show shows its count, limit-reset clears it, and the
// next session passes. A count leaves a 1 h window (ten 360 s slots) when its slot has
// left: 11 slots after the slot started, so up to a slot later than an hour.
TEST(ControlLimits, ShowAndResetWhatASessionCounted) {
    auto p = must_load(R"(
limit "per-sender" at mail
    key sender
    max 1 per 1h
    reject
)");
    std::uint64_t now_ms = 7'200'000;  // the start of a 360 s slot
    MemoryCounterStore store([&] { return now_ms; });
    auto send = [&] {
        Conversation c(p, store);
        c.connect(parse_ip("192.0.2.1"), "unknown", 1);
        Decision at_mail = c.mail("<Alice@Example.com>", "", 0, false);
        if (at_mail.verdict != Verdict::Continue) return testing::summary(at_mail);
        c.rcpt("<b@y>");
        c.data();
        return testing::summary(c.message());
    };
    EXPECT_EQ(send(), "continue");
    EXPECT_EQ(send().rfind("reject", 0), 0u);
    now_ms += 60'000;
    ControlReply show = limit_command(*p, store, {"limit-show", "per-sender", "alice@example.com"});
    ASSERT_TRUE(show.ok);
    EXPECT_EQ(show.lines,
              (std::vector<std::string>{"limit: per-sender", "key: sender=\"alice@example.com\"",
                                        "count: 1", "max: 1 messages", "window: 3600s",
                                        "next-drop-in: 3900s", "resets-in: 3900s"}));
    ControlReply reset =
        limit_command(*p, store, {"limit-reset", "per-sender", "ALICE@example.com"});
    ASSERT_TRUE(reset.ok);
    EXPECT_EQ(reset.lines.back(), "reset: the count was 1, it is 0 now");
    EXPECT_EQ(testing::count_of(store, "per-sender", "alice@example.com", 3600), 0u);
    EXPECT_EQ(send(), "continue");
}

TEST(ControlLimits, UnknownRulesAndWrongArgumentsFail) {
    auto p = must_load(kLimits);
    MemoryCounterStore store;
    ControlReply r = limit_command(*p, store, {"limit-show", "nope\x1b", "x"});
    EXPECT_FALSE(r.ok);
    ASSERT_EQ(r.lines.size(), 1u);
    EXPECT_EQ(r.lines[0],
              "no limit \"nope\\x1b\" in the running rules; limits: per-sender (key sender, "
              "client.ip/24, mail.size), per-helo (key helo, client.name), per-domain (key "
              "recipient.domain, sender.local, auth.user)");
    r = limit_command(*p, store, {"limit-show", "plain", "x"});
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.lines[0].rfind("plain is a rule, not a limit", 0), 0u) << r.lines[0];
    r = limit_command(*p, store, {"limit-reset", "per-helo", "a"});
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.lines[0], "limit per-helo has 2 key fields (helo, client.name), given 1 value");
}

TEST(ControlLimits, AStoreErrorIsAFailedReply) {
    class Down : public MemoryCounterStore {
      public:
        CounterState inspect(const std::string&, std::uint64_t) override {
            throw StoreError("redis://127.0.0.1:1/0: connection refused");
        }
    };
    auto p = must_load(kLimits);
    Down store;
    ControlReply r = limit_command(*p, store, {"limit-show", "per-helo", "a", "b"});
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(
        r.lines,
        (std::vector<std::string>{"counter store: redis://127.0.0.1:1/0: connection refused"}));
}

}  // namespace
}  // namespace pm
