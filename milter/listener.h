// SPDX-License-Identifier: BSD-2-Clause
// The daemon's libmilter side: registers the callbacks (milter/adapter.h), opens the
// milter socket as the settings ask (socket-mode, socket-group, user; TCP_NODELAY), and
// runs smfi_main() on a thread of its own until libmilter stops.
//
//   open(options, plan)  still root, before privileges are dropped: set, register, open
//   start(why)           after the fork into the background: smfi_main() on its thread
//   ended_fd()           readable once smfi_main() has returned, for the main loop's poll
//   join()               waits for that thread; whether smfi_main() returned MI_SUCCESS
//   remove_socket()      at stop: the unix socket's file, if it is still the daemon's
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <thread>

#include "config/options.h"
#include "milter/startup.h"
#include "milter/systemd_notify.h"

namespace pm {

// Why the listener could not be set up, with the exit code the start ends with.
struct ListenerFailure {
    std::string why;
    int exit_code = 1;
};

class Listener {
  public:
    Listener() = default;
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    std::optional<ListenerFailure> open(const Options& options, const StartupPlan& plan);
    bool start(std::string& why);
    int ended_fd() const { return ended_[0]; }
    bool join();
    void remove_socket();

    // Where the listening socket is reached, for systemd's watchdog and for the stop;
    // found at open(), since after a switch of user /proc/self/fd may be closed to us.
    const std::optional<ProbeAddress>& probe_address() const { return probe_address_; }

  private:
    std::string socket_path_;  // empty for inet sockets
    std::optional<ProbeAddress> probe_address_;
    int ended_[2] = {-1, -1};
    std::atomic<bool> succeeded_{true};
    std::thread thread_;
};

}  // namespace pm
