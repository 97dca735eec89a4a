// SPDX-License-Identifier: BSD-2-Clause
// The greylist in Redis (policy-milter.rules(5), GREYLISTING; policy-milter.conf(5),
// store = redis://...): entries shared by every daemon that uses the same Redis and
// prefix, so a retry through another MTA passes. One round trip per triplet (a Lua
// script that is greylist_step() of policy/greylist.h), expiry by Redis's TTL: a triplet
// that never passed lives `window`, a passed one and a network's auto-whitelist count
// `expire` from their last use. Time is Redis's own (TIME): the MTAs' clocks need not
// agree. Keys: PREFIX gl:HEX (triplet), PREFIX gw:HEX (client network).
#pragma once

#include <memory>
#include <string>

#include "policy/greylist.h"
#include "store/redis_counter_store.h"

namespace pm {

class RedisGreylistStore : public GreylistStore {
  public:
    // `clock` as RedisCounterStore's: for tests only.
    explicit RedisGreylistStore(RedisSettings settings, Clock clock = {});
    std::string describe() const override { return redis_.describe(); }
    bool probe() override { return redis_.probe(); }
    GreylistAnswer check(const GreylistRequest& request) override;

    static const char* script();  // the Lua text, for tests

  private:
    RedisCounterStore redis_;  // its connections, timeout, backoff and script runner
};

}  // namespace pm
