// SPDX-License-Identifier: BSD-2-Clause
// The counter store named by the `store` setting (policy-milter.conf(5), KEYS):
//
//   make_counter_store(settings, why)   the store: memory (memory_counter_store.h), or
//                                       Redis for redis://... (redis_counter_store.h)
//   store_setting_problem(value)        why a `store` value cannot be used, for the parser
//   check_store_settings(...)           what --check and the start check before running:
//                                       the password file, the Redis host's name
//   parse_redis_url(url, why)           where a redis:// URL points
//   redis_supported()                   whether this build has the Redis store
//
// The rest of the daemon knows a store only as a CounterStore (policy/counter_store.h),
// which describes and probes itself: which stores a build has (PM_WITH_REDIS) is known
// here alone.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/counter_store.h"
#include "policy/greylist.h"

namespace pm {

// What chooses and configures the store; the daemon's store and redis-* settings.
struct StoreSettings {
    std::string name = "memory";  // the `store` setting: memory or redis://HOST:PORT/DB
    std::string redis_prefix = "pm:";
    std::chrono::milliseconds redis_timeout{50};
    std::string redis_password;  // AUTH unless empty; read by check_store_settings
};

// The store of `settings`, created once for all connections; null with the reason in
// `why`. Nothing is contacted yet: CounterStore::probe() does that.
std::unique_ptr<CounterStore> make_counter_store(const StoreSettings& settings, std::string& why);

// The greylist store that goes with the same settings: memory (store/greylist_store.h,
// at most `max_entries`), or the Redis store beside the counters. Null with `why`.
std::unique_ptr<GreylistStore> make_greylist_store(const StoreSettings& settings,
                                                   std::size_t max_entries, std::string& why);

// The error of a `store` value ("store 'X' is not 'memory' or 'redis://HOST:PORT/DB'",
// "store 'X': no host", ...), or nullopt if a store can be made of it.
std::optional<std::string> store_setting_problem(const std::string& value);

// One failed check of the store's settings, for the start-up checks.
struct StoreSettingProblem {
    std::string key;  // the setting at fault: store or redis-password-file
    std::string message;
    bool transient = false;  // the resolver failed: a later start may succeed
};

// For a Redis store: the first line of `password_file` (if named), trailing blanks
// removed, into `password`; and that the Redis host resolves. Nothing for memory. Run
// before privileges are dropped, since the password file is usually root's.
std::vector<StoreSettingProblem> check_store_settings(const std::string& name,
                                                      const std::string& password_file,
                                                      std::string& password);

// Where store = redis://HOST[:PORT][/DB] points. HOST is an IPv4 address, a host name
// or an [IPv6] address; PORT defaults to 6379, DB to 0.
struct RedisAddress {
    std::string host;
    int port = 6379;
    int db = 0;
};
// The address, or nullopt with the reason in `why`.
std::optional<RedisAddress> parse_redis_url(const std::string& url, std::string& why);

// Whether this build has the Redis store (hiredis).
bool redis_supported();

}  // namespace pm
