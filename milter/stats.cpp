// SPDX-License-Identifier: BSD-2-Clause
#include "milter/stats.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "config/log_escape.h"

namespace pm {

namespace {

constexpr std::array<std::string_view, kCallbackCount> kCallbackNames = {
    "negotiate", "connect", "helo", "envfrom", "envrcpt", "data",   "header",
    "eoh",       "body",    "eom",  "abort",   "close",   "unknown"};

// Threads take shards round-robin at their first count: libmilter runs one thread per
// connection, so a few shards spread them well enough to keep them off each other's
// cache lines.
constexpr std::size_t kShards = 8;

constexpr auto relaxed = std::memory_order_relaxed;

void add(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
    counter.fetch_add(n, relaxed);
}

}  // namespace

std::string_view callback_name(Callback c) {
    return kCallbackNames[static_cast<std::size_t>(c)];
}

Callback callback_from_name(std::string_view name) {
    for (std::size_t i = 0; i < kCallbackCount; ++i)
        if (kCallbackNames[i] == name) return static_cast<Callback>(i);
    return Callback::Close;
}

std::string action_slot_name(std::size_t slot) {
    if (slot >= kActionKindCount)
        return "would-" +
               std::string(action_name(static_cast<ActionKind>(slot - kActionKindCount)));
    return std::string(action_name(static_cast<ActionKind>(slot)));
}

struct alignas(64) Stats::Shard {
    std::atomic<std::uint64_t> connections{0}, messages{0}, store_errors{0};
    struct Latency {
        std::array<std::atomic<std::uint64_t>, kLatencyBuckets> buckets{};
        std::atomic<std::uint64_t> count{0}, sum_ns{0};
    };
    std::array<Latency, kCallbackCount> latency{};
};

struct Stats::RuleCounts {
    std::array<std::array<std::atomic<std::uint64_t>, kActionSlots>, kStageCount> counts{};
};

Stats::Stats()
    : since_(std::chrono::system_clock::now()),
      shards_(new Shard[kShards]),
      other_rules_(std::make_unique<RuleCounts>()) {}

Stats::~Stats() = default;

Stats::Shard& Stats::shard() {
    static std::atomic<unsigned> next{0};
    thread_local unsigned mine = next.fetch_add(1, relaxed) % kShards;
    return shards_[mine];
}

void Stats::count_connection() {
    add(shard().connections);
}

void Stats::count_message() {
    add(shard().messages);
}

void Stats::count_reload(bool ok) {
    add(ok ? reloads_ok_ : reloads_failed_);
}

void Stats::count_reply(int code) {
    bool known = code >= kFirstReplyCode && code <= kLastReplyCode;
    add(replies_[known ? static_cast<std::size_t>(code - kFirstReplyCode) : replies_.size() - 1]);
}

// A rule's counters, made at its first decision. The ids come from the admin's rules
// file, but reloads over months could still add many: past kMaxRuleIds they share a row.
Stats::RuleCounts& Stats::rule(std::string_view id) {
    {
        std::shared_lock lock(rules_mutex_);
        if (auto it = rules_.find(id); it != rules_.end()) return *it->second;
    }
    std::unique_lock lock(rules_mutex_);
    if (auto it = rules_.find(id); it != rules_.end()) return *it->second;
    if (rules_.size() >= kMaxRuleIds) return *other_rules_;
    auto [it, added] = rules_.emplace(std::string(id), std::make_unique<RuleCounts>());
    return *it->second;
}

void Stats::count_rule(std::string_view id, Stage stage, std::size_t slot) {
    add(rule(id).counts[stage_index(stage)][slot]);
}

void Stats::count_decision(const Decision& d) {
    if (d.verdict != Verdict::Continue && !d.rule_id.empty())
        count_rule(d.rule_id, d.stage, static_cast<std::size_t>(d.verdict));
    for (const RuleHit& hit : d.observed)
        count_rule(hit.rule_id, d.stage, kActionKindCount + static_cast<std::size_t>(hit.action));
    for (const RuleHit& hit : d.added)
        count_rule(hit.rule_id, d.stage, static_cast<std::size_t>(hit.action));
    if (d.reply) count_reply(d.reply->code);
    if (d.store_error) add(shard().store_errors);
}

void Stats::observe(Callback c, std::chrono::nanoseconds took) {
    double seconds = std::chrono::duration<double>(took).count();
    std::size_t bucket = static_cast<std::size_t>(
        std::lower_bound(kLatencyBounds.begin(), kLatencyBounds.end(), seconds) -
        kLatencyBounds.begin());
    Shard::Latency& l = shard().latency[static_cast<std::size_t>(c)];
    add(l.buckets[bucket]);
    add(l.count);
    add(l.sum_ns, took.count() > 0 ? static_cast<std::uint64_t>(took.count()) : 0);
}

namespace {

StatsSnapshot::Rule rule_row(std::string id, const auto& counts) {
    StatsSnapshot::Rule row;
    row.id = std::move(id);
    for (std::size_t s = 0; s < kStageCount; ++s)
        for (std::size_t a = 0; a < kActionSlots; ++a)
            row.counts[s][a] = counts[s][a].load(relaxed);
    return row;
}

}  // namespace

StatsSnapshot Stats::snapshot() const {
    StatsSnapshot s;
    s.since = since_;
    s.now = std::chrono::system_clock::now();
    for (std::size_t i = 0; i < kShards; ++i) {
        const Shard& sh = shards_[i];
        s.connections += sh.connections.load(relaxed);
        s.messages += sh.messages.load(relaxed);
        s.store_errors += sh.store_errors.load(relaxed);
        for (std::size_t c = 0; c < kCallbackCount; ++c) {
            for (std::size_t b = 0; b < kLatencyBuckets; ++b)
                s.latency[c].buckets[b] += sh.latency[c].buckets[b].load(relaxed);
            s.latency[c].count += sh.latency[c].count.load(relaxed);
            s.latency[c].sum_ns += sh.latency[c].sum_ns.load(relaxed);
        }
    }
    s.reloads_ok = reloads_ok_.load(relaxed);
    s.reloads_failed = reloads_failed_.load(relaxed);
    for (std::size_t i = 0; i < replies_.size(); ++i)
        if (std::uint64_t n = replies_[i].load(relaxed))
            s.replies.emplace_back(
                i + 1 < replies_.size() ? kFirstReplyCode + static_cast<int>(i) : 0, n);
    {
        std::shared_lock lock(rules_mutex_);
        for (const auto& [id, counts] : rules_) {
            auto row = rule_row(id, counts->counts);
            if (row.total()) s.rules.push_back(std::move(row));
        }
    }
    std::sort(s.rules.begin(), s.rules.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    if (auto other = rule_row(kOtherRules, other_rules_->counts); other.total())
        s.rules.push_back(other);
    return s;
}

std::uint64_t StatsSnapshot::Rule::total() const {
    std::uint64_t n = 0;
    for (const auto& stage : counts)
        for (std::uint64_t c : stage) n += c;
    return n;
}

std::uint64_t StatsSnapshot::decisions() const {
    std::uint64_t n = 0;
    for (const auto& r : rules) n += r.total();
    return n;
}

Stats& process_stats() {
    // Never destroyed: session threads may still count while the process exits
    // (milter/daemon.cpp, exit_leaving_sessions).
    static Stats* stats = new Stats;
    return *stats;
}

// --- the stats: lines --------------------------------------------------------------------

namespace {

std::string utc_time(std::chrono::system_clock::time_point t) {
    std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string rule_name(const std::string& id) {
    std::string out;
    append_log_value(out, id, LogValue::Token);
    return out;
}

}  // namespace

std::vector<std::string> stats_report_lines(const StatsSnapshot& s) {
    using std::to_string;
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(s.now - s.since).count();
    std::string summary = "stats: since " + utc_time(s.since) + " (" + to_string(seconds) +
                          "s): connections=" + to_string(s.connections) +
                          " messages=" + to_string(s.messages) +
                          " decisions=" + to_string(s.decisions()) + " replies=";
    if (s.replies.empty()) summary += "none";
    for (std::size_t i = 0; i < s.replies.size(); ++i)
        summary += (i ? "," : "") + (s.replies[i].first ? to_string(s.replies[i].first) : "other") +
                   ":" + to_string(s.replies[i].second);
    summary += " store-errors=" + to_string(s.store_errors) +
               " reloads=" + to_string(s.reloads_ok) +
               " reload-failures=" + to_string(s.reloads_failed);
    std::vector<std::string> lines{std::move(summary)};
    for (const auto& r : s.rules) {
        std::string line = "stats: rule=" + rule_name(r.id) + " decisions=" + to_string(r.total());
        for (std::size_t st = 0; st < kStageCount; ++st)
            for (std::size_t a = 0; a < kActionSlots; ++a)
                if (r.counts[st][a])
                    line += " " + std::string(stage_name(kAllStages[st])) + ":" +
                            action_slot_name(a) + "=" + to_string(r.counts[st][a]);
        lines.push_back(std::move(line));
    }
    return lines;
}

std::vector<std::string> stats_report_lines() {
    return stats_report_lines(process_stats().snapshot());
}

// --- Prometheus --------------------------------------------------------------------------

std::string prometheus_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char ch : value) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c < 0x20 || c >= 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\\\x%02x", c);  // the text \xHH
            out += hex;
        } else {
            out += ch;
        }
    }
    return out;
}

