// SPDX-License-Identifier: BSD-2-Clause
// The in-process counter store (policy-milter.rules(5), LIMITS; policy-milter.conf(5),
// store = memory): one daemon's counters, lost at exit.
//
//   MemoryCounterStore  a CounterStore (policy/counter_store.h) in memory, bounded at
//                       max_keys; key_count() for tests and the bench
// store/factory.h makes one for the name "memory"; it is built with or without Redis.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "policy/counter_store.h"

namespace pm {

// In-process store. Each key keeps a ring of slots, each a tenth of the window; the
// count is the sum of the slots that overlap the window, so it can only err on the safe
// side: it never lets more through than the limit in any window, and may refuse early by
// at most the events of the one slot that straddles the window's start (a tenth of it).
//
// A key is held as the first 128 bits of SHA-256(per-store random seed, key): about 170
// bytes per key whatever the key's length, and neither its shard (of 64, each with its
// own lock) nor its place in a shard's table can be chosen by a client. Counters whose
// window has passed are swept as the shard is used. A bound on keys (max_keys, spread
// over the shards) evicts, when a new key needs room, the counter whose window ends
// first; a counter that is at its max (the last add or check would not have fitted a
// second time) goes only when every other counter of its shard is at its max too, so a
// flood of new keys cannot reset a refused client. All of this is O(1) amortised.
// check_and_add holds the locks of every shard it touches (taken in shard order) for
// the check and the add.
class MemoryCounterStore : public CounterStore {
  public:
    explicit MemoryCounterStore(Clock clock = system_clock_ms(), std::size_t max_keys = 1'000'000);
    ~MemoryCounterStore() override;
    MemoryCounterStore(const MemoryCounterStore&) = delete;
    MemoryCounterStore& operator=(const MemoryCounterStore&) = delete;

    std::uint64_t count(const std::string& key, std::uint64_t window_seconds) override;
    std::optional<std::size_t> check_and_add(std::span<const CounterAdd> adds) override;
    CounterState inspect(const std::string& key, std::uint64_t window_seconds) override;
    CounterState reset(const std::string& key, std::uint64_t window_seconds) override;
    using CounterStore::add;
    std::string describe() const override { return "memory"; }
    std::size_t key_count();

  private:
    struct Shard;
    struct Digest {
        std::uint64_t a = 0, b = 0;
        bool operator==(const Digest&) const = default;
    };
    Digest digest(std::string_view key) const;
    Shard& shard_of(const Digest& d);

    Clock clock_;
    std::size_t max_keys_per_shard_;
    unsigned char seed_[16];
    std::unique_ptr<Shard[]> shards_;
};

}  // namespace pm
