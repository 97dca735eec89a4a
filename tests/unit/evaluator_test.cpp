// SPDX-License-Identifier: BSD-2-Clause
// The evaluator on its own (policy/evaluator.h): a compiled policy, facts built by hand,
// a ledger over a memory store, and nothing else. What a whole session does with it is
// in evaluation_test.cpp and limits_test.cpp.

#include "policy/evaluator.h"

#include <gtest/gtest.h>

#include "policy/template.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;
using testing::summary;

// Default options with one switch turned on.
EvaluationOptions with(bool EvaluationOptions::*option) {
    EvaluationOptions o;
    o.*option = true;
    return o;
}

Facts client_facts() {
    return testing::mx_facts("192.0.2.77", "<Alice@Example.NET>", 1000);
}

Facts message_facts() {
    Facts f = client_facts();
    f.accepted_recipients.push_back(Address::from_smtp("<bob@example.org>"));
    f.accepted_recipients.push_back(Address::from_smtp("<Carol@Example.COM>"));
    f.rcpt_count = 2;
    f.add_header("SUBJECT", "Hello World");
    return f;
}

class Evaluator : public ::testing::Test {
  protected:
    Decision run(const std::shared_ptr<const Policy>& p, Stage stage, const Facts& facts,
                 EvaluationOptions options = {}) {
        ledger.begin_event();
        Decision d = evaluate(*p, stage, facts, ledger, options);
        ledger.end_event(!d.refused());
        return d;
    }
    MemoryCounterStore store;
    LimitLedger ledger{store, StoreErrorMode::Tempfail};
};

TEST_F(Evaluator, FirstDecidingStatementInFileOrderWins) {
    auto p = must_load(
        "rule \"tag\" at message add-header \"X-Seen\" \"{sender}\"\n"
        "rule \"ok\" at message when sender.domain == \"example.net\" pass\n"
        "rule \"no\" at message reject\n");
    Decision d = run(p, Stage::Message, message_facts());
    EXPECT_EQ(d.verdict, Verdict::Pass);
    EXPECT_EQ(d.rule_id, "ok");
    ASSERT_EQ(d.headers_to_add.size(), 1u);
    EXPECT_EQ(d.headers_to_add[0].second, "Alice@Example.NET");           // raw, as written
    EXPECT_EQ(summary(run(p, Stage::Rcpt, client_facts())), "continue");  // no rcpt rules
}

TEST_F(Evaluator, SameInputsGiveTheSameDecision) {
    auto p = must_load(
        "rule \"r\" at mail when sender.local == \"alice\" reject 550 5.7.1 \"no {sender}\"\n");
    Facts f = client_facts();
    std::string first = summary(run(p, Stage::Mail, f));
    EXPECT_EQ(first, "reject 550 5.7.1 no Alice@Example.NET");
    EXPECT_EQ(summary(run(p, Stage::Mail, f)), first);
}

TEST_F(Evaluator, RecipientConditionAfterRcptHoldsForAnyAcceptedRecipient) {
    auto p = must_load("rule \"r\" at data when recipient.domain == \"example.com\" reject\n");
    const Condition& c = *p->statements()[0].when;
    Facts f = message_facts();
    EXPECT_TRUE(condition_holds(c, f, Stage::Data));
    f.accepted_recipients.pop_back();
    EXPECT_FALSE(condition_holds(c, f, Stage::Data));
    // Up to rcpt, it reads the recipient being decided.
    f.recipient = Address::from_smtp("<x@EXAMPLE.com>");
    EXPECT_TRUE(condition_holds(c, f, Stage::Rcpt));
}

// One code path for header values: ==, a list, the rule index and a limit key all read the
// value lower-cased once when the header was kept; a template reads it as written.
TEST_F(Evaluator, HeaderValuesAreReadLowerCaseByEveryConditionAndKey) {
    Facts f = message_facts();
    auto compare =
        must_load("rule \"c\" at message when header[\"Subject\"] != \"hello world\" reject\n");
    EXPECT_EQ(run(compare, Stage::Message, f).verdict, Verdict::Continue);
    auto list =
        must_load("rule \"l\" at message when header[\"subject\"] in [\"HELLO WORLD\"] reject\n");
    EXPECT_EQ(run(list, Stage::Message, f).verdict, Verdict::Reject);
    std::string indexed;
    for (int i = 0; i < 5; ++i)
        indexed += "rule \"i" + std::to_string(i) +
                   "\" at message when header[\"Subject\"] == \"x" + std::to_string(i) +
                   "\" pass\n";
    indexed += "rule \"hit\" at message when header[\"Subject\"] == \"hello world\" discard\n";
    auto index = must_load(indexed);
    ASSERT_FALSE(index->stage(Stage::Message).indexes.empty());
    EXPECT_EQ(run(index, Stage::Message, f).rule_id, "hit");
    auto limit = must_load(
        "limit \"k\" at message key header[\"Subject\"], client.ip/24 max 1 per 1h tempfail\n");
    EXPECT_EQ(limit_key(limit->statements()[0], f),
              "k\x1fhello world\x1f"
              "192.0.2.0");
    auto tag = must_load("rule \"t\" at message add-header \"X-S\" \"{header[Subject]}\"\n");
    EXPECT_EQ(run(tag, Stage::Message, f).headers_to_add.at(0).second, "Hello World");
}

