// SPDX-License-Identifier: BSD-2-Clause
// Sliding-window counters for `limit` statements (policy-milter.rules(5), LIMITS): the
// interface the core uses, and what the stores behind it share. The store is shared by
// every connection of the daemon and survives policy reloads.
//
//   CounterStore        the interface the core uses: count, check_and_add (all or none),
//                       describe and probe; inspect and reset for `policy-milter --ctl`;
//                       StoreError when the store cannot answer
//   kSlotsPerWindow ... the sliding window both stores keep, and slot_length_ms()
//   storage_key()       the key as a store keeps it (long parts hashed)
//   sha256()            the digest storage_key() and the memory store's key table use
// The stores live in store/ (memory_counter_store.h, redis_counter_store.h), and
// store/factory.h chooses between them by name; the core never names one.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

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

// What inspect() finds under a key (policy-milter(8), --ctl limit-show). A sliding window
// has no single reset time: its count drops slot by slot as slots leave the window.
// next_drop_ms is when the oldest slot with a count leaves (the count first goes down,
// so a limit at its max lets an event through again); zero_ms is when the newest one
// leaves (the count is 0, if nothing more is added): what `limit-show` calls "resets in".
// Both are 0 when the count is 0.
struct CounterState {
    std::uint64_t count = 0;
    std::uint64_t next_drop_ms = 0;
    std::uint64_t zero_ms = 0;
};

// Every operation may throw StoreError; none may block longer than the store's timeout.
// Counts saturate (at 2^64-1 in memory, 2^53-1 in Redis): they never wrap. The daemon
// chooses a store by name (store/factory.h) and knows it only through this interface.
class CounterStore {
  public:
    virtual ~CounterStore() = default;
    // What the store is, for the log: "memory", or for Redis its URL, key prefix and
    // timeout, `redis://127.0.0.1:6379/0 (prefix "pm:", timeout 50 ms)`.
    virtual std::string describe() const = 0;
    // A first contact, for the log at start: true once the store answered, false for a
    // store in this process (there is nothing to reach). Throws StoreError when the
    // store cannot be reached; the daemon starts either way.
    virtual bool probe() { return false; }
    // The committed count for key over the last window_seconds.
    virtual std::uint64_t count(const std::string& key, std::uint64_t window_seconds) = 0;
    // Atomically, all or none: if every entry fits within its max, adds every amount and
    // returns nullopt; otherwise adds nothing and returns the index of the first entry
    // that does not fit. No other caller, in this process or (for a shared store) on
    // another machine, can slip in between the check and the add.
    virtual std::optional<std::size_t> check_and_add(std::span<const CounterAdd> adds) = 0;
    // The count under key over the last window_seconds, and when it drops (CounterState).
    virtual CounterState inspect(const std::string& key, std::uint64_t window_seconds) = 0;
    // Forgets every count under key, atomically; returns what inspect() would have said
    // just before.
    virtual CounterState reset(const std::string& key, std::uint64_t window_seconds) = 0;
    // Adds without a maximum.
    void add(const std::string& key, std::uint64_t amount, std::uint64_t window_seconds) {
        CounterAdd a{key, amount, window_seconds, CounterAdd::kNoMax};
        check_and_add({&a, 1});
    }
};

using Clock = std::function<std::uint64_t()>;  // milliseconds since an epoch
Clock system_clock_ms();

// --- shared by both stores --------------------------------------------------------------

// The sliding window, the one definition both stores (and the Redis store's Lua script)
// use: a window is counted in kSlotsPerWindow slots of slot_length_ms() each, plus the
// slot its start falls in, so a store keeps kSlotsKept slots per key.
inline constexpr std::size_t kSlotsPerWindow = 10;
inline constexpr std::size_t kSlotsKept = kSlotsPerWindow + 1;
// The longest slot: a window of over 300 years is kept as one of about 317.
inline constexpr std::uint64_t kMaxSlotMs = 1'000'000'000'000ull;
// The slot length of a window: a tenth of it, at least 1 ms, at most kMaxSlotMs.
std::uint64_t slot_length_ms(std::uint64_t window_seconds);

inline std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
    return a > std::numeric_limits<std::uint64_t>::max() - b
               ? std::numeric_limits<std::uint64_t>::max()
               : a + b;
}

// Key parts longer than this are stored as their hash.
inline constexpr std::size_t kMaxRawKeyPart = 64;
// The key as a store keeps it: every part (the limit's ID and each key value, separated
// by \x1f) longer than kMaxRawKeyPart bytes, or starting with '#', becomes '#' and the
// first 128 bits of its SHA-256 in hex. So a sender-chosen header value costs 33 bytes
// of key, not 100 KB, and a raw part can never be mistaken for a hashed one. A key
// still over 512 bytes (a value split by \x1f into many short parts) becomes its ID and
// one such hash of all its values.
std::string storage_key(std::string_view key);

// SHA-256 of the concatenated pieces. Throws StoreError when libcrypto cannot hash.
std::array<unsigned char, 32> sha256(std::initializer_list<std::string_view> pieces);

}  // namespace pm
