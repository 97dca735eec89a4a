// Sliding-window counters for `limit` statements. The store is shared by every
// connection of the daemon and survives policy reloads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace pm {

// A store that cannot answer (Redis down, timeout): the caller applies store-on-error.
class StoreError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class CounterStore {
public:
    virtual ~CounterStore() = default;
    // The committed count for key over the last window_seconds.
    virtual std::uint64_t count(const std::string& key, std::uint64_t window_seconds) = 0;
    virtual void add(const std::string& key, std::uint64_t amount,
                     std::uint64_t window_seconds) = 0;
};

using Clock = std::function<std::uint64_t()>;  // milliseconds since an epoch
Clock system_clock_ms();

// In-process store. The window is approximated with two fixed buckets (the previous
// window's count weighted by how much of it still overlaps the sliding window), which
// is exact for the current bucket and assumes even arrivals within the previous one.
// The key space is split over shards, each with its own lock, so connections rarely
// contend; a bound on keys evicts the least recently touched.
class MemoryCounterStore : public CounterStore {
public:
    explicit MemoryCounterStore(Clock clock = system_clock_ms(), std::size_t max_keys = 1'000'000);

    std::uint64_t count(const std::string& key, std::uint64_t window_seconds) override;
    void add(const std::string& key, std::uint64_t amount, std::uint64_t window_seconds) override;
    std::size_t key_count();

private:
    struct Counter {
        std::uint64_t bucket_start_ms = 0;  // start of the current fixed bucket
        std::uint64_t current = 0;
        std::uint64_t previous = 0;
        std::uint64_t touched_ms = 0;
    };
    struct Shard {
        std::mutex mutex;
        std::unordered_map<std::string, Counter> counters;
    };
    static constexpr std::size_t kShards = 64;

    Shard& shard_for(const std::string& key);
    static void roll(Counter& c, std::uint64_t now, std::uint64_t window_ms);
    static std::uint64_t estimate(const Counter& c, std::uint64_t now, std::uint64_t window_ms);
    void evict_oldest(Shard& shard, std::uint64_t now);

    Clock clock_;
    std::size_t max_keys_per_shard_;
    std::vector<Shard> shards_;
};

}  // namespace pm
