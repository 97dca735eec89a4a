// SPDX-License-Identifier: BSD-2-Clause
// The greylist stores (policy-milter.rules(5), GREYLISTING; policy-milter.conf(5),
// state-dir and greylist-*):
//
//   MemoryGreylistStore   one daemon's entries in memory, bounded at max_entries, saved
//                         to and loaded from a state file (save(), load())
//   wall_clock_ms()       the clock of the greylist: wall time, which a restart keeps
//   greylist_state_file(state_dir)   the state file's path in state-dir
// store/factory.h makes one for each `store` (memory, or Redis: redis_greylist_store.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/counter_store.h"
#include "policy/greylist.h"

namespace pm {

// Milliseconds since the Unix epoch: an entry's times must mean the same after a restart.
Clock wall_clock_ms();

std::string greylist_state_file(const std::string& state_dir);  // STATE-DIR/greylist.state

// In-process greylist. Entries are kept in two lists: triplets that never passed, in the
// order they were first seen (restarted ones at the end), and passed triplets and client
// networks, in the order of their last use. Past max_entries a new entry drops the oldest
// never-passed triplet first, and a passed one only when none is left: a flood of unique
// triplets cannot push out the senders that retried. Entries past their window or expiry
// are swept from the front of both lists as the store is used. One lock: a decision is a
// hash lookup and two list splices.
class MemoryGreylistStore : public GreylistStore {
  public:
    explicit MemoryGreylistStore(std::size_t max_entries = 1'000'000,
                                 Clock clock = wall_clock_ms());
    std::string describe() const override;
    GreylistAnswer check(const GreylistRequest& request) override;

    std::size_t size() const;
    // Changes since the last save (or load): nothing to write when 0.
    std::uint64_t unsaved() const override;
    bool keeps_state() const override { return true; }
    std::size_t size_hint() const override { return size(); }

    // Writes every live entry to `path` atomically: a temporary file beside it, fsync,
    // rename, fsync of the directory. Throws std::runtime_error with the reason.
    void save(const std::string& path) override;
    // Replaces the entries with those of `path`. A missing file is an empty store (true,
    // `why` empty); a file that does not read back whole (corrupt, truncated, another
    // format) leaves the store empty: false with the reason in `why`.
    bool load(const std::string& path, std::string& why) override;

  private:
    enum class Kind : unsigned char { Pending, Passed, Client };
    struct Node {
        GreylistKey key;
        Kind kind = Kind::Pending;
        GreylistEntry entry;      // Pending, Passed
        std::uint64_t count = 0;  // Client
    };
    using List = std::list<Node>;
    struct KeyHash {
        std::size_t operator()(const GreylistKey& k) const;
    };

    void put(const GreylistKey& key, Kind kind, const GreylistEntry& e, std::uint64_t count,
             bool to_back);
    void sweep(std::uint64_t now);
    void bound();
    List& list_of(Kind kind) { return kind == Kind::Pending ? pending_ : kept_; }

    std::size_t max_entries_;
    Clock clock_;
    mutable std::mutex mutex_;
    List pending_;  // never passed, oldest first
    List kept_;     // passed triplets and clients, least recently used first
    std::unordered_map<GreylistKey, List::iterator, KeyHash> index_;
    std::uint64_t changes_ = 0;
};

}  // namespace pm
