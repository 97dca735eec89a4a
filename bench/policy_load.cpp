// SPDX-License-Identifier: BSD-2-Clause
// Measures what loading a policy costs: the wall time of pm::load_policy_file (parse,
// read the list files, compile the lists) and the memory the loaded policy holds.
//
//   policy_load [RULES] [--repeat N] [--mmap-threshold BYTES]
//
// RULES defaults to large.rules in the benchmark data directory. The first load runs in
// a fresh process and is the one whose memory is reported: the growth of VmRSS from
// before the load to after it (what the daemon keeps while the policy is in use) and of
// VmHWM (the peak during the load). N more loads (default 4) are timed only; each
// replaces the previous policy, as a reload does. Output is KEY=VALUE lines.
#include <malloc.h>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "bench/bench_util.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const char* type_key(pm::ValueType type) {
    switch (type) {
        case pm::ValueType::Ip: return "ip";
        case pm::ValueType::Host: return "host";
        case pm::ValueType::Address: return "address";
        case pm::ValueType::Text: return "text";
        case pm::ValueType::Number: return "number";
        case pm::ValueType::Bool: return "bool";
    }
    return "other";
}

}  // namespace

int main(int argc, char** argv) {
    std::string rules = pm::bench::data_dir() + "/large.rules";
    int repeat = 4;
    int mmap_threshold = 0;  // 0: glibc's default, dynamic
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--repeat" && i + 1 < argc) {
            repeat = std::atoi(argv[++i]);
        } else if (arg == "--mmap-threshold" && i + 1 < argc) {
            // What a daemon could set at start-up: a fixed threshold turns off glibc's
            // dynamic one, so every large block is mmapped and returned when freed.
            mmap_threshold = std::atoi(argv[++i]);
            mallopt(M_MMAP_THRESHOLD, mmap_threshold);
        } else if (arg == "--help" || arg == "-h" || (!arg.empty() && arg[0] == '-')) {
            std::cerr << "usage: policy_load [RULES] [--repeat N] [--mmap-threshold BYTES]\n";
            return arg == "--help" || arg == "-h" ? 0 : 2;
        } else {
            rules = arg;
        }
    }

    std::uint64_t rss_before = pm::bench::proc_status_bytes("VmRSS");
    std::uint64_t hwm_before = pm::bench::proc_status_bytes("VmHWM");
    auto start = std::chrono::steady_clock::now();
    std::shared_ptr<const pm::Policy> policy = pm::bench::load_or_die(rules);
    std::vector<double> times{seconds_since(start)};
    std::uint64_t rss_after = pm::bench::proc_status_bytes("VmRSS");
    std::uint64_t hwm_after = pm::bench::proc_status_bytes("VmHWM");
    struct mallinfo2 heap = mallinfo2();

    std::uint64_t entries = 0;
    std::cout << std::fixed << std::setprecision(3);
    std::cout << "rules=" << rules << '\n'
              << "statements=" << policy->rule_count() << '\n'
              << "mmap_threshold=" << (mmap_threshold ? std::to_string(mmap_threshold) : "dynamic")
              << '\n';
    for (const pm::ListMatcher* list : pm::bench::policy_lists(*policy)) {
        entries += list->size();
        if (list->size() >= 1000)
            std::cout << "list_" << type_key(list->type()) << "_entries=" << list->size() << '\n';
    }
    std::uint64_t file_bytes = pm::bench::list_files_bytes(*policy);
    std::uint64_t growth = rss_after > rss_before ? rss_after - rss_before : 0;
    std::uint64_t peak = hwm_after > rss_before ? hwm_after - rss_before : 0;
    std::cout << "list_entries=" << entries << '\n'
              << "list_file_bytes=" << file_bytes << '\n'
              << "rss_before_bytes=" << rss_before << '\n'
              << "rss_after_bytes=" << rss_after << '\n'
              << "rss_growth_bytes=" << growth << '\n'
              << "peak_growth_bytes=" << peak << '\n'
              << "hwm_before_bytes=" << hwm_before << '\n'
              << "malloc_in_use_bytes=" << heap.uordblks + heap.hblkhd << '\n'
              << "malloc_mmapped_bytes=" << heap.hblkhd << '\n'
              << "malloc_free_in_heap_bytes=" << heap.fordblks << '\n';
    if (entries > 0) {
        std::cout << "rss_bytes_per_entry=" << static_cast<double>(growth) / entries << '\n'
                  << "file_bytes_per_entry=" << static_cast<double>(file_bytes) / entries << '\n';
    }
    if (file_bytes > 0) {
        std::cout << "rss_to_files_ratio=" << static_cast<double>(growth) / file_bytes << '\n'
                  << "peak_to_files_ratio=" << static_cast<double>(peak) / file_bytes << '\n';
    }

    for (int i = 0; i < repeat; ++i) {
        auto t = std::chrono::steady_clock::now();
        auto next = pm::bench::load_or_die(rules);
        times.push_back(seconds_since(t));
        policy = std::move(next);  // the old policy is freed here, as after a reload
    }
    // After the reloads the heap holds the freed policies' memory as free chunks; what
    // glibc gives back when asked shows how much of the RSS is that, not live data.
    std::cout << "rss_after_reloads_bytes=" << pm::bench::proc_status_bytes("VmRSS") << '\n';
    malloc_trim(0);
    std::cout << "rss_after_reloads_trimmed_bytes=" << pm::bench::proc_status_bytes("VmRSS")
              << '\n';
    std::cout << "load_seconds=";
    for (std::size_t i = 0; i < times.size(); ++i) std::cout << (i ? "," : "") << times[i];
    std::cout << '\n';
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    double median = sorted.size() % 2
                        ? sorted[sorted.size() / 2]
                        : (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]) / 2;
    std::cout << "load_seconds_first=" << times.front() << '\n'
              << "load_seconds_median=" << median << '\n'
              << "load_seconds_min=" << sorted.front() << '\n';
    return 0;
}
