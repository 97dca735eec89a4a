// SPDX-License-Identifier: BSD-2-Clause
#include "store/memory_counter_store.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <random>
#include <unordered_map>
#include <vector>

namespace pm {

// --- MemoryCounterStore -----------------------------------------------------------------

namespace {

constexpr std::size_t kShards = 64;
// Expired counters at the old end of each queue removed per operation on a shard: the
// sweep keeps up with any rate of new keys (each operation adds at most one per key it
// names) without one caller paying for a large backlog.
constexpr int kSweepPerQueue = 8;

}  // namespace

struct MemoryCounterStore::Shard {
    struct DigestHash {
        std::size_t operator()(const Digest& d) const noexcept { return d.b; }
    };
    struct Entry;
    using Node = std::pair<const Digest, Entry>;
    struct Entry {
        Node* older = nullptr;  // neighbours in its queue, by time of the last add
        Node* newer = nullptr;
        // One slot more than the window holds: the window's start falls inside it.
        std::array<std::uint64_t, kSlotsKept> slots{};
        std::uint64_t newest_start_ms = 0;  // start time of the slot that holds `now`
        std::uint64_t slot_ms = 0;
        std::uint8_t newest = 0;  // index of that slot
        bool full = false;        // at its max: evicted last
    };
    // The counters of one slot length and fullness, oldest add first: the oldest is the
    // first whose window ends.
    struct Queue {
        std::uint64_t slot_ms = 0;
        bool full = false;
        Node* oldest = nullptr;
        Node* newest = nullptr;
    };

    std::mutex mutex;
    std::unordered_map<Digest, Entry, DigestHash> counters;
    std::vector<Queue> queues;  // a handful: one or two per window the policies use

    Queue& queue(std::uint64_t slot_ms, bool full) {
        for (auto& q : queues)
            if (q.slot_ms == slot_ms && q.full == full) return q;
        return queues.emplace_back(Queue{slot_ms, full, nullptr, nullptr});
    }
    void unlink(Node* n) {
        Entry& e = n->second;
        Queue& q = queue(e.slot_ms, e.full);
        (e.older ? e.older->second.newer : q.oldest) = e.newer;
        (e.newer ? e.newer->second.older : q.newest) = e.older;
        e.older = e.newer = nullptr;
        if (!q.oldest) queues.erase(queues.begin() + (&q - queues.data()));
    }
    void push_newest(Node* n) {
        Entry& e = n->second;
        Queue& q = queue(e.slot_ms, e.full);
        e.older = q.newest;
        e.newer = nullptr;
        (q.newest ? q.newest->second.newer : q.oldest) = n;
        q.newest = n;
    }
    void erase(Node* n) {
        unlink(n);
        counters.erase(n->first);
    }

    static void advance(Entry& c, std::uint64_t now) {
        if (now < c.newest_start_ms + c.slot_ms) return;
        std::uint64_t steps = (now - c.newest_start_ms) / c.slot_ms;
        if (steps >= c.slots.size()) {
            c.slots.fill(0);
        } else {
            for (std::uint64_t i = 0; i < steps; ++i) {
                c.newest = static_cast<std::uint8_t>((c.newest + 1) % c.slots.size());
                c.slots[c.newest] = 0;
            }
        }
        c.newest_start_ms += steps * c.slot_ms;
    }
    static std::uint64_t total(const Entry& c) {
        std::uint64_t sum = 0;
        for (std::uint64_t v : c.slots) sum = saturating_add(sum, v);
        return sum;
    }
    // The committed count, 0 for a key without a counter or one kept for another window
    // (a reload changed it: the key starts afresh).
    std::uint64_t committed(const Digest& d, std::uint64_t now, std::uint64_t slot_ms) {
        auto it = counters.find(d);
        if (it == counters.end() || it->second.slot_ms != slot_ms) return 0;
        advance(it->second, now);
        return total(it->second);
    }

    // The count and when it drops (CounterState): a slot j slots before the newest leaves
    // the window kSlotsKept - j slots after the newest one started.
    CounterState state(const Digest& d, std::uint64_t now, std::uint64_t slot_ms) {
        CounterState s;
        auto it = counters.find(d);
        if (it == counters.end() || it->second.slot_ms != slot_ms) return s;
        Entry& c = it->second;
        advance(c, now);
        s.count = total(c);
        for (std::size_t j = 0, seen = 0; j < kSlotsKept && s.count; ++j) {
            if (c.slots[(c.newest + kSlotsKept - j) % kSlotsKept] == 0) continue;
            std::uint64_t leaves = c.newest_start_ms + (kSlotsKept - j) * slot_ms;
            std::uint64_t in = leaves > now ? leaves - now : 0;
            if (seen++ == 0) s.zero_ms = in;
            s.next_drop_ms = in;  // the last one seen is the oldest
        }
        return s;
    }

    void sweep(std::uint64_t now) {
        for (std::size_t qi = 0; qi < queues.size();) {
            bool queue_gone = false;
            for (int i = 0; i < kSweepPerQueue && !queue_gone; ++i) {
                Node* n = queues[qi].oldest;
                advance(n->second, now);
                if (total(n->second) != 0) break;
                std::size_t before = queues.size();
                erase(n);
                queue_gone = queues.size() != before;  // it emptied: qi is the next one now
            }
            if (!queue_gone) ++qi;
        }
    }

