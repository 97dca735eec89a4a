// SPDX-License-Identifier: BSD-2-Clause
// The greylist's state file (policy-milter.conf(5), state-dir, greylist-save-interval):
// loaded at start, saved every interval when something changed, and at stop. On the
// daemon's main thread; a save holds the store's lock only to copy the entries.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "policy/greylist.h"

namespace pm {

class GreylistSaver {
  public:
    // Loads STATE-DIR/greylist.state into `store` (a store that keeps no state: nothing).
    // A file that does not read back is logged and the store starts empty.
    void start(GreylistStore& store, const std::string& state_dir, std::uint64_t interval_s);
    void save_when_due();
    // Saves now if anything changed; a failure is logged, never thrown.
    void save();
    // Until the next save is due, for poll(); -1 when none ever is.
    int timeout_ms() const;

  private:
    GreylistStore* store_ = nullptr;
    std::string path_;
    std::chrono::seconds interval_{0};
    std::chrono::steady_clock::time_point next_{};
};

}  // namespace pm
