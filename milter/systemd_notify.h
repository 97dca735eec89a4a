// SPDX-License-Identifier: BSD-2-Clause
// systemd's notification protocol (sd_notify(3)), written out rather than linked from
// libsystemd: one datagram to $NOTIFY_SOCKET. policy-milter.service is Type=notify, so
// systemd counts the unit as started only when the socket listens and the policy is
// loaded (READY=1), shows a reload (RELOADING=1 ... READY=1), and restarts the daemon
// when the watchdog pings stop, which they do when the milter socket no longer answers.
// Outside systemd ($NOTIFY_SOCKET unset) every call here does nothing.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace pm {

// Sends `state` (lines such as "READY=1") to $NOTIFY_SOCKET. False when there is no such
// socket or the datagram could not be sent.
bool notify_systemd(std::string_view state);

// The address of the process's listening milter socket (the one smfi_opensocket made),
// to connect to: an inet socket bound to all interfaces is reached on the loopback.
struct ProbeAddress {
    sockaddr_storage address{};
    socklen_t length = 0;
    std::string text;  // for log lines
};
std::optional<ProbeAddress> listening_milter_address();

// One milter session on `to`, as an MTA opens it: option negotiation, then quit. Proves
// that libmilter still accepts connections and a session thread still answers. Returns
// why not, or nothing when it answered within `timeout`.
std::optional<std::string> probe_milter(const ProbeAddress& to, std::chrono::milliseconds timeout);

// smfi_stop(), without its wait of up to 5 s: smfi_stop() takes libmilter's listener
// mutex, which the listener holds through each 5-second poll of its socket, so a stop
// (and a restart, with mail tempfailed meanwhile) took that much longer. While it waits,
// sessions opened and quit at once on `listener` wake the poll; the listener drops the
// mutex while it starts a thread for each.
void stop_milter(const std::optional<ProbeAddress>& listener);

// The watchdog interval systemd asks for ($WATCHDOG_USEC, for this process if
// $WATCHDOG_PID says so), or nothing.
std::optional<std::chrono::microseconds> watchdog_interval();

// Sends WATCHDOG=1 every third of `interval`, each time only after `healthy` returned
// nothing; a failed check is logged and skips that ping, so two failures in a row let
// systemd kill and restart the daemon. Stops (and joins) when destroyed.
class Watchdog;

// Tells systemd the daemon is ready (READY=1 with a STATUS= line) and, when systemd asks
// for a watchdog, starts one that probes the milter socket at `probe`.
std::unique_ptr<Watchdog> systemd_ready(const std::string& status,
                                        const std::optional<ProbeAddress>& probe);

class Watchdog {
  public:
    using Check = std::function<std::optional<std::string>()>;
    Watchdog(std::chrono::microseconds interval, Check healthy);
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

  private:
    void run(std::chrono::microseconds interval, const Check& healthy);
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace pm