    // Makes room for one counter: the one whose window ends first, among those not at
    // their max if there are any.
    void evict_one() {
        Node* victim = nullptr;
        bool victim_full = true;
        std::uint64_t victim_end = 0;
        for (const auto& q : queues) {
            const Entry& e = q.oldest->second;
            std::uint64_t end = saturating_add(e.newest_start_ms, e.slot_ms * e.slots.size());
            if (!victim || (victim_full && !q.full) ||
                (victim_full == q.full && end < victim_end)) {
                victim = q.oldest;
                victim_full = q.full;
                victim_end = end;
            }
        }
        if (victim) erase(victim);
    }

    void add(const Digest& d, const CounterAdd& a, std::uint64_t now, std::size_t max_keys) {
        std::uint64_t slot_ms = slot_length_ms(a.window_seconds);
        auto it = counters.find(d);
        if (it == counters.end()) {
            if (counters.size() >= max_keys) evict_one();
            it = counters.try_emplace(d).first;
        } else {
            unlink(&*it);
        }
        Entry& c = it->second;
        if (c.slot_ms != slot_ms) {
            c.slots.fill(0);
            c.newest = 0;
            c.slot_ms = slot_ms;
            c.newest_start_ms = now - now % slot_ms;
        }
        advance(c, now);
        c.slots[c.newest] = saturating_add(c.slots[c.newest], a.amount);
        c.full = a.max != CounterAdd::kNoMax && saturating_add(total(c), a.amount) > a.max;
        push_newest(&*it);
    }

    // A refused check: the counter (if any) is at its max, and stays until it is not.
    void mark_full(const Digest& d, std::uint64_t slot_ms) {
        auto it = counters.find(d);
        if (it == counters.end() || it->second.slot_ms != slot_ms || it->second.full) return;
        unlink(&*it);
        it->second.full = true;
        push_newest(&*it);
    }
};

MemoryCounterStore::MemoryCounterStore(Clock clock, std::size_t max_keys)
    : clock_(std::move(clock)),
      max_keys_per_shard_(std::max<std::size_t>(1, max_keys / kShards)),
      shards_(new Shard[kShards]) {
    std::random_device rd;
    for (std::size_t i = 0; i < sizeof seed_; i += 4) {
        auto r = static_cast<std::uint32_t>(rd());
        std::memcpy(seed_ + i, &r, 4);
    }
}

MemoryCounterStore::~MemoryCounterStore() = default;

MemoryCounterStore::Digest MemoryCounterStore::digest(std::string_view key) const {
    auto h = sha256({std::string_view(reinterpret_cast<const char*>(seed_), sizeof seed_), key});
    Digest d;
    std::memcpy(&d.a, h.data(), 8);
    std::memcpy(&d.b, h.data() + 8, 8);
    return d;
}

MemoryCounterStore::Shard& MemoryCounterStore::shard_of(const Digest& d) {
    return shards_[d.a % kShards];
}

std::uint64_t MemoryCounterStore::count(const std::string& key, std::uint64_t window_seconds) {
    Digest d = digest(key);
    std::uint64_t now = clock_();
    Shard& shard = shard_of(d);
    std::lock_guard lock(shard.mutex);
    shard.sweep(now);
    return shard.committed(d, now, slot_length_ms(window_seconds));
}

CounterState MemoryCounterStore::inspect(const std::string& key, std::uint64_t window_seconds) {
    Digest d = digest(key);
    std::uint64_t now = clock_();
    Shard& shard = shard_of(d);
    std::lock_guard lock(shard.mutex);
    return shard.state(d, now, slot_length_ms(window_seconds));
}

CounterState MemoryCounterStore::reset(const std::string& key, std::uint64_t window_seconds) {
    Digest d = digest(key);
    std::uint64_t now = clock_();
    Shard& shard = shard_of(d);
    std::lock_guard lock(shard.mutex);
    CounterState before = shard.state(d, now, slot_length_ms(window_seconds));
    // Under any window: a counter kept for another one (before a reload) goes as well.
    if (auto it = shard.counters.find(d); it != shard.counters.end()) shard.erase(&*it);
    return before;
}

std::optional<std::size_t> MemoryCounterStore::check_and_add(std::span<const CounterAdd> adds) {
    if (adds.empty()) return std::nullopt;
    std::vector<Digest> digests;
    digests.reserve(adds.size());
    for (const auto& a : adds) digests.push_back(digest(a.key));
    std::uint64_t now = clock_();
    // Lock every shard involved, each once, in shard order (no deadlock between callers).
    std::vector<std::size_t> order;
    order.reserve(adds.size());
    for (const auto& d : digests) order.push_back(d.a % kShards);
    std::sort(order.begin(), order.end());
    order.erase(std::unique(order.begin(), order.end()), order.end());
    std::vector<std::unique_lock<std::mutex>> locks;
    locks.reserve(order.size());
    for (std::size_t id : order) locks.emplace_back(shards_[id].mutex);
    for (std::size_t id : order) shards_[id].sweep(now);

    for (std::size_t i = 0; i < adds.size(); ++i) {
        const CounterAdd& a = adds[i];
        if (a.max == CounterAdd::kNoMax) continue;
        Shard& shard = shard_of(digests[i]);
        std::uint64_t slot_ms = slot_length_ms(a.window_seconds);
        if (saturating_add(shard.committed(digests[i], now, slot_ms), a.amount) > a.max) {
            shard.mark_full(digests[i], slot_ms);
            return i;
        }
    }
    for (std::size_t i = 0; i < adds.size(); ++i)
        shard_of(digests[i]).add(digests[i], adds[i], now, max_keys_per_shard_);
    return std::nullopt;
}

std::size_t MemoryCounterStore::key_count() {
    std::size_t n = 0;
    for (std::size_t i = 0; i < kShards; ++i) {
        std::lock_guard lock(shards_[i].mutex);
        n += shards_[i].counters.size();
    }
    return n;
}

}  // namespace pm
