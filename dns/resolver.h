// SPDX-License-Identifier: BSD-2-Clause
// RESOLVER
//   Resolver(settings)           one c-ares channel and the thread that runs its event loop
//   start(name, txt), wait(...)  the DnsSource interface the core uses (policy/dns_lists.h)
//   stats()                      lookups, cache hits, queries sent, cache size
//
// The DNS lists' resolver, shared by every session of the daemon (and by --test): one
// thread runs the c-ares event loop, so a lookup never holds a milter thread, and all
// the lookups of a stage run in parallel. Answers are cached by TTL (at most
// kMaxCacheTtl, negative answers kNegativeTtl; failures are not cached) in a cache bounded
// in entries and bytes, the least recently used going first. A name in flight is asked
// once however many sessions want it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/dns_lists.h"

namespace pm {

struct ResolverSettings {
    std::string servers;  // parse_dns_servers() (config/dns_settings.h); empty: resolv.conf
    std::chrono::milliseconds timeout{2000};
    std::size_t max_entries = 100'000;
    std::size_t max_bytes = 32u << 20;
};

inline constexpr std::chrono::seconds kMaxCacheTtl{3600};
inline constexpr std::chrono::seconds kNegativeTtl{60};
// A-record answers kept per name: a list answers one to a few.
inline constexpr std::size_t kMaxDnsAddresses = 16;

struct ResolverStats {
    std::uint64_t lookups = 0;       // start() calls and names waited for without one
    std::uint64_t cache_hits = 0;    // of those, answered from the cache or already in flight
    std::uint64_t queries_sent = 0;  // DNS queries (A and TXT)
    std::uint64_t failures = 0;      // lookups that failed (timeout, SERVFAIL, REFUSED...)
    std::size_t entries = 0, bytes = 0;
};

class Resolver final : public DnsSource {
  public:
    // Throws std::runtime_error if c-ares cannot start (bad servers, no resolv.conf).
    explicit Resolver(const ResolverSettings& settings);
    ~Resolver() override;
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    void start(const std::string& name, bool txt) override;
    std::vector<DnsAnswer> wait(std::span<const std::string> names, bool txt,
                                std::chrono::steady_clock::time_point deadline) override;
    ResolverStats stats() const;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace pm
