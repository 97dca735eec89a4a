// SPDX-License-Identifier: BSD-2-Clause
// Limit counters in Redis (store = redis://HOST:PORT/DB), shared by every MTA that points
// at the same Redis, database and key prefix.
//
// Layout: one hash per limit key, PREFIX + storage_key(key) (the limit's ID and its key
// values joined by \x1f, each part over 64 bytes as '#' and 128 bits of its SHA-256 in
// hex, at most 512 bytes), with one field per slot of a tenth of the window (the field is the
// slot's number since the epoch, in decimal) and the field "w" holding the slot length in ms. The
// count of a window is the sum of the current slot and the ten before it, exactly as in the
// in-memory store: it never lets more than the limit through in any window, and may refuse early by
// at most the events of the one slot that straddles the window's start. Slots that leave the window
// are deleted at the next add; the hash expires window + one slot after its last add. A different
// slot length (a reload changed the window) starts the key afresh. Time is the Redis server's
// (TIME), so the clocks of the MTAs do not matter.
//
// Every operation runs one Lua script, loaded once per connection with SCRIPT LOAD and
// called by its SHA1 (EVAL of the full text on NOSCRIPT, after a SCRIPT FLUSH). Commits
// (check_and_add) check every key against its max and add to all of them, or to none, in
// one atomic step on the server: two MTAs can never both take the last slot of a limit.
//
// No call blocks longer than the timeout (default 50 ms): connecting, the set-up
// commands (AUTH, SELECT, SCRIPT LOAD) and the script's reply all share one deadline.
// Connections are pooled (one per concurrent caller; idle ones are kept). After a
// failure the store does not try to reconnect for 100 ms, doubling up to 500 ms while
// Redis stays away; meanwhile calls fail at once with StoreError, so MTA threads are not
// held up, and limits work again at most half a second after Redis is back (given
// traffic). A pooled connection found dead (Redis restarted) is retried once on a fresh
// connection within the same deadline; if Redis had run the script before the
// connection broke, that commit counts twice (the safe side).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "policy/counter_store.h"

struct redisContext;
struct redisReply;

namespace pm {

struct RedisSettings {
    std::string host = "127.0.0.1";  // an IP address: a name is resolved at every connect
    int port = 6379;
    int db = 0;
    std::string password;  // AUTH unless empty
    std::string prefix = "pm:";
    std::chrono::milliseconds timeout{50};
    std::chrono::milliseconds first_backoff{100};
    std::chrono::milliseconds max_backoff{500};
    std::size_t max_idle_connections = 128;

    std::string url() const;  // redis://HOST:PORT/DB
};

class RedisCounterStore : public CounterStore {
  public:
    // `clock` is for tests only (the script then uses the given milliseconds instead of
    // the server's TIME); empty: the server's clock.
    explicit RedisCounterStore(RedisSettings settings, Clock clock = {});
    ~RedisCounterStore() override;
    RedisCounterStore(const RedisCounterStore&) = delete;
    RedisCounterStore& operator=(const RedisCounterStore&) = delete;

    std::uint64_t count(const std::string& key, std::uint64_t window_seconds) override;
    std::optional<std::size_t> check_and_add(std::span<const CounterAdd> adds) override;
    // One script call each: inspect reads, reset reads and deletes the key in one step.
    CounterState inspect(const std::string& key, std::uint64_t window_seconds) override;
    CounterState reset(const std::string& key, std::uint64_t window_seconds) override;
    using CounterStore::add;

    std::string describe() const override;
    // PING; throws StoreError. For a check at start-up.
    bool probe() override;
    const RedisSettings& settings() const { return settings_; }

    static const char* script();  // the Lua text, for tests

    // Runs another Lua script (the greylist's, redis_greylist_store.h) on the same
    // connections, in one round trip: KEYS are prefixed, ARGV[1] is the test clock's
    // milliseconds (or empty), then `args`. An array of integers, or StoreError.
    std::vector<long long> eval(const std::string& script, const std::vector<std::string>& keys,
                                const std::vector<std::string>& args);

  private:
    using SteadyTime = std::chrono::steady_clock::time_point;
    struct Connection;
    struct ConnectionDeleter {
        void operator()(Connection* c) const;
    };
    using ConnectionPtr = std::unique_ptr<Connection, ConnectionDeleter>;

    CounterState state(const char* mode, const std::string& key, std::uint64_t window_seconds);
    // Runs the script with these keys and arguments (after the mode and the time).
    std::vector<long long> run(const char* mode, const std::vector<std::string>& keys,
                               const std::vector<std::string>& args);
    std::vector<long long> execute(std::vector<std::string>& words, const std::string* script);
    std::vector<long long> integers(const redisReply& r) const;
    ConnectionPtr acquire(SteadyTime deadline, bool& reused);
    ConnectionPtr connect(SteadyTime deadline);
    void release(ConnectionPtr c);
    void note_failure(const std::string& why);
    void note_success();

    RedisSettings settings_;
    Clock clock_;

    std::mutex mutex_;  // guards everything below
    std::vector<ConnectionPtr> idle_;
    std::uint64_t generation_ = 0;  // bumped when Redis fails: older connections are dropped
    bool down_ = false;
    SteadyTime next_attempt_{};
    std::chrono::milliseconds backoff_{};
    std::string last_error_;
};

}  // namespace pm
