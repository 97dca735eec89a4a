// SPDX-License-Identifier: BSD-2-Clause
// The cost of the statistics (milter/stats.h) on the MTA's path, as a ratio in one run:
//
//   stats_bench [benchmark flags, e.g. --benchmark_repetitions=5]
//
// Rcpt/plain    one conv.rcpt() through the example policy (packaging/examples/rules.conf),
//               one in four recipients refused by rule "unknown-user": the work of an
//               envrcpt callback without its I/O
// Rcpt/counted  the same plus what milter/adapter.cpp adds to each callback: two
//               steady_clock reads and a histogram observation (its CallbackTimer) and
//               count_decision()
// Counting/threads:N  that addition alone, from N threads at once into one Stats (the
//               shards and the shared lock of a rule's lookup under contention)
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

#include "milter/stats.h"
#include "policy/conversation.h"
#include "store/memory_counter_store.h"

namespace {

std::shared_ptr<const pm::Policy> example_policy() {
    static std::shared_ptr<const pm::Policy> policy = [] {
        pm::LoadResult r = pm::load_policy_file(PM_EXAMPLES_DIR "/rules.conf");
        if (!r.policy) std::abort();
        return r.policy;
    }();
    return policy;
}

const std::vector<std::string> kRecipients = {"<alice@example.org>", "<bob@example.org>",
                                              "<nobody@example.com>", "<carol@example.org>"};

void rcpt(benchmark::State& state, bool counted) {
    pm::MemoryCounterStore store;
    pm::Conversation conv(example_policy(), store, pm::ConversationOptions{});
    conv.connect(pm::IpAddress::from_v4(0xC0000201), "client.example", 25);
    conv.helo("client.example");
    conv.mail("<sender@example.net>", "", 0, false);
    pm::Stats stats;
    std::size_t i = 0;
    for (auto _ : state) {
        auto start = std::chrono::steady_clock::now();
        pm::Decision d = conv.rcpt(kRecipients[i++ % kRecipients.size()]);
        if (counted) {
            stats.count_decision(d);
            stats.observe(pm::Callback::Envrcpt, std::chrono::steady_clock::now() - start);
        }
        benchmark::DoNotOptimize(d);
        if (i % 64 == 0) conv.mail("<sender@example.net>", "", 0, false);  // rcpt.count low
    }
}
void BM_RcptPlain(benchmark::State& state) {
    rcpt(state, false);
}
void BM_RcptCounted(benchmark::State& state) {
    rcpt(state, true);
}
BENCHMARK(BM_RcptPlain)->Name("Rcpt/plain");
BENCHMARK(BM_RcptCounted)->Name("Rcpt/counted");

pm::Stats g_shared;

void BM_Counting(benchmark::State& state) {
    pm::Decision d;
    d.stage = pm::Stage::Rcpt;
    d.verdict = pm::Verdict::Reject;
    d.rule_id = "unknown-user";
    d.reply = pm::Reply{550, {5, 1, 1}, "User unknown"};
    for (auto _ : state) {
        auto start = std::chrono::steady_clock::now();
        g_shared.count_decision(d);
        g_shared.observe(pm::Callback::Envrcpt, std::chrono::steady_clock::now() - start);
    }
}
BENCHMARK(BM_Counting)->Name("Counting")->ThreadRange(1, 8)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
