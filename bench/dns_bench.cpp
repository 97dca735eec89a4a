// SPDX-License-Identifier: BSD-2-Clause
// The DNS lists' resolver (dns/resolver.h) against a DNS server on loopback (bench/
// run-dnsbl-bench starts an rbldnsd): lookups per second from T threads, each lookup a
// start() and a wait() as a stage makes them, over a pool of P names (so the cache answers
// all but the first lookup of each name), and the cache hit rate the resolver counts.
//
//   dns_bench --server 127.0.0.1:PORT --zone ZONE [--threads T] [--lookups N] [--pool P]
#include <getopt.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "dns/resolver.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
    std::string server, zone = "zen.test";
    int threads = 4;
    long lookups = 100000;
    long pool = 1000;
};

Settings parse(int argc, char** argv) {
    Settings s;
    static const option longs[] = {
        {"server", required_argument, nullptr, 's'},  {"zone", required_argument, nullptr, 'z'},
        {"threads", required_argument, nullptr, 't'}, {"lookups", required_argument, nullptr, 'n'},
        {"pool", required_argument, nullptr, 'p'},    {nullptr, 0, nullptr, 0}};
    for (int c; (c = getopt_long(argc, argv, "", longs, nullptr)) != -1;) {
        if (c == 's') s.server = optarg;
        if (c == 'z') s.zone = optarg;
        if (c == 't') s.threads = std::atoi(optarg);
        if (c == 'n') s.lookups = std::atol(optarg);
        if (c == 'p') s.pool = std::atol(optarg);
    }
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    Settings s = parse(argc, argv);
    pm::ResolverSettings rs;
    rs.servers = s.server;
    pm::Resolver resolver(rs);
    std::atomic<long> next{0}, failed{0};
    auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < s.threads; ++t)
        threads.emplace_back([&] {
            for (long i; (i = next++) < s.lookups;) {
                std::string name = std::to_string(i % s.pool % 250 + 1) + "." +
                                   std::to_string(i % s.pool / 250) + ".0.10." + s.zone;
                resolver.start(name, false);
                auto a = resolver.wait({&name, 1}, false, Clock::now() + std::chrono::seconds(2));
                if (a[0].status == pm::DnsAnswer::Status::Failed && failed++ == 0)
                    std::fprintf(stderr, "dns_bench: %s: %s\n", name.c_str(), a[0].error.c_str());
            }
        });
    for (auto& t : threads) t.join();
    double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    pm::ResolverStats st = resolver.stats();
    std::printf(
        "lookups=%ld seconds=%.3f lookups_per_s=%.0f queries_sent=%llu cache_hits=%llu "
        "hit_rate=%.4f failed=%ld entries=%zu bytes=%zu\n",
        s.lookups, seconds, static_cast<double>(s.lookups) / seconds,
        static_cast<unsigned long long>(st.queries_sent),
        static_cast<unsigned long long>(st.cache_hits),
        static_cast<double>(st.cache_hits) / static_cast<double>(st.lookups), failed.load(),
        st.entries, st.bytes);
    return failed.load() == 0 ? 0 : 1;
}