TEST_F(Evaluator, LimitStagesItsCountAndActsOverItsMax) {
    auto p =
        must_load("limit \"two\" at rcpt key sender max 2 recipients per 1h reject 550 5.7.1\n");
    Facts f = client_facts();
    f.recipient = Address::from_smtp("<bob@example.org>");
    EXPECT_EQ(run(p, Stage::Rcpt, f).verdict, Verdict::Continue);
    EXPECT_EQ(run(p, Stage::Rcpt, f).verdict, Verdict::Continue);
    EXPECT_EQ(summary(run(p, Stage::Rcpt, f)), "reject 550 5.7.1 Rejected by policy");
    // Staged, not committed: the store holds nothing until the ledger commits.
    EXPECT_EQ(testing::count_of(store, "two", "alice@example.net", 3600), 0u);
    EXPECT_FALSE(ledger.commit(true).refused());
    EXPECT_EQ(testing::count_of(store, "two", "alice@example.net", 3600), 2u);
}

class DownStore : public CounterStore {
  public:
    std::uint64_t count(const std::string&, std::uint64_t) override { throw StoreError("down"); }
    std::optional<std::size_t> check_and_add(std::span<const CounterAdd>) override {
        throw StoreError("down");
    }
    CounterState inspect(const std::string&, std::uint64_t) override { throw StoreError("down"); }
    CounterState reset(const std::string&, std::uint64_t) override { throw StoreError("down"); }
    std::string describe() const override { return "down"; }
};

TEST(EvaluatorStore, AStoreThatCannotAnswerTempfailsOrPassesWithANote) {
    auto p = must_load(
        "limit \"l\" at message key sender max 5 per 1h tempfail\n"
        "rule \"after\" at message add-header \"X-After\" \"yes\"\n");
    DownStore down;
    Facts f = message_facts();
    LimitLedger tempfail(down, StoreErrorMode::Tempfail);
    Decision d = evaluate(*p, Stage::Message, f, tempfail, {});
    EXPECT_EQ(summary(d), "tempfail 451 4.3.0 Local error in processing, try again later");
    EXPECT_EQ(d.error, "limit \"l\": store unavailable: down");
    EXPECT_TRUE(d.headers_to_add.empty());  // the statements after it never ran

    LimitLedger pass(down, StoreErrorMode::Pass);
    d = evaluate(*p, Stage::Message, f, pass, {});
    EXPECT_EQ(d.verdict, Verdict::Continue);
    EXPECT_EQ(d.error, "limit \"l\": store unavailable, passing: down");
    EXPECT_EQ(d.headers_to_add.size(), 1u);
    EXPECT_FALSE(
        pass.staged("l\x1f"
                    "alice@example.net"));  // nothing staged for it
}

// The soft-bounce rewrite is one function, for a rule at its stage and for a limit that a
// concurrent transaction filled and that is refused at the end of the message.
TEST_F(Evaluator, SoftBounceMakesAnyRejectTheStagesDefaultTempfail) {
    auto p = must_load(
        "rule \"r\" at rcpt reject 550 5.1.1 \"no such user\"\n"
        "limit \"l\" at rcpt key sender max 1 per 1h reject 551 5.7.1\n");
    const EvaluationOptions soft = with(&EvaluationOptions::soft_bounce);
    Facts f = client_facts();
    EXPECT_EQ(summary(run(p, Stage::Rcpt, f, soft)), "tempfail 450 4.1.1 no such user");
    Decision d;
    refuse_full_limit(d, p->statements()[1], Stage::Message, f, soft);
    EXPECT_EQ(summary(d), "tempfail 451 4.7.1 Temporarily rejected by policy, try again later");
    EXPECT_EQ(d.rule_id, "l");
    refuse_full_limit(d, p->statements()[1], Stage::Message, f, {});
    EXPECT_EQ(summary(d), "reject 554 5.7.1 Rejected by policy");
}

TEST_F(Evaluator, ObserveAllRecordsWhatWouldHappenAndDecidesNothing) {
    auto p = must_load(
        "rule \"q\" at message quarantine \"held for {sender}\"\n"
        "rule \"r\" at message reject 554 5.7.1\n");
    const EvaluationOptions observe = with(&EvaluationOptions::observe_all);
    Decision d = run(p, Stage::Message, message_facts(), observe);
    EXPECT_EQ(d.verdict, Verdict::Continue);
    ASSERT_EQ(d.observed.size(), 2u);
    EXPECT_EQ(d.observed[0].detail, "held for Alice@Example.NET");
    EXPECT_EQ(d.observed[1].reply->line(), "554 5.7.1 Rejected by policy");
}

TEST(Verdict, IsTheDecidingActionAndPrintsAsTheSameWord) {
    for (ActionKind k : {ActionKind::Pass, ActionKind::Accept, ActionKind::Reject,
                         ActionKind::Tempfail, ActionKind::Discard, ActionKind::Quarantine}) {
        ASSERT_TRUE(action_is_terminal(k));
        EXPECT_EQ(verdict_name(verdict_of(k)), action_name(k));
    }
    EXPECT_EQ(verdict_name(Verdict::Continue), "continue");
    EXPECT_EQ(verdict_of(ActionKind::Reject), Verdict::Reject);
    EXPECT_EQ(verdict_of(ActionKind::Quarantine), Verdict::Quarantine);
}

}  // namespace
}  // namespace pm
