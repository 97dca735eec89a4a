// SPDX-License-Identifier: BSD-2-Clause
// The session state machine (policy/conversation.h): which policy is in force when one is
// handed in, and where a session starts afresh.

#include "policy/conversation.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;
using testing::summary;

const char* kBlockSender =
    "rule \"old\" at rcpt when sender.domain == \"x\" reject 550 5.7.1 \"old\"\n";
const char* kBlockRecipient =
    "rule \"new\" at rcpt when recipient.local == \"b\" reject 550 5.1.1 \"new\"\n";

// What the adapter does at a reload: the new policy is handed in at the next MAIL, and a
// transaction in flight finishes on the one it started with.
TEST(Conversation, AHandedInPolicyAppliesFromTheNextTransaction) {
    MemoryCounterStore store;
    Conversation c(must_load(kBlockSender), store);
    testing::start_mail(c, "<a@x>");
    c.use_policy(must_load(kBlockRecipient));
    EXPECT_EQ(summary(c.rcpt("<b@y>")), "reject 550 5.7.1 old");  // in flight: its own policy
    EXPECT_EQ(c.policy().statements()[0].id, "old");
    c.message();
    c.mail("<a@x>", "", 0, false);
    EXPECT_EQ(summary(c.rcpt("<b@y>")), "reject 550 5.1.1 new");
    EXPECT_EQ(summary(c.rcpt("<c@y>")), "continue");
    // RSET (abort) ends the transaction too.
    c.use_policy(must_load(kBlockSender));
    c.abort();
    c.rcpt("<c@y>");  // a transaction the MTA started without MAIL still gets it
    EXPECT_EQ(c.policy().statements()[0].id, "old");
    c.use_policy(nullptr);  // ignored: the policy in force stays
    c.mail("<a@x>", "", 0, false);
    EXPECT_EQ(c.policy().statements()[0].id, "old");
}

TEST(Conversation, AHandedInPolicyAppliesAtConnect) {
    MemoryCounterStore store;
    Conversation c(nullptr, store);  // the adapter may have none before connect
    c.use_policy(must_load("rule \"r\" at connect reject\n"));
    EXPECT_EQ(c.connect(parse_ip("192.0.2.1"), "unknown", 1).verdict, Verdict::Reject);
}

// A connection decided by accept runs no more rules; a new connect on the same object is a
// new session (the milter makes one object per connection; --test and the fuzzers reuse).
TEST(Conversation, ConnectStartsASessionAfresh) {
    MemoryCounterStore store;
    auto p = must_load(
        "rule \"lan\" at connect when client.ip in [10.0.0.0/8] accept\n"
        "rule \"r\" at mail reject\n");
    Conversation c(p, store);
    EXPECT_EQ(c.connect(parse_ip("10.0.0.1"), "unknown", 1).verdict, Verdict::Accept);
    EXPECT_EQ(c.mail("<a@x>", "", 0, false).verdict, Verdict::Continue);
    EXPECT_EQ(c.connect(parse_ip("192.0.2.1"), "unknown", 1).verdict, Verdict::Continue);
    EXPECT_EQ(c.mail("<a@x>", "", 0, false).verdict, Verdict::Reject);
}

// What a transaction staged never leaks into the next session's commit: before, a connect
// in the middle of a transaction committed that transaction's counts with its own.
TEST(Conversation, ConnectForgetsWhatAnUnfinishedTransactionStaged) {
    MemoryCounterStore store;
    auto p = must_load(
        "limit \"c\" at connect key client.ip max 9 per 1h tempfail\n"
        "limit \"r\" at rcpt key sender max 9 per 1h tempfail\n");
    Conversation c(p, store);
    testing::start_mail(c, "<a@x>");
    EXPECT_EQ(c.rcpt("<b@y>").verdict, Verdict::Continue);
    c.connect(parse_ip("192.0.2.1"), "unknown", 1);
    EXPECT_EQ(testing::count_of(store, "r", "a@x", 3600), 0u);
    EXPECT_EQ(testing::count_of(store, "c", "192.0.2.1", 3600), 2u);
}

// Accept and discard settle the transaction's message: no more rules for it, and the next
// MAIL runs them again.
TEST(Conversation, ADecidedMessageRunsNoMoreRulesUntilTheNextMail) {
    MemoryCounterStore store;
    auto p = must_load(
        "rule \"drop\" at rcpt when recipient.local == \"spam\" discard\n"
        "rule \"r\" at rcpt when recipient.local == \"b\" reject\n");
    Conversation c(p, store);
    testing::start_mail(c, "<a@x>");
    EXPECT_EQ(c.rcpt("<spam@y>").verdict, Verdict::Discard);
    EXPECT_EQ(c.rcpt("<b@y>").verdict, Verdict::Continue);
    EXPECT_EQ(c.data().verdict, Verdict::Continue);
    c.message();
    c.mail("<a@x>", "", 0, false);
    EXPECT_EQ(c.rcpt("<b@y>").verdict, Verdict::Reject);
}

// Review finding: body bytes that are the first event of a message (an MTA that
// negotiated MAIL, RCPT and headers away) started no transaction, so message() started
// one and reset the size they had counted.
TEST(Conversation, BodyBytesThatOpenAMessageAreCountedInItsSize) {
    MemoryCounterStore store;
    auto p = must_load("rule \"big\" at message when message.size > 50 reject\n");
    Conversation c(p, store);
    c.connect(parse_ip("192.0.2.1"), "unknown", 1);
    c.body_bytes(100);
    EXPECT_EQ(c.message().verdict, Verdict::Reject);
    c.body_bytes(100);  // and the next message's too
    EXPECT_EQ(c.message().verdict, Verdict::Reject);
}

}  // namespace
}  // namespace pm
