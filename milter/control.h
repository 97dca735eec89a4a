// SPDX-License-Identifier: BSD-2-Clause
// The control socket (`control = unix:PATH`; policy-milter(8), CONTROL SOCKET): a unix
// stream socket, mode 0600, owned by the daemon's user, on which `policy-milter --ctl`
// asks for stats, a limit's counter, or a reload. Served on a thread of its own, one
// connection at a time, each bounded in size and time, so that a stuck or hostile
// client delays only the next control client, never the MTA or the main loop.
//
//   ControlServer::open(...)   still root, before privileges are dropped: the socket
//   ControlServer::start(h)    after the fork: the thread, answering with the handlers
//   ControlServer::stop()      at stop: ends the thread, removes the socket file
//   ReloadRequests             a reload asked on the control thread, run by the main loop
//   LogCapture                 the lines the main thread logs during that reload
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "milter/control_protocol.h"

namespace pm {

// What answers the requests; each runs on the control thread.
struct ControlHandlers {
    std::function<ControlReply()> stats;
    std::function<ControlReply(const std::vector<std::string>&)> limit;  // limit-show/-reset
    std::function<ControlReply()> reload;
};

// The answer to one request's words (the command first): unknown commands and wrong
// argument counts are failed replies. Pure dispatch, for the protocol tests.
ControlReply dispatch_control(const ControlHandlers& handlers,
                              const std::vector<std::string>& words);

struct ControlOpen {
    enum class Result { Opened, Off, Failed } result = Result::Off;
    std::string message;  // Off: the warning; Failed: why the start stops
};

// How long one client may take to send its request, and to read the reply.
struct ControlTimeouts {
    int request_ms = 2000;
    int reply_ms = 5000;
};

class ControlServer {
  public:
    ControlServer() = default;
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Binds `path` with mode 0600 and gives it to uid:gid (-1: keep). `explicit_setting`:
    // a failure is Failed; for the built-in default it is Off (a missing directory,
    // another live daemon answering there), so a default never stops a start. A stale
    // socket file (nobody answers) is replaced.
    ControlOpen open(const std::string& path, bool explicit_setting, uid_t uid, gid_t gid);
    bool start(ControlHandlers handlers, std::string& why, ControlTimeouts timeouts = {});
    void stop();
    bool is_open() const { return fd_ >= 0; }
    const std::string& path() const { return path_; }

  private:
    void run();
    void serve_one(int client);

    std::string path_;
    int fd_ = -1;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    int stop_[2] = {-1, -1};
    ControlHandlers handlers_;
    ControlTimeouts timeouts_;
    std::thread thread_;
};

// A reload asked for on the control thread and run on the main thread, where SIGHUP's
// reload runs: the main loop polls fd() and calls serve().
class ReloadRequests {
  public:
    ReloadRequests();
    ~ReloadRequests();
    ReloadRequests(const ReloadRequests&) = delete;
    ReloadRequests& operator=(const ReloadRequests&) = delete;

    int fd() const { return fd_; }
    // Control thread: waits for the main loop's answer; a failed reply once stopping.
    ControlReply request();
    // Main thread: runs `reload` for a waiting request, if any, and hands over its reply.
    void serve(const std::function<ControlReply()>& reload);
    // At stop: every waiting and later request fails at once.
    void shutdown();

  private:
    int fd_ = -1;
    std::mutex mutex_;
    std::condition_variable done_;
    bool pending_ = false;
    bool stopping_ = false;
    std::uint64_t served_ = 0;  // replies handed over so far
    ControlReply reply_;
};

// Copies what one thread logs, while active, as the log shows it: installed once, before
// any other thread exists (the logger's sinks are not changed later).
class LogCapture {
  public:
    static LogCapture& install();
    // On the thread whose lines are wanted.
    void begin();
    std::vector<std::string> end();

    struct Sink;

  private:
    std::shared_ptr<Sink> sink_;
};

}  // namespace pm
