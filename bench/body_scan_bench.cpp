// SPDX-License-Identifier: BSD-2-Clause
// The cost of scanning a message body for `body contains` / `body matches` conditions
// (policy/body_scan.h), per MB of body, through the BodyScanner that Conversation feeds.
//
//   body_scan_bench [benchmark flags, e.g. --benchmark_repetitions=10]
//
// One iteration scans a 1 MiB body (76-character lines of words, CRLF, no match: every
// pattern runs over every byte, the worst case) fed in 64 KiB chunks, as libmilter passes
// it. The time of one iteration is the time per MiB; bytes_per_second the scan rate. Cases:
//   none            no pattern: feed() returns at once (the cost of a policy without one)
//   contains/N      N `body contains` texts of 20 bytes
//   matches/N       N `body matches` regexes (a word, a class, an alternation, anchors)
//   mixed           one contains and one matches
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "policy/body_scan.h"
#include "policy/policy.h"

namespace {

constexpr std::size_t kBodyBytes = 1 << 20;
constexpr std::size_t kChunk = 64 << 10;

std::string make_body() {
    static const char* const words[] = {
        "the",     "quick",  "brown",    "fox",    "jumps", "over",     "lazy",    "dog",
        "meeting", "report", "tomorrow", "please", "find",  "attached", "regards", "Hello"};
    std::mt19937 rng(17);
    std::string body, line;
    while (body.size() < kBodyBytes) {
        line.clear();
        while (line.size() < 70) {
            line += words[rng() % 16];
            line += ' ';
        }
        body += line + "\r\n";
    }
    body.resize(kBodyBytes);
    return body;
}

const std::string& body() {
    static const std::string b = make_body();
    return b;
}

std::string rules_with(int contains, int matches) {
    static const char* const regexes[] = {"/lottery winner/i", "/^claim your prize/",
                                          "/viagra|cialis|casino/i", "/[0-9]{4}-[0-9]{4}$/",
                                          "/free\\s+money/"};
    std::string cond;
    for (int i = 0; i < contains; ++i)
        cond += std::string(cond.empty() ? "" : " or ") + "body contains \"unlikely phrase " +
                std::to_string(1000 + i) + "\"";
    for (int i = 0; i < matches; ++i)
        cond += std::string(cond.empty() ? "" : " or ") + "body matches " + regexes[i % 5];
    return "rule \"b\" at message when " + cond + " reject\n";
}

void scan(benchmark::State& state, int contains, int matches) {
    std::shared_ptr<const pm::Policy> policy;
    if (contains + matches > 0) {
        pm::LoadResult r = pm::load_policy_text(rules_with(contains, matches), "bench.rules");
        if (!r.policy) {
            state.SkipWithError("rules do not load");
            return;
        }
        policy = r.policy;
    }
    std::vector<pm::BodyPattern> none;
    const std::vector<pm::BodyPattern>& patterns = policy ? policy->body_patterns() : none;
    const std::string& b = body();
    pm::BodyScanner scanner;
    for (auto _ : state) {
        scanner.start(patterns, kBodyBytes);
        for (std::size_t at = 0; at < b.size(); at += kChunk)
            scanner.feed(std::string_view(b).substr(at, kChunk));
        scanner.finish();
        benchmark::DoNotOptimize(scanner.hits().data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kBodyBytes));
}

void BM_BodyScan_None(benchmark::State& s) {
    scan(s, 0, 0);
}
void BM_BodyScan_Contains(benchmark::State& s) {
    scan(s, static_cast<int>(s.range(0)), 0);
}
void BM_BodyScan_Matches(benchmark::State& s) {
    scan(s, 0, static_cast<int>(s.range(0)));
}
void BM_BodyScan_Mixed(benchmark::State& s) {
    scan(s, 1, 1);
}

BENCHMARK(BM_BodyScan_None)->Name("BodyScan/none")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BodyScan_Contains)
    ->Name("BodyScan/contains")
    ->Arg(1)
    ->Arg(5)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BodyScan_Matches)
    ->Name("BodyScan/matches")
    ->Arg(1)
    ->Arg(5)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BodyScan_Mixed)->Name("BodyScan/mixed")->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
