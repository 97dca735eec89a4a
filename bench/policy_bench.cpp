// SPDX-License-Identifier: BSD-2-Clause
// Evaluation cost of a policy, per SMTP event, through pm::Conversation exactly as the
// milter adapter drives it.
//
//   policy_bench [--data=DIR] [benchmark flags, e.g. --benchmark_repetitions=10]
//
// Two policies are loaded once, before any benchmark runs (loading is measured by
// policy_load, not here):
//   large  bench/data/large.rules: 1,000 rules, a list of 1,000,000 CIDRs used at connect
//          and at rcpt, a list of 1,000,000 addresses used at rcpt (bench/gen-large-policy)
//   small  bench/data/small/small.rules: the complete policy of policy-milter.rules(5),
//          EXAMPLES, the baseline
//
// Rcpt/<policy>/<mix>: connect, helo and MAIL FROM are done once in setup. One benchmark
//   iteration is one transaction of kRcptsPerTransaction RCPT TO events; only the
//   conv.rcpt() calls are timed (manual timing around the batch), the conv.mail() that
//   starts the next transaction is not. The Time column is therefore per transaction
//   and the ns_per_rcpt counter is Time / kRcptsPerTransaction: the cost of one rcpt
//   evaluation (address parsing, rule candidates, conditions, list lookups, reply text).
//   rcpt.count stays <= kRcptsPerTransaction, below every rcpt.count rule's threshold.
// Connect/<policy>/<mix>: one iteration is one conv.connect() (new facts, every connect
//   rule), all of it timed.
//
// Mixes, from bench/data/probes.txt (hits are taken from the data, misses are checked
// against it by the generator):
//   miss      nothing matches: every unindexed rule of the stage is evaluated (worst case)
//   list-hit  the recipient / client is in the big list
//   rule-hit  the recipient has its own `recipient == "..."` rule (large policy only)
//   mixed     rcpt: 20 % list hits, 10 % rule hits, 70 % misses (the small policy, which
//             has no per-address rules: 30 % list hits, 70 % misses); connect: 30 % hits
// Inputs are cycled in a fixed shuffled order, so consecutive lookups touch unrelated
// parts of the million-entry tables, as real traffic does.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "policy/conversation.h"
#include "store/memory_counter_store.h"

namespace {

constexpr int kRcptsPerTransaction = 16;
const char* const kClientName = "mail.client-host.example";
const char* const kSender = "<newsletter@sender-domain.example>";

struct Probes {
    std::vector<std::string> list_hits, rule_hits, misses;
    std::vector<pm::IpAddress> ip_hits, ip_misses;
};

struct Setup {
    std::shared_ptr<const pm::Policy> large, small;
    Probes probes;
    pm::IpAddress client_ip;  // in no list: every rcpt rule runs
} g;

Probes read_probes(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        std::cerr << "cannot read " << path << "; run bench/gen-large-policy first\n";
        std::exit(2);
    }
    Probes p;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream words(line);
        std::string kind, tag, value;
        words >> kind >> tag >> value;
        if (kind == "rcpt") {
            auto& to = tag == "list-hit" ? p.list_hits : tag == "rule-hit" ? p.rule_hits : p.misses;
            to.push_back("<" + value + ">");
        } else if (kind == "ip") {
            auto ip = pm::parse_ip(value);
            if (!ip) {
                std::cerr << path << ": bad address " << value << '\n';
                std::exit(2);
            }
            (tag == "hit" ? p.ip_hits : p.ip_misses).push_back(*ip);
        }
    }
    if (p.list_hits.size() < 40 || p.rule_hits.empty() || p.misses.empty() ||
        p.ip_hits.size() < 20 || p.ip_misses.empty()) {
        std::cerr << path << ": too few probes; run bench/gen-large-policy again\n";
        std::exit(2);
    }
    return p;
}

// `count` items drawn from the weighted pools, in a fixed pseudo-random order.
template <class T>
std::vector<T> mix(std::vector<std::pair<const std::vector<T>*, int>> pools, std::size_t count) {
    std::mt19937_64 rng(42);
    std::vector<T> out;
    int total = 0;
    for (const auto& [pool, weight] : pools) total += weight;
    std::vector<std::size_t> next(pools.size(), 0);
    for (std::size_t i = 0; i < count; ++i) {
        int x = static_cast<int>(rng() % static_cast<std::uint64_t>(total));
        std::size_t k = 0;
        while (x >= pools[k].second) x -= pools[k++].second;
        const auto& pool = *pools[k].first;
        out.push_back(pool[rng() % pool.size()]);
    }
    return out;
}

enum class Mix { Mixed, Miss, ListHit, RuleHit };

const char* mix_name(Mix m) {
    switch (m) {
        case Mix::Mixed: return "mixed";
        case Mix::Miss: return "miss";
        case Mix::ListHit: return "list-hit";
        case Mix::RuleHit: return "rule-hit";
    }
    return "?";
}

