// SPDX-License-Identifier: BSD-2-Clause
// The greylist stores (issue 16): decisions per second for new triplets and for triplets
// that passed already, in memory and (given a port) in Redis on loopback; the memory
// store's RSS per entry; the time to save and load its state file.
//
//   greylist_bench [N] [REDIS_PORT]      N triplets (default 1,000,000)
//
// bench/RESULTS.md, "Greylisting", has the numbers and how they were made.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "bench_util.h"
#include "policy/greylist.h"
#include "store/greylist_store.h"
#ifdef PM_BENCH_REDIS
#include "store/redis_greylist_store.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;

pm::GreylistRequest request(std::size_t i, std::uint64_t delay_ms) {
    pm::GreylistRequest r;
    std::string network = "198.51." + std::to_string(i % 256) + ".0/24";
    r.triplet = pm::greylist_triplet_key(network, "sender" + std::to_string(i) + "@example.net",
                                         "rcpt@example.org");
    r.client = pm::greylist_client_key(network);
    r.delay_ms = delay_ms;
    r.window_ms = 24 * 3600 * 1000ull;
    r.expire_ms = 35 * 24 * 3600 * 1000ull;
    r.auto_whitelist = 0;  // every triplet asks for itself
    return r;
}

// Decisions per second over n triplets i..i+n, each asked once.
double rate(pm::GreylistStore& store, std::size_t n, std::uint64_t delay_ms) {
    auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i) store.check(request(i, delay_ms));
    double s = std::chrono::duration<double>(Clock::now() - start).count();
    return static_cast<double>(n) / s;
}

void memory(std::size_t n) {
    std::uint64_t rss0 = pm::bench::proc_status_bytes("VmRSS");
    pm::MemoryGreylistStore store(n);
    double fresh = rate(store, n, 0);  // delay 0: new, then...
    std::uint64_t rss1 = pm::bench::proc_status_bytes("VmRSS");
    double passed = rate(store, n, 0);  // ...each retry passes: the entries become passed
    double again = rate(store, n, 0);   // passed triplets, the common case
    std::printf("memory: %zu triplets: new %.0f/s, first retry %.0f/s, passed %.0f/s\n", n, fresh,
                passed, again);
    std::printf("memory: RSS %.1f MB for %zu entries: %.0f bytes per triplet\n",
                static_cast<double>(rss1 - rss0) / 1e6, store.size(),
                static_cast<double>(rss1 - rss0) / static_cast<double>(store.size()));
    std::string path = std::filesystem::temp_directory_path() / "pm-greylist-bench.state";
    auto t0 = Clock::now();
    store.save(path);
    auto t1 = Clock::now();
    pm::MemoryGreylistStore loaded(n);
    std::string why;
    loaded.load(path, why);
    auto t2 = Clock::now();
    std::printf("memory: state file %.1f MB, save %.2f s, load %.2f s (%zu entries)\n",
                static_cast<double>(std::filesystem::file_size(path)) / 1e6,
                std::chrono::duration<double>(t1 - t0).count(),
                std::chrono::duration<double>(t2 - t1).count(), loaded.size());
    std::filesystem::remove(path);
}

#ifdef PM_BENCH_REDIS
void redis(std::size_t n, int port) {
    pm::RedisSettings s;
    s.port = port;
    s.prefix = "bench:";
    s.timeout = std::chrono::milliseconds(1000);
    pm::RedisGreylistStore store(s);
    double fresh = rate(store, n, 0);
    double passed = rate(store, n, 0);
    double again = rate(store, n, 0);
    std::printf(
        "redis: %zu triplets, one connection: new %.0f/s, first retry %.0f/s, "
        "passed %.0f/s\n",
        n, fresh, passed, again);
}
#endif

}  // namespace

int main(int argc, char** argv) {
    std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
    memory(n);
#ifdef PM_BENCH_REDIS
    if (argc > 2) redis(n / 10, std::atoi(argv[2]));
#endif
    return 0;
}
