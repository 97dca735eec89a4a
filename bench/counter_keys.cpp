// SPDX-License-Identifier: BSD-2-Clause
// Memory of the in-memory counter store per key (issue 10, item 4): a limit keyed on a
// sender-chosen value (header["From"]) must cost no more per key than one keyed on a short
// address. Target: at most 300 bytes of RSS per key whatever the key's size, and 1M keys
// in at most 300 MB.
//
//   counter_keys KEYS KEY_BYTES
//
// Adds KEYS distinct keys of KEY_BYTES bytes each (the limit's ID, \x1f, and a value)
// to a MemoryCounterStore bounded at KEYS keys, through check_and_add as a commit does,
// then prints the RSS growth per key and the time per add. Then it adds KEYS more new
// keys, so that every one of them evicts one (the bound is full), and prints the time
// per add again: eviction must stay O(1).
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_util.h"
#include "store/memory_counter_store.h"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: counter_keys KEYS KEY_BYTES\n");
        return 2;
    }
    std::size_t keys = std::strtoull(argv[1], nullptr, 10);
    std::size_t key_bytes = std::strtoull(argv[2], nullptr, 10);
    std::string key = "by-from\x1f";
    if (key.size() < key_bytes) key.append(key_bytes - key.size(), 'x');

    std::uint64_t before = pm::bench::proc_status_bytes("VmRSS");
    pm::MemoryCounterStore store(pm::system_clock_ms(), keys);
    // CPU time of this process: the machine is shared, and wall time measures the others.
    auto cpu_ns = [] {
        timespec t{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
    };
    auto fill = [&](std::size_t from) {
        double start = cpu_ns();
        for (std::size_t i = from; i < from + keys; ++i) {
            // Vary the first bytes after the ID, as distinct senders would.
            std::string digits = std::to_string(i);
            key.replace(8, digits.size(), digits);
            pm::CounterAdd add{key, 1, 3600, 1'000'000};
            if (store.check_and_add({&add, 1})) return -1.0;
        }
        return (cpu_ns() - start) / static_cast<double>(keys);
    };
    double ns_fill = fill(0);
    std::uint64_t after = pm::bench::proc_status_bytes("VmRSS");
    std::size_t held = store.key_count();
    double ns_evict = fill(keys);
    std::printf(
        "keys %zu, key bytes %zu: %zu held, RSS +%.1f MB = %.0f bytes per key; "
        "%.0f ns CPU per add filling, %.0f ns CPU per add evicting (%zu held)\n",
        keys, key.size(), held, static_cast<double>(after - before) / 1e6,
        static_cast<double>(after - before) / static_cast<double>(keys), ns_fill, ns_evict,
        store.key_count());
    return ns_fill < 0 || ns_evict < 0 ? 1 : 0;
}
