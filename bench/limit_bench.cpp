// SPDX-License-Identifier: BSD-2-Clause
// Limit checks per second: the in-memory counter store against the Redis one on loopback,
// through the pm::CounterStore interface the daemon uses.
//
//   limit_bench [--redis=HOST:PORT] [benchmark flags, e.g. --benchmark_repetitions=5]
//
// Without --redis (or $PM_BENCH_REDIS), only the memory store runs. bench/run-limit-bench
// starts a private redis-server on a free 127.0.0.1 port (no persistence) and passes it.
// The Redis store uses the key prefix "pm-bench:" and a timeout of 2 s (the daemon's
// default is 50 ms), so that a stall of the shared machine does not abort a run.
//
// Benchmarks: STORE/OPERATION/KEYS/real_time/threads:T, with
//   STORE      memory (MemoryCounterStore) or redis (RedisCounterStore)
//   OPERATION  count          the plain check: the committed count of one key, what a
//                             limit looks up at its stage (CounterStore::count)
//              check_and_add  one key checked against its max and added to, atomically
//                             (the commit of a message under one limit)
//              commit3        check_and_add of three keys at once: the commit of one
//                             message under three limits (messages per sender and hour,
//                             recipients per client and hour, bytes per client and day)
//   KEYS       hot            every call on the same key (one sender, one client)
//              100k           100,000 distinct keys per limit, visited in a fixed
//                             scattered order (stride 7919), each thread from its own
//                             offset; every key exists (filled before the benchmarks)
//   T          1 or 2 threads calling the same store object at once
// The figure is items_per_second: calls per second of all threads together (wall time).
// Every max is far above what a run adds, so check_and_add and commit3 always take the
// path that adds; a refusal would abort the benchmark.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "policy/counter_store.h"
#include "store/factory.h"
#include "store/memory_counter_store.h"

namespace {

constexpr std::size_t kDistinctKeys = 100'000;
constexpr std::size_t kStride = 7919;  // prime, so coprime with kDistinctKeys
constexpr std::uint64_t kMax = 1'000'000'000'000;

// The three counts of one message, keyed as pm::Conversation keys them: the limit's ID
// and the key values, joined by \x1f.
using MessageAdds = std::array<pm::CounterAdd, 3>;

MessageAdds message_adds(const std::string& sender, const std::string& client) {
    return {{
        {"sender-hourly\x1f" + sender, 1, 3600, kMax},
        {"client-hourly-rcpts\x1f" + client, 3, 3600, kMax},
        {"client-daily-bytes\x1f" + client, 20'000, 86'400, kMax},
    }};
}

struct Keys {
    std::vector<MessageAdds> hot;       // one entry
    std::vector<MessageAdds> distinct;  // kDistinctKeys entries
};

Keys make_keys() {
    Keys k;
    k.hot.push_back(message_adds("newsletter@sender-domain.example", "192.0.2.10"));
    k.distinct.reserve(kDistinctKeys);
    for (std::size_t i = 0; i < kDistinctKeys; ++i) {
        std::string client = "10." + std::to_string((i >> 16) & 0xff) + "." +
                             std::to_string((i >> 8) & 0xff) + "." + std::to_string(i & 0xff);
        k.distinct.push_back(message_adds("user" + std::to_string(i) + "@example.net", client));
    }
    return k;
}

const Keys& keys() {
    static const Keys k = make_keys();
    return k;
}

enum class Op { Count, CheckAndAdd, Commit3 };

void run(benchmark::State& state, pm::CounterStore* store, Op op,
         const std::vector<MessageAdds>* adds) {
    const std::size_t n = adds->size();
    std::size_t i = n == 1 ? 0
                           : static_cast<std::size_t>(state.thread_index()) * n /
                                 static_cast<std::size_t>(state.threads());
    std::uint64_t sink = 0;
    try {
        for (auto _ : state) {
            const MessageAdds& a = (*adds)[i];
            switch (op) {
                case Op::Count: sink += store->count(a[0].key, a[0].window_seconds); break;
                case Op::CheckAndAdd:
                    if (store->check_and_add({a.data(), 1})) throw pm::StoreError("refused");
                    break;
                case Op::Commit3:
                    if (store->check_and_add({a.data(), a.size()})) throw pm::StoreError("refused");
                    break;
            }
            if (n > 1) {
                i += kStride;
                if (i >= n) i -= n;
            }
        }
    } catch (const pm::StoreError& e) {
        state.SkipWithError(e.what());
    }
    benchmark::DoNotOptimize(sink);
    state.SetItemsProcessed(state.iterations());
}

// Every key of both key sets, added to once, so that the benchmarks measure counts that
// exist (what a busy MTA sees), not their creation.
void fill(pm::CounterStore& store, const char* name) {
    auto t0 = std::chrono::steady_clock::now();
    for (const auto* set : {&keys().hot, &keys().distinct})
        for (const auto& a : *set) store.check_and_add({a.data(), a.size()});
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cerr << "limit_bench: filled " << 3 * (keys().distinct.size() + 1) << " keys of the "
              << name << " store in " << s << " s\n";
}

void register_store(const std::string& name, pm::CounterStore* store) {
    const std::pair<const char*, Op> ops[] = {
        {"count", Op::Count}, {"check_and_add", Op::CheckAndAdd}, {"commit3", Op::Commit3}};
    const std::pair<const char*, const std::vector<MessageAdds>*> sets[] = {
        {"hot", &keys().hot}, {"100k", &keys().distinct}};
    for (const auto& [op_name, op] : ops)
        for (const auto& [set_name, set] : sets)
            for (int threads : {1, 2})
                benchmark::RegisterBenchmark((name + "/" + op_name + "/" + set_name).c_str(), run,
                                             store, op, set)
                    ->Threads(threads)
                    ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
    std::string redis;
    if (const char* env = std::getenv("PM_BENCH_REDIS")) redis = env;
    // Our own flag first; the rest is Google Benchmark's.
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg.rfind("--redis=", 0) == 0)
            redis = arg.substr(8);
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

    pm::MemoryCounterStore memory;
    fill(memory, "memory");
    register_store("memory", &memory);

    std::unique_ptr<pm::CounterStore> redis_store;
    if (!redis.empty()) {
        // HOST:PORT, as the store setting's redis://HOST:PORT (an IPv6 HOST in brackets).
        auto colon = redis.rfind(':');
        if (colon == std::string::npos) {
            std::cerr << "limit_bench: --redis wants HOST:PORT, got " << redis << "\n";
            return 2;
        }
        std::string host = redis.substr(0, colon);
        if (host.find(':') != std::string::npos) host = "[" + host + "]";
        pm::StoreSettings settings;
        settings.name = "redis://" + host + redis.substr(colon);
        settings.redis_prefix = "pm-bench:";
        settings.redis_timeout = std::chrono::milliseconds(2000);
        std::string why;
        redis_store = pm::make_counter_store(settings, why);
        if (!redis_store) {
            std::cerr << "limit_bench: " << why << "\n";
            return 2;
        }
        try {
            redis_store->probe();
            fill(*redis_store, "redis");
        } catch (const pm::StoreError& e) {
            std::cerr << "limit_bench: " << e.what() << "\n";
            return 1;
        }
        register_store("redis", redis_store.get());
    }

    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