namespace {

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t value) {
    out.append(name);
    if (!labels.empty()) out.append("{").append(labels).append("}");
    out.append(" ").append(std::to_string(value)).append("\n");
}

std::string seconds_text(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

void decisions(std::string& out, const StatsSnapshot& s) {
    constexpr std::string_view name = "policy_milter_decisions_total";
    family(out, name, "counter",
           "Rule decisions by stage, rule and action; would-ACTION: a rule that matched under "
           "observe.");
    for (const auto& r : s.rules)
        for (std::size_t st = 0; st < kStageCount; ++st)
            for (std::size_t a = 0; a < kActionSlots; ++a)
                if (r.counts[st][a])
                    sample(out, name,
                           "stage=\"" + std::string(stage_name(kAllStages[st])) + "\",rule=\"" +
                               prometheus_label_value(r.id) + "\",action=\"" + action_slot_name(a) +
                               "\"",
                           r.counts[st][a]);
}

void latency(std::string& out, const StatsSnapshot& s) {
    constexpr std::string_view name = "policy_milter_callback_duration_seconds";
    family(out, name, "histogram", "Time spent in each milter callback, by callback.");
    for (std::size_t c = 0; c < kCallbackCount; ++c) {
        const auto& l = s.latency[c];
        std::string cb = "callback=\"" + std::string(kCallbackNames[c]) + "\"";
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < kLatencyBuckets; ++b) {
            cumulative += l.buckets[b];
            std::string le = b < kLatencyBounds.size() ? seconds_text(kLatencyBounds[b]) : "+Inf";
            sample(out, "policy_milter_callback_duration_seconds_bucket", cb + ",le=\"" + le + "\"",
                   cumulative);
        }
        out.append("policy_milter_callback_duration_seconds_sum{")
            .append(cb)
            .append("} ")
            .append(seconds_text(static_cast<double>(l.sum_ns) / 1e9))
            .append("\n");
        // The +Inf bucket's value, not the separate count: a scrape during an observation
        // could read them apart, and the format wants them equal.
        sample(out, "policy_milter_callback_duration_seconds_count", cb, cumulative);
    }
}

}  // namespace

