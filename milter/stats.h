// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	stats - the daemon's counters, for the stats: log lines and /metrics
// SYNOPSIS
//	#include "milter/stats.h"
//
//	Stats& process_stats();
//	std::vector<std::string> stats_report_lines();
//	std::string prometheus_text(const StatsSnapshot& s);
// DESCRIPTION
//	One process-wide, thread-safe set of counters since the start (policy-milter(8),
//	MONITORING): decisions per stage, rule and action, replies per code, connections,
//	messages, store errors, reloads, and a latency histogram per milter callback.
//	Counting is on the MTA's path, so it takes no lock held across anything but a hash
//	lookup: the callback counters are relaxed atomics in per-thread shards, a rule's
//	counters are atomics found under a shared (reader) lock. Readers take a snapshot.
//	A reload keeps every count: rules are keyed by their id text.
//	No libmilter here: unit tests link it alone.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/decision.h"
#include "policy/stage.h"

namespace pm {

// The milter callbacks whose time is measured, named as libmilter's xxfi_* (envfrom is
// the mail stage, envrcpt rcpt, eom message).
enum class Callback {
    Negotiate,
    Connect,
    Helo,
    Envfrom,
    Envrcpt,
    Data,
    Header,
    Eoh,
    Body,
    Eom,
    Abort,
    Close,
    Unknown,  // the last: kCallbackCount counts on it
};
inline constexpr std::size_t kCallbackCount = static_cast<std::size_t>(Callback::Unknown) + 1;
std::string_view callback_name(Callback c);
// Callback::Close for a name that is none of them (a programming error the tests catch).
Callback callback_from_name(std::string_view name);

// Upper bounds of the latency buckets, in seconds; a last one, +Inf, is implied. A
// callback answers in ~10-100 µs; a counter store lookup may wait up to redis-timeout.
inline constexpr std::array<double, 14> kLatencyBounds = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
inline constexpr std::size_t kLatencyBuckets = kLatencyBounds.size() + 1;

// A rule's actions, and the same ones observed ("would-reject": the rule matched under
// observe and did nothing). Observed hits are counted apart, never as the action.
inline constexpr std::size_t kActionSlots = 2 * kActionKindCount;
std::string action_slot_name(std::size_t slot);  // "reject", "would-reject", ...

// More distinct rule ids than this over the daemon's life (reloads add ids) are counted
// together in one row, kOtherRules ("(other)": no rule id can be that).
inline constexpr const char* kOtherRules = "(other)";
inline constexpr std::size_t kMaxRuleIds = 10000;

// Reply codes are counted from 200 to 599; any other in one row, code 0.
inline constexpr int kFirstReplyCode = 200, kLastReplyCode = 599;

struct StatsSnapshot {
    std::chrono::system_clock::time_point since;  // the start (of the process's Stats)
    std::chrono::system_clock::time_point now;
    std::uint64_t connections = 0, messages = 0, store_errors = 0;
    std::uint64_t reloads_ok = 0, reloads_failed = 0;
    std::vector<std::pair<int, std::uint64_t>> replies;  // non-zero, by code
    struct Rule {
        std::string id;  // empty: the rows beyond kMaxRuleIds
        std::array<std::array<std::uint64_t, kActionSlots>, kStageCount> counts{};
        std::uint64_t total() const;
    };
    std::vector<Rule> rules;  // the rules that decided anything, by id
    struct Latency {
        std::array<std::uint64_t, kLatencyBuckets> buckets{};  // per bucket, not cumulative
        std::uint64_t count = 0;
        std::uint64_t sum_ns = 0;
    };
    std::array<Latency, kCallbackCount> latency{};
    std::uint64_t decisions() const;  // the sum over rules
};

class Stats {
  public:
    Stats();
    ~Stats();
    Stats(const Stats&) = delete;
    Stats& operator=(const Stats&) = delete;

    void count_connection();
    void count_message();
    void count_reload(bool ok);
    // The deciding rule (its verdict as the action), the observed hits (would-...), the
    // add-header hits, the reply code and a store error: what the decision's log lines say.
    void count_decision(const Decision& d);
    // A reply made outside the policy (a local error's 421 or 451).
    void count_reply(int code);
    void observe(Callback c, std::chrono::nanoseconds took);

    StatsSnapshot snapshot() const;

  private:
    struct Shard;
    struct RuleCounts;
    Shard& shard();
    RuleCounts& rule(std::string_view id);
    void count_rule(std::string_view id, Stage stage, std::size_t slot);

    std::chrono::system_clock::time_point since_;
    std::unique_ptr<Shard[]> shards_;
    std::array<std::atomic<std::uint64_t>, kLastReplyCode - kFirstReplyCode + 2> replies_{};
    std::atomic<std::uint64_t> reloads_ok_{0}, reloads_failed_{0};

    struct IdHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    mutable std::shared_mutex rules_mutex_;  // held only for the lookup or insertion
    std::unordered_map<std::string, std::unique_ptr<RuleCounts>, IdHash, std::equal_to<>> rules_;
    std::unique_ptr<RuleCounts> other_rules_;
};

// The daemon's one Stats, made at first use.
Stats& process_stats();

// The stats: lines of a snapshot: a summary, then one per rule that decided anything.
std::vector<std::string> stats_report_lines(const StatsSnapshot& s);
// Those of process_stats(), now (for the log and `--ctl stats`).
std::vector<std::string> stats_report_lines();

// The snapshot in the Prometheus text exposition format, version 0.0.4.
std::string prometheus_text(const StatsSnapshot& s);
// A label value escaped for it: \ " and newline as \\ \" \n; any other control or
// non-ASCII byte as the text \xHH (so a value is always printable ASCII).
std::string prometheus_label_value(std::string_view value);

}  // namespace pm
