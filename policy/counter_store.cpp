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

std::optional<std::size_t> MemoryCounterStore::check_and_add(std::span<const CounterAdd> adds) {
    if (adds.empty()) return std::nullopt;
    std::uint64_t now = clock_();
    // Lock every shard involved, each once, in shard order (no deadlock between callers).
    std::vector<std::size_t> shard_ids;
    shard_ids.reserve(adds.size());
    for (const auto& a : adds) shard_ids.push_back(std::hash<std::string>{}(a.key) % kShards);
    std::vector<std::size_t> order = shard_ids;
    std::sort(order.begin(), order.end());
    order.erase(std::unique(order.begin(), order.end()), order.end());
    std::vector<std::unique_lock<std::mutex>> locks;
    locks.reserve(order.size());
    for (std::size_t id : order) locks.emplace_back(shards_[id].mutex);

    for (std::size_t i = 0; i < adds.size(); ++i) {
        const CounterAdd& a = adds[i];
        if (a.max == CounterAdd::kNoMax) continue;
        auto& counters = shards_[shard_ids[i]].counters;
        std::uint64_t committed = 0;
        if (auto it = counters.find(a.key); it != counters.end()) {
            advance(it->second, now, slot_length_ms(a.window_seconds));
            committed = total(it->second);
        }
        if (committed + a.amount > a.max) return i;
    }
    for (std::size_t i = 0; i < adds.size(); ++i) {
        const CounterAdd& a = adds[i];
        Shard& shard = shards_[shard_ids[i]];
        auto it = shard.counters.find(a.key);
        if (it == shard.counters.end()) {
            if (shard.counters.size() >= max_keys_per_shard_) evict_oldest(shard);
            it = shard.counters.emplace(a.key, Counter{}).first;
        }
        Counter& c = it->second;
        advance(c, now, slot_length_ms(a.window_seconds));
        c.slots[c.newest] += a.amount;
        c.touched_ms = now;
    }
    return std::nullopt;
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