std::string prometheus_text(const StatsSnapshot& s) {
    std::string out;
    out.reserve(4096 + s.rules.size() * 128);
    decisions(out, s);
    family(out, "policy_milter_replies_total", "counter",
           "Refusals sent to clients, by SMTP reply code (other: outside 200-599).");
    for (const auto& [code, n] : s.replies)
        sample(out, "policy_milter_replies_total",
               "code=\"" + (code ? std::to_string(code) : std::string("other")) + "\"", n);
    family(out, "policy_milter_connections_total", "counter", "SMTP connections seen.");
    sample(out, "policy_milter_connections_total", "", s.connections);
    family(out, "policy_milter_messages_total", "counter",
           "Messages that reached the end of their data.");
    sample(out, "policy_milter_messages_total", "", s.messages);
    family(out, "policy_milter_store_errors_total", "counter",
           "Events at which the counter store failed to answer.");
    sample(out, "policy_milter_store_errors_total", "", s.store_errors);
    family(out, "policy_milter_reloads_total", "counter", "Reloads of the rules, by result.");
    sample(out, "policy_milter_reloads_total", "result=\"ok\"", s.reloads_ok);
    sample(out, "policy_milter_reloads_total", "result=\"failed\"", s.reloads_failed);
    latency(out, s);
    family(out, "policy_milter_start_time_seconds", "gauge",
           "Start of the counting, in seconds since the Unix epoch.");
    sample(
        out, "policy_milter_start_time_seconds", "",
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::seconds>(s.since.time_since_epoch()).count()));
    return out;
}

}  // namespace pm
