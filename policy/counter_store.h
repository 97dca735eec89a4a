// Sliding-window counters for `limit` statements. The store is shared by every
// connection of the daemon and survives policy reloads.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
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

// One count to commit: `amount` more under `key`, provided the key's count over the last
// window_seconds plus `amount` stays within `max`.
struct CounterAdd {
    static constexpr std::uint64_t kNoMax = std::numeric_limits<std::uint64_t>::max();
    std::string key;
    std::uint64_t amount = 0;
    std::uint64_t window_seconds = 0;
    std::uint64_t max = kNoMax;
};

// Every operation may throw StoreError; none may block longer than the store's timeout.
class CounterStore {
  public:
    virtual ~CounterStore() = default;
    // The committed count for key over the last window_seconds.
    virtual std::uint64_t count(const std::string& key, std::uint64_t window_seconds) = 0;
    // Atomically, all or none: if every entry fits within its max, adds every amount and
    // returns nullopt; otherwise adds nothing and returns the index of the first entry
    // that does not fit. No other caller, in this process or (for a shared store) on
    // another machine, can slip in between the check and the add.
    virtual std::optional<std::size_t> check_and_add(std::span<const CounterAdd> adds) = 0;
    // Adds without a maximum.
    void add(const std::string& key, std::uint64_t amount, std::uint64_t window_seconds) {
        CounterAdd a{key, amount, window_seconds, CounterAdd::kNoMax};
        check_and_add({&a, 1});
    }
};

using Clock = std::function<std::uint64_t()>;  // milliseconds since an epoch
Clock system_clock_ms();

// In-process store. Each key keeps a ring of slots, each a tenth of the window; the
// count is the sum of the slots that overlap the window, so it can only err on the safe
// side: it never lets more through than the limit in any window, and may refuse early by
// at most the events of the one slot that straddles the window's start (a tenth of it).
// The key space is split over shards, each with its own lock, so connections rarely
// contend; a bound on keys evicts the least recently touched. check_and_add holds the
// locks of every shard it touches (taken in shard order) for the check and the add.
class MemoryCounterStore : public CounterStore {
  public:
    explicit MemoryCounterStore(Clock clock = system_clock_ms(), std::size_t max_keys = 1'000'000);

    std::uint64_t count(const std::string& key, std::uint64_t window_seconds) override;
    std::optional<std::size_t> check_and_add(std::span<const CounterAdd> adds) override;
    using CounterStore::add;
    std::size_t key_count();

    static constexpr std::size_t kSlotsPerWindow = 10;

  private:
    struct Counter {
        // One slot more than the window holds: the window's start falls inside it.
        std::array<std::uint64_t, kSlotsPerWindow + 1> slots{};
        std::size_t newest = 0;             // index of the slot that holds `now`
        std::uint64_t newest_start_ms = 0;  // start time of that slot
        std::uint64_t slot_ms = 0;
        std::uint64_t touched_ms = 0;
    };
    struct Shard {
        std::mutex mutex;
        std::unordered_map<std::string, Counter> counters;
    };
    static constexpr std::size_t kShards = 64;

    Shard& shard_for(const std::string& key);
    static void advance(Counter& c, std::uint64_t now, std::uint64_t slot_ms);
    static std::uint64_t total(const Counter& c);
    void evict_oldest(Shard& shard);

    Clock clock_;
    std::size_t max_keys_per_shard_;
    std::vector<Shard> shards_;
};

}  // namespace pm
