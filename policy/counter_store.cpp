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

namespace {
std::uint64_t slot_length_ms(std::uint64_t window_seconds) {
    std::uint64_t window_ms = window_seconds * 1000;
    return std::max<std::uint64_t>(1, (window_ms + MemoryCounterStore::kSlotsPerWindow - 1) /
                                          MemoryCounterStore::kSlotsPerWindow);
}
}  // namespace

void MemoryCounterStore::advance(Counter& c, std::uint64_t now, std::uint64_t slot_ms) {
    if (c.slot_ms != slot_ms) {  // a reload changed the window: start this key afresh
        c = Counter{};
        c.slot_ms = slot_ms;
        c.newest_start_ms = now - now % slot_ms;
        return;
    }
    if (now < c.newest_start_ms + slot_ms) return;
    std::uint64_t steps = (now - c.newest_start_ms) / slot_ms;
    if (steps >= c.slots.size()) {
        c.slots.fill(0);
    } else {
        for (std::uint64_t i = 0; i < steps; ++i) {
            c.newest = (c.newest + 1) % c.slots.size();
            c.slots[c.newest] = 0;
        }
    }
    c.newest_start_ms += steps * slot_ms;
}

std::uint64_t MemoryCounterStore::total(const Counter& c) {
    std::uint64_t sum = 0;
    for (std::uint64_t v : c.slots) sum += v;
    return sum;
}

std::uint64_t MemoryCounterStore::count(const std::string& key, std::uint64_t window_seconds) {
    std::uint64_t now = clock_();
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mutex);
    auto it = shard.counters.find(key);
    if (it == shard.counters.end()) return 0;
    advance(it->second, now, slot_length_ms(window_seconds));
    return total(it->second);
}

void MemoryCounterStore::add(const std::string& key, std::uint64_t amount,
                             std::uint64_t window_seconds) {
    std::uint64_t now = clock_();
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mutex);
    auto it = shard.counters.find(key);
    if (it == shard.counters.end()) {
        if (shard.counters.size() >= max_keys_per_shard_) evict_oldest(shard);
        it = shard.counters.emplace(key, Counter{}).first;
    }
    Counter& c = it->second;
    advance(c, now, slot_length_ms(window_seconds));
    c.slots[c.newest] += amount;
    c.touched_ms = now;
}

void MemoryCounterStore::evict_oldest(Shard& shard) {
    auto oldest = std::min_element(
        shard.counters.begin(), shard.counters.end(),
        [](const auto& a, const auto& b) { return a.second.touched_ms < b.second.touched_ms; });
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
