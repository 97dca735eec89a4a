// SPDX-License-Identifier: BSD-2-Clause
// GREYLISTING (policy-milter.rules(5), GREYLISTING)
//   normalise_greylist_sender(sender)       BATV, SRS and VERP tags taken off, lower case
//   greylist_client_network(ip, settings)   the client's /24 or /64, as text
//   greylist_request(action, facts, rcpt, settings)   what a store is asked for one triplet
//   greylist_step(entry, request, now)      the one rule every store applies (pure)
//   GreylistStore                           the interface the core uses; store/ has them
//
// The first attempt of an unknown triplet (client network, sender, recipient) is
// refused for `delay`; a retry after the delay and within `window` passes it, and a
// passed triplet stays passed for `expire` after its last use. A client network with
// `auto_whitelist` passed triplets passes whatever it sends, for as long as it keeps
// using it within `expire`. Keys are hashes: a sender of 100 KB costs a store 16 bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy/facts.h"
#include "policy/ip.h"

namespace pm {

// The daemon's greylist settings (policy-milter.conf(5)): how a client network is formed
// and when it is whitelisted. Read at each connection, so a reload changes them.
struct GreylistSettings {
    unsigned ipv4_prefix = 24;
    unsigned ipv6_prefix = 64;
    std::uint32_t auto_whitelist = 5;  // passed triplets that whitelist a network; 0: never
};

// A triplet or a client network as a store keeps it: the first 128 bits of a SHA-256.
using GreylistKey = std::array<unsigned char, 16>;
std::string greylist_key_hex(const GreylistKey& key);
std::optional<GreylistKey> greylist_key_from_hex(std::string_view hex);

// What one greylist decision asks of a store. Times in milliseconds.
struct GreylistRequest {
    GreylistKey triplet{};
    GreylistKey client{};
    std::uint64_t delay_ms = 0;
    std::uint64_t window_ms = 0;
    std::uint64_t expire_ms = 0;
    std::uint32_t auto_whitelist = 0;
};

struct GreylistAnswer {
    enum class Why {
        New,          // first seen (or seen again after its window or expiry): refused
        Early,        // a retry before the delay: refused
        Retried,      // a retry after the delay, within the window: passes from now on
        Passed,       // passed before and used within expire
        Whitelisted,  // the client network is auto-whitelisted
    };
    bool pass = false;
    Why why = Why::New;
    std::uint64_t remaining_ms = 0;  // refused: how long until a retry can pass
};
std::string_view greylist_why_name(GreylistAnswer::Why why);

// One stored triplet. `passed` once a retry came after the delay; `dead_ms` is when the
// entry is of no more use (first + window before it passed, last use + expire after).
struct GreylistEntry {
    std::uint64_t first_ms = 0;
    std::uint64_t last_ms = 0;
    std::uint64_t dead_ms = 0;
    bool passed = false;
};
// A client network's auto-whitelist count: passed triplets, until `dead_ms`.
struct GreylistClient {
    std::uint64_t count = 0;
    std::uint64_t dead_ms = 0;
};

// The rule, on an entry that exists (`entry` null: none yet, one is made). Updates the
// entry and the client's count. The Redis store's Lua script is this function, in Lua.
GreylistAnswer greylist_step(std::optional<GreylistEntry>& entry,
                             std::optional<GreylistClient>& client, const GreylistRequest& r,
                             std::uint64_t now_ms);

// "prvs=0123abcdef=user@example.com" -> "user@example.com" (BATV), SRS0/SRS1 back to the
// original sender, "list-bounces+123-user=example.org@..." with its +extension removed
// and every run of digits in the local part as '#' (VERP, as postgrey does). Lower case.
// Anything that only looks like a tag is left as it is.
std::string normalise_greylist_sender(std::string_view lower_sender);

// The client's network: IPv4 masked to ipv4_prefix, IPv6 to ipv6_prefix; "" without one.
std::string greylist_client_network(const std::optional<IpAddress>& ip,
                                    const GreylistSettings& settings);

// The triplet of `recipient` in this session, and the client network's key.
GreylistKey greylist_triplet_key(const std::string& network, std::string_view sender,
                                 std::string_view recipient);
GreylistKey greylist_client_key(const std::string& network);

// Every operation may throw StoreError (policy/counter_store.h); the caller applies
// store-on-error. Shared by every connection; survives reloads.
class GreylistStore {
  public:
    virtual ~GreylistStore() = default;
    virtual std::string describe() const = 0;
    // As CounterStore::probe(): true once a remote store answered.
    virtual bool probe() { return false; }
    // The decision for one triplet, atomically: the entry is read and updated at once.
    virtual GreylistAnswer check(const GreylistRequest& request) = 0;
    // A store in this process keeps its entries in a state file (store/greylist_store.h);
    // a shared one has nothing to save. unsaved(): changes since the last save or load.
    virtual std::uint64_t unsaved() const { return 0; }
    virtual bool keeps_state() const { return false; }
    virtual std::size_t size_hint() const { return 0; }  // entries, for the log
    virtual void save(const std::string& /*path*/) {}
    virtual bool load(const std::string& /*path*/, std::string& /*why*/) { return true; }
};

}  // namespace pm
