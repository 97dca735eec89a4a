// SPDX-License-Identifier: BSD-2-Clause
// Glob lists against hostile values (issue 10, item 1): 2,000 globs against a 60 KB value
// chosen by the sender. Target: one lookup in at most 1 ms, whatever the value holds and
// however many globs match it.
//
//   glob_bench [benchmark flags, e.g. --benchmark_repetitions=5]
//
// Benchmarks: globs/LIST/VALUE, with
//   LIST   words     2,000 "*wNNNq<6 letters>*" globs, the audit's list
//          pieces    2,000 "*q*wNNNq<6 letters>*" globs: after the first "q" every glob
//                    waits for its second piece at once
//          anchored  2,000 "wNNN*@*.example" and "*.wNNN.example" globs (prefix, suffix)
//   VALUE  none      60 KB of random letters that match no glob
//          all       every glob's word, then filler, 60 KB: every glob matches
//          last      the random letters, then the last glob's word at the very end
// The figure is the time per lookup (ListMatcher::contains_text, lower case, as the
// evaluation calls it).
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "policy/diagnostics.h"
#include "policy/list_matcher.h"

namespace {

constexpr int kGlobs = 2000;
constexpr std::size_t kValueBytes = 60'000;

struct Case {
    pm::ListMatcher list{pm::ValueType::Text};
    std::vector<std::string> words;
};

std::string letters(std::mt19937& rng, std::size_t n) {
    std::uniform_int_distribution<int> letter('a', 'z');
    std::string s;
    s.reserve(n);
    while (s.size() < n) s += static_cast<char>(letter(rng));
    return s;
}

Case make_case(const std::string& kind) {
    std::mt19937 rng(42);
    Case c;
    pm::Diagnostics diags;
    pm::SourceLocation where{std::make_shared<const std::string>("bench"), 1, 1};
    for (int i = 0; i < kGlobs; ++i) {
        std::string w = "w" + std::to_string(i) + "q" + letters(rng, 6);
        c.words.push_back(w);
        std::string glob = kind == "words"    ? "*" + w + "*"
                           : kind == "pieces" ? "*q*" + w + "*"
                           : i % 2            ? "*." + w + ".example"
                                              : w + "*@*.example";
        c.list.add_item(glob, where, "header[\"Subject\"]", diags);
    }
    c.list.finish(where, diags);
    if (diags.error_count() != 0) std::abort();
    return c;
}

std::string make_value(const Case& c, const std::string& kind) {
    std::mt19937 rng(7);
    if (kind == "all") {
        std::string v;
        for (const auto& w : c.words) v += w + " ";
        while (v.size() < kValueBytes) v += "filler ";
        return v.substr(0, kValueBytes);
    }
    std::string v = letters(rng, kValueBytes - (kind == "last" ? c.words.back().size() : 0));
    if (kind == "last") v += c.words.back();
    return v;
}

void glob_lookup(benchmark::State& state, const std::string& list, const std::string& value,
                 bool expect) {
    static std::string built_kind;
    static Case* built = nullptr;
    if (built_kind != list) {
        delete built;
        built = new Case(make_case(list));
        built_kind = list;
    }
    std::string v = make_value(*built, value);
    bool ok = true;
    for (auto _ : state) {
        bool hit = built->list.contains_text(v);
        ok = ok && hit == expect;
        benchmark::DoNotOptimize(hit);
    }
    if (!ok) state.SkipWithError("wrong answer");
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * v.size()));
}

}  // namespace

BENCHMARK_CAPTURE(glob_lookup, words / none, std::string("words"), std::string("none"), false);
BENCHMARK_CAPTURE(glob_lookup, words / all, std::string("words"), std::string("all"), true);
BENCHMARK_CAPTURE(glob_lookup, words / last, std::string("words"), std::string("last"), true);
BENCHMARK_CAPTURE(glob_lookup, pieces / none, std::string("pieces"), std::string("none"), false);
BENCHMARK_CAPTURE(glob_lookup, pieces / all, std::string("pieces"), std::string("all"), true);
BENCHMARK_CAPTURE(glob_lookup, pieces / last, std::string("pieces"), std::string("last"), true);
BENCHMARK_CAPTURE(glob_lookup, anchored / none, std::string("anchored"), std::string("none"),
                  false);
BENCHMARK_CAPTURE(glob_lookup, anchored / all, std::string("anchored"), std::string("all"), false);

BENCHMARK_MAIN();
