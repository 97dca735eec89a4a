// SPDX-License-Identifier: BSD-2-Clause
// The daemon's statistics (milter/stats.h, policy-milter(8) MONITORING): what a decision
// counts, the stats: lines, the Prometheus text and its escaping, the bounds on what a
// long run or a hostile one can make it keep, and exact counts under concurrent threads.
#include "milter/stats.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

namespace pm {
namespace {

Decision decided(Stage stage, Verdict v, std::string rule, int code = 0) {
    Decision d;
    d.stage = stage;
    d.verdict = v;
    d.rule_id = std::move(rule);
    if (code) d.reply = Reply{code, {code / 100, 7, 1}, "text"};
    return d;
}

// The snapshot's times, fixed so that the lines are exact.
StatsSnapshot at_fixed_time(StatsSnapshot s) {
    s.since = std::chrono::system_clock::from_time_t(1796601600);  // 2026-12-07T00:00:00Z
    s.now = s.since + std::chrono::seconds(3600);
    return s;
}

TEST(Stats, DecisionCountsRuleActionStageAndReply) {
    Stats stats;
    stats.count_decision(decided(Stage::Rcpt, Verdict::Reject, "unknown-user", 550));
    stats.count_decision(decided(Stage::Rcpt, Verdict::Reject, "unknown-user", 550));
    stats.count_decision(decided(Stage::Mail, Verdict::Tempfail, "busy", 451));
    Decision observed = decided(Stage::Message, Verdict::Continue, "");
    observed.observed.push_back({"lottery", ActionKind::Reject, std::nullopt, ""});
    observed.added.push_back({"stamp", ActionKind::AddHeader, std::nullopt, "X: y"});
    stats.count_decision(observed);
    stats.count_decision(decided(Stage::Connect, Verdict::Continue, ""));  // nobody decided
    Decision store = decided(Stage::Mail, Verdict::Tempfail, "per-sender", 451);
    store.store_error = true;
    stats.count_decision(store);
    stats.count_connection();
    stats.count_message();
    stats.count_reload(true);
    stats.count_reload(false);
    stats.count_reply(421);

    StatsSnapshot s = at_fixed_time(stats.snapshot());
    EXPECT_EQ(s.decisions(), 6u);
    EXPECT_EQ(s.store_errors, 1u);
    EXPECT_EQ(stats_report_lines(s),
              (std::vector<std::string>{
                  "stats: since 2026-12-07T00:00:00Z (3600s): connections=1 messages=1 "
                  "decisions=6 replies=421:1,451:2,550:2 store-errors=1 reloads=1 "
                  "reload-failures=1",
                  "stats: rule=busy decisions=1 mail:tempfail=1",
                  "stats: rule=lottery decisions=1 message:would-reject=1",
                  "stats: rule=per-sender decisions=1 mail:tempfail=1",
                  "stats: rule=stamp decisions=1 message:add-header=1",
                  "stats: rule=unknown-user decisions=2 rcpt:reject=2",
              }));
}

TEST(Stats, EmptyReportIsOneLine) {
    Stats stats;
    EXPECT_EQ(stats_report_lines(at_fixed_time(stats.snapshot())),
              (std::vector<std::string>{
                  "stats: since 2026-12-07T00:00:00Z (3600s): connections=0 messages=0 "
                  "decisions=0 replies=none store-errors=0 reloads=0 reload-failures=0"}));
}

// Reply codes come from the rules (or a local error), but whatever arrives, the table is
// fixed: 200-599 by code, anything else in one row.
TEST(Stats, ReplyCodesOutsideTheRangeShareOneRow) {
    Stats stats;
    for (int code : {0, -1, 199, 600, 99999, 250, 599}) stats.count_reply(code);
    StatsSnapshot s = stats.snapshot();
    EXPECT_EQ(s.replies, (std::vector<std::pair<int, std::uint64_t>>{{250, 1}, {599, 1}, {0, 5}}));
    EXPECT_NE(prometheus_text(s).find("policy_milter_replies_total{code=\"other\"} 5\n"),
              std::string::npos);
}

// Reloads over a long run could bring ever new ids: past kMaxRuleIds they share one row.
TEST(Stats, RuleIdsAreBounded) {
    Stats stats;
    for (std::size_t i = 0; i < kMaxRuleIds + 5; ++i)
        stats.count_decision(decided(Stage::Helo, Verdict::Reject, "r" + std::to_string(i), 550));
    stats.count_decision(decided(Stage::Helo, Verdict::Reject, "r0", 550));  // a known one
    StatsSnapshot s = stats.snapshot();
    ASSERT_EQ(s.rules.size(), kMaxRuleIds + 1);
    EXPECT_EQ(s.rules.back().id, kOtherRules);
    EXPECT_EQ(s.rules.back().total(), 5u);
    EXPECT_EQ(s.decisions(), kMaxRuleIds + 6);
    EXPECT_EQ(stats_report_lines(s).back(), "stats: rule=(other) decisions=5 helo:reject=5");
}

TEST(Stats, LatencyBuckets) {
    Stats stats;
    using std::chrono::microseconds;
    stats.observe(Callback::Envrcpt, microseconds(30));         // <= 50 us
    stats.observe(Callback::Envrcpt, microseconds(50));         // <= 50 us (le is inclusive)
    stats.observe(Callback::Envrcpt, microseconds(700));        // <= 1 ms
    stats.observe(Callback::Envrcpt, std::chrono::seconds(3));  // +Inf
    StatsSnapshot s = stats.snapshot();
    const auto& l = s.latency[static_cast<std::size_t>(Callback::Envrcpt)];
    EXPECT_EQ(l.count, 4u);
    EXPECT_EQ(l.sum_ns, 3000780000u);
    EXPECT_EQ(l.buckets[0], 2u);
    EXPECT_EQ(l.buckets[4], 1u);
    EXPECT_EQ(l.buckets[kLatencyBuckets - 1], 1u);
    std::string text = prometheus_text(s);
    for (const char* line :
         {"policy_milter_callback_duration_seconds_bucket{callback=\"envrcpt\",le=\"5e-05\"} 2\n",
          "policy_milter_callback_duration_seconds_bucket{callback=\"envrcpt\",le=\"0.001\"} 3\n",
          "policy_milter_callback_duration_seconds_bucket{callback=\"envrcpt\",le=\"1\"} 3\n",
          "policy_milter_callback_duration_seconds_bucket{callback=\"envrcpt\",le=\"+Inf\"} 4\n",
          "policy_milter_callback_duration_seconds_sum{callback=\"envrcpt\"} 3.00078\n",
          "policy_milter_callback_duration_seconds_count{callback=\"envrcpt\"} 4\n",
          "policy_milter_callback_duration_seconds_count{callback=\"negotiate\"} 0\n"})
        EXPECT_NE(text.find(line), std::string::npos) << line;
}

TEST(Stats, CallbackNames) {
    for (std::size_t i = 0; i < kCallbackCount; ++i) {
        auto c = static_cast<Callback>(i);
        EXPECT_EQ(callback_from_name(callback_name(c)), c);
    }
    EXPECT_EQ(callback_name(Callback::Envfrom), "envfrom");
}

TEST(StatsExposition, Text) {
    Stats stats;
    stats.count_decision(decided(Stage::Rcpt, Verdict::Reject, "unknown-user", 550));
    Decision observed = decided(Stage::Message, Verdict::Continue, "");
    observed.observed.push_back({"lottery", ActionKind::Quarantine, std::nullopt, ""});
    stats.count_decision(observed);
    stats.count_connection();
    stats.count_reload(true);
    std::string text = prometheus_text(at_fixed_time(stats.snapshot()));
    std::string head = text.substr(0, text.find("# HELP policy_milter_callback_duration_seconds"));
    EXPECT_EQ(
        head,
        "# HELP policy_milter_decisions_total Rule decisions by stage, rule and action; "
        "would-ACTION: a rule that matched under observe.\n"
        "# TYPE policy_milter_decisions_total counter\n"
        "policy_milter_decisions_total{stage=\"message\",rule=\"lottery\",action=\"would-"
        "quarantine\"} 1\n"
        "policy_milter_decisions_total{stage=\"rcpt\",rule=\"unknown-user\",action=\"reject\"} "
        "1\n"
        "# HELP policy_milter_replies_total Refusals sent to clients, by SMTP reply code "
        "(other: outside 200-599).\n"
        "# TYPE policy_milter_replies_total counter\n"
        "policy_milter_replies_total{code=\"550\"} 1\n"
        "# HELP policy_milter_connections_total SMTP connections seen.\n"
        "# TYPE policy_milter_connections_total counter\n"
        "policy_milter_connections_total 1\n"
        "# HELP policy_milter_messages_total Messages that reached the end of their data.\n"
        "# TYPE policy_milter_messages_total counter\n"
        "policy_milter_messages_total 0\n"
        "# HELP policy_milter_store_errors_total Events at which the counter store failed to "
        "answer.\n"
        "# TYPE policy_milter_store_errors_total counter\n"
        "policy_milter_store_errors_total 0\n"
        "# HELP policy_milter_reloads_total Reloads of the rules, by result.\n"
        "# TYPE policy_milter_reloads_total counter\n"
        "policy_milter_reloads_total{result=\"ok\"} 1\n"
        "policy_milter_reloads_total{result=\"failed\"} 0\n");
    EXPECT_NE(text.find("policy_milter_start_time_seconds 1796601600\n"), std::string::npos);
}

TEST(StatsExposition, LabelValuesAreEscaped) {
    EXPECT_EQ(prometheus_label_value("plain-id.1"), "plain-id.1");
    EXPECT_EQ(prometheus_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    EXPECT_EQ(prometheus_label_value(std::string("\r\x01\x7f\xc3\xa9", 5)),
              "\\\\x0d\\\\x01\\\\x7f\\\\xc3\\\\xa9");
    EXPECT_EQ(prometheus_label_value(std::string("\0", 1)), "\\\\x00");
}

// promtool, Prometheus's own checker, reads the text of hostile rule ids as valid (the
// rules parser allows only [A-Za-z0-9._-] in ids; the escaping holds without that).
TEST(StatsExposition, PromtoolAcceptsIt) {
    if (std::system("command -v promtool >/dev/null 2>&1") != 0) GTEST_SKIP() << "no promtool";
    Stats stats;
    for (const char* id : {"ok-rule", "q\"uote", "back\\slash", "new\nline",
                           "\x01\xff}{,=", "x\"} 1\nfake_metric 9\n#"})
        stats.count_decision(decided(Stage::Rcpt, Verdict::Reject, id, 550));
    stats.observe(Callback::Eom, std::chrono::microseconds(120));
    std::string text = prometheus_text(stats.snapshot());
    EXPECT_EQ(text.find("\nfake_metric"), std::string::npos);
    std::string path = ::testing::TempDir() + "pm-stats-" + std::to_string(getpid()) + ".prom";
    std::ofstream(path, std::ios::binary) << text;
    std::string out_path = path + ".out";
    int rc = std::system(("promtool check metrics < " + path + " > " + out_path + " 2>&1").c_str());
    std::ifstream in(out_path);
    std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(rc, 0) << out << "\n" << text;
    EXPECT_EQ(out, "");
    std::remove(path.c_str());
    std::remove(out_path.c_str());
}

// Counting from many threads at once loses nothing, while a reader takes snapshots.
TEST(Stats, ConcurrentCountsAreExact) {
    Stats stats;
    constexpr int kThreads = 8, kEach = 20000;
    std::atomic<bool> done{false};
    std::thread reader([&] {
        while (!done) (void)prometheus_text(stats.snapshot());
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                stats.count_connection();
                stats.count_decision(decided(Stage::Rcpt, Verdict::Reject,
                                             "rule-" + std::to_string((t + i) % 13), 550));
                stats.observe(Callback::Connect, std::chrono::microseconds(i % 300));
            }
        });
    for (auto& t : threads) t.join();
    done = true;
    reader.join();
    StatsSnapshot s = stats.snapshot();
    EXPECT_EQ(s.connections, std::uint64_t{kThreads} * kEach);
    EXPECT_EQ(s.decisions(), std::uint64_t{kThreads} * kEach);
    EXPECT_EQ(s.rules.size(), 13u);
    EXPECT_EQ(s.replies, (std::vector<std::pair<int, std::uint64_t>>{{550, kThreads * kEach}}));
    EXPECT_EQ(s.latency[static_cast<std::size_t>(Callback::Connect)].count,
              std::uint64_t{kThreads} * kEach);
}

}  // namespace
}  // namespace pm
