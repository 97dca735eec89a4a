#include "policy/counter_store.h"

#include <algorithm>

namespace pm {

Clock system_clock_ms() {
    return [] {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now().time_since_epoch())
                                              .count());
    };
}

MemoryCounterStore::MemoryCounterStore(Clock clock, std::size_t max_keys)
    : clock_(std::move(clock)),
      max_keys_per_shard_(std::max<std::size_t>(1, max_keys / kShards)),
      shards_(kShards) {}

MemoryCounterStore::Shard& MemoryCounterStore::shard_for(const std::string& key) {
    return shards_[std::hash<std::string>{}(key) % kShards];
}

void MemoryCounterStore::roll(Counter& c, std::uint64_t now, std::uint64_t window_ms) {
    if (now < c.bucket_start_ms + window_ms) return;
    std::uint64_t buckets_passed = (now - c.bucket_start_ms) / window_ms;
    c.previous = buckets_passed == 1 ? c.current : 0;
    c.current = 0;
    c.bucket_start_ms += buckets_passed * window_ms;
}

std::uint64_t MemoryCounterStore::estimate(const Counter& c, std::uint64_t now,
                                           std::uint64_t window_ms) {
    std::uint64_t into_bucket = now - c.bucket_start_ms;
    // The part of the previous bucket still inside the sliding window, rounded up so an
    // estimate never lets more through than the limit.
    std::uint64_t overlap = window_ms - std::min(into_bucket, window_ms);
    std::uint64_t weighted = (c.previous * overlap + window_ms - 1) / window_ms;
    return c.current + weighted;
}

std::uint64_t MemoryCounterStore::count(const std::string& key, std::uint64_t window_seconds) {
    std::uint64_t now = clock_();
    std::uint64_t window_ms = window_seconds * 1000;
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mutex);
    auto it = shard.counters.find(key);
    if (it == shard.counters.end()) return 0;
    roll(it->second, now, window_ms);
    return estimate(it->second, now, window_ms);
}

void MemoryCounterStore::add(const std::string& key, std::uint64_t amount,
                             std::uint64_t window_seconds) {
    std::uint64_t now = clock_();
    std::uint64_t window_ms = window_seconds * 1000;
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mutex);
    auto it = shard.counters.find(key);
    if (it == shard.counters.end()) {
        if (shard.counters.size() >= max_keys_per_shard_) evict_oldest(shard, now);
        it = shard.counters.emplace(key, Counter{now, 0, 0, now}).first;
    }
    roll(it->second, now, window_ms);
    it->second.current += amount;
    it->second.touched_ms = now;
}

void MemoryCounterStore::evict_oldest(Shard& shard, std::uint64_t) {
    auto oldest = std::min_element(shard.counters.begin(), shard.counters.end(),
                                   [](const auto& a, const auto& b) {
                                       return a.second.touched_ms < b.second.touched_ms;
                                   });
    if (oldest != shard.counters.end()) shard.counters.erase(oldest);
}

std::size_t MemoryCounterStore::key_count() {
    std::size_t n = 0;
    for (auto& shard : shards_) {
        std::lock_guard lock(shard.mutex);
        n += shard.counters.size();
    }
    return n;
}

}  // namespace pm