// The 4096 probes of one mix. The small policy's lists hold the first `small` hits (see
// gen-large-policy); `rule_hits` is null where no rule matches on its own (client
// addresses), and a rule-hit mix then draws from the list hits.
template <class T>
std::vector<T> probes(const std::vector<T>& all_hits, std::size_t small,
                      const std::vector<T>* rule_hits, const std::vector<T>& misses, bool large,
                      Mix m) {
    static const std::vector<T> small_hits(all_hits.begin(),
                                           all_hits.begin() + static_cast<std::ptrdiff_t>(small));
    const auto* hits = large ? &all_hits : &small_hits;
    constexpr std::size_t n = 4096;
    switch (m) {
        case Mix::Mixed:
            if (large && rule_hits) return mix<T>({{hits, 20}, {rule_hits, 10}, {&misses, 70}}, n);
            return mix<T>({{hits, 30}, {&misses, 70}}, n);
        case Mix::Miss: return mix<T>({{&misses, 1}}, n);
        case Mix::ListHit: return mix<T>({{hits, 1}}, n);
        case Mix::RuleHit: return mix<T>({{rule_hits ? rule_hits : hits, 1}}, n);
    }
    return {};
}

std::vector<std::string> recipients(bool large, Mix m) {
    const Probes& p = g.probes;
    return probes<std::string>(p.list_hits, 40, &p.rule_hits, p.misses, large, m);
}

std::vector<pm::IpAddress> clients(bool large, Mix m) {
    const Probes& p = g.probes;
    return probes<pm::IpAddress>(p.ip_hits, 20, nullptr, p.ip_misses, large, m);
}

void rcpt_bench(benchmark::State& state, bool large, Mix m) {
    auto policy = large ? g.large : g.small;
    auto inputs = recipients(large, m);
    pm::MemoryCounterStore store;
    pm::Conversation conv(policy, store);
    conv.connect(g.client_ip, kClientName, 40000);
    conv.helo(kClientName);
    conv.mail(kSender, "", 12345, true);

    std::size_t next = 0;
    std::uint64_t refused = 0, evaluated = 0;
    double rcpt_seconds = 0;
    for (auto _ : state) {
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < kRcptsPerTransaction; ++i) {
            pm::Decision d = conv.rcpt(inputs[next]);
            refused += d.refused();
            benchmark::DoNotOptimize(d);
            if (++next == inputs.size()) next = 0;
        }
        double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        state.SetIterationTime(elapsed);
        rcpt_seconds += elapsed;
        evaluated += kRcptsPerTransaction;
        conv.mail(kSender, "", 12345, true);  // next transaction: not timed
    }
    state.counters["ns_per_rcpt"] = evaluated ? rcpt_seconds * 1e9 / evaluated : 0;
    state.counters["refused_pct"] = evaluated ? 100.0 * refused / evaluated : 0;
    state.SetItemsProcessed(static_cast<std::int64_t>(evaluated));
}

void connect_bench(benchmark::State& state, bool large, Mix m) {
    auto policy = large ? g.large : g.small;
    auto inputs = clients(large, m);
    pm::MemoryCounterStore store;
    pm::Conversation conv(policy, store);
    std::size_t next = 0;
    std::uint64_t refused = 0, evaluated = 0;
    for (auto _ : state) {
        pm::Decision d = conv.connect(inputs[next], kClientName, 40000);
        refused += d.refused();
        benchmark::DoNotOptimize(d);
        if (++next == inputs.size()) next = 0;
        ++evaluated;
    }
    state.counters["refused_pct"] = evaluated ? 100.0 * refused / evaluated : 0;
    state.SetItemsProcessed(static_cast<std::int64_t>(evaluated));
}

void register_all() {
    for (bool large : {true, false}) {
        std::string policy = large ? "large" : "small";
        for (Mix m : {Mix::Mixed, Mix::Miss, Mix::ListHit, Mix::RuleHit}) {
            if (!large && m == Mix::RuleHit) continue;
            benchmark::RegisterBenchmark(("Rcpt/" + policy + "/" + mix_name(m)).c_str(), rcpt_bench,
                                         large, m)
                ->UseManualTime()
                ->Unit(benchmark::kNanosecond);
        }
        for (Mix m : {Mix::Mixed, Mix::Miss, Mix::ListHit}) {
            benchmark::RegisterBenchmark(("Connect/" + policy + "/" + mix_name(m)).c_str(),
                                         connect_bench, large, m)
                ->Unit(benchmark::kNanosecond);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir = pm::bench::data_dir();
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--data=", 0) == 0)
            dir = a.substr(7);
        else
            args.push_back(argv[i]);
    }
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;

    g.large = pm::bench::load_or_die(dir + "/large.rules");
    g.small = pm::bench::load_or_die(dir + "/small/small.rules");
    g.probes = read_probes(dir + "/probes.txt");
    g.client_ip = g.probes.ip_misses.front();
    benchmark::AddCustomContext("large_policy", dir + "/large.rules");
    benchmark::AddCustomContext("rcpts_per_transaction", std::to_string(kRcptsPerTransaction));

    register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
