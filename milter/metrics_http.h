// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	metrics_http - the Prometheus endpoint, GET /metrics (policy-milter(8), MONITORING)
// SYNOPSIS
//	#include "milter/metrics_http.h"
//
//	MetricsServer server;
//	server.bind(address, why);   // before the fork, while still root
//	server.start(why);           // after the fork: its threads
//	server.stop();               // at stop
// DESCRIPTION
//	cpp-httplib serves the statistics (milter/stats.h) in the Prometheus text format.
//	Only GET /metrics answers; anything else is 404. The server must never cost the MTA
//	anything: it has a fixed number of threads, short timeouts, no request body, and a
//	queue of waiting connections of fixed length, beyond which its accepting thread
//	serves the next connection itself, so that the kernel's backlog, not the daemon's
//	file descriptors, takes a flood.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "config/metrics_address.h"

namespace httplib {
class Server;
}

namespace pm {

// The server's limits, fixed: a scrape is one small GET every few seconds.
inline constexpr std::size_t kMetricsThreads = 2;
inline constexpr std::size_t kMetricsQueue = 8;
inline constexpr int kMetricsTimeoutSeconds = 5;
inline constexpr std::chrono::milliseconds kMetricsStopWait{2000};

class MetricsServer {
  public:
    MetricsServer();
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // Binds and listens; false with the reason in `why`. No thread yet: this is done
    // before the fork, as root, so that a port below 1024 works too.
    bool bind(const MetricsAddress& address, std::string& why);
    // Starts answering, on its own threads; false with the reason in `why`.
    bool start(std::string& why);
    // Stops accepting and gives the requests in progress kMetricsStopWait to finish. A
    // client that sends its request a byte at a time could hold a thread far longer
    // (httplib's timeouts are per read): then its threads are left to the process's exit,
    // which follows, rather than hold up the stop.
    void stop();
    bool bound() const { return bound_; }

  private:
    std::unique_ptr<httplib::Server> server_;
    std::thread listener_;
    std::shared_ptr<std::atomic<bool>> ended_;  // set by listener_ as it ends
    bool bound_ = false;
};

}  // namespace pm
