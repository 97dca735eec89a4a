// SPDX-License-Identifier: BSD-2-Clause
#include "milter/control.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <utility>

#include "milter/socket_file.h"

namespace pm {

namespace {

std::string parent_of(const std::string& path) {
    auto slash = path.find_last_of('/');
    return slash == 0 ? "/" : path.substr(0, slash);
}

bool fill_address(sockaddr_un& addr, const std::string& path) {
    std::memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return false;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return true;
}

// Whether a process accepts connections on the socket file `path` now.
bool answers(const std::string& path) {
    sockaddr_un addr;
    if (!fill_address(addr, path)) return false;
    // Non-blocking: a live daemon with a full backlog (EAGAIN) must not hang this start.
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    bool live = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 ||
                errno == EAGAIN || errno == EINPROGRESS;
    close(fd);
    return live;
}

// A listening socket at `path`, mode 0600 from the start (no moment open to others); -1
// with `why`.
int bind_private(const std::string& path, std::string& why) {
    sockaddr_un addr;
    if (!fill_address(addr, path)) {
        why = "path too long";
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        why = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    mode_t old_mask = umask(0177);
    int bound = bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    int bind_errno = errno;
    umask(old_mask);
    if (bound != 0 || listen(fd, 8) != 0) {
        why = (bound != 0 ? "bind: " : "listen: ") +
              std::string(std::strerror(bound != 0 ? bind_errno : errno));
        close(fd);
        return -1;
    }
    return fd;
}

// Gives the socket just bound to uid:gid (-1: keep), through a descriptor of the entry
// itself as for the milter socket: a file swapped in under the path is never chowned.
// `st` becomes the file's, to recognise it at removal.
bool give_to(const std::string& path, uid_t uid, gid_t gid, struct stat& st, std::string& why) {
    int pfd = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0 || fstat(pfd, &st) != 0)
        why = std::strerror(errno);
    else if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1)
        why = "not the socket just created";
    // A default ACL on the directory overrides the umask at bind: the mode is set again,
    // through the descriptor's /proc link (fchmod refuses O_PATH), never through the path.
    else if ((st.st_mode & 07777) != 0600 &&
             chmod(("/proc/self/fd/" + std::to_string(pfd)).c_str(), 0600) != 0)
        why = std::string("chmod: ") + std::strerror(errno);
    else if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
             fchownat(pfd, "", uid, gid, AT_EMPTY_PATH) != 0)
        why = std::string("chown: ") + std::strerror(errno);
    if (pfd >= 0) close(pfd);
    return why.empty();
}

// PATH.lock, opened and locked: a regular file of this daemon's, mode 0600 (the stop
// does not need it, so it stays root's when made before privileges are dropped). Only briefly
// contended (another start, check and bind), so a lock still held after 2 s is someone else's
// doing: -1 with `why`.
int lock_beside(const std::string& path, uid_t uid, std::string& why) {
    std::string lock_path = path + ".lock";
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        why = lock_path + ": " + std::strerror(errno);
        if (fd >= 0) close(fd);
        return -1;
    }
    bool ours = st.st_uid == geteuid() || (uid != static_cast<uid_t>(-1) && st.st_uid == uid);
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || !ours || (st.st_mode & 077) != 0) {
        why = lock_path + ": not a private regular file of the daemon's user";
        close(fd);
        return -1;
    }
    for (int tries = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; ++tries) {
        if (errno != EWOULDBLOCK || tries == 40) {
            why = lock_path + ": cannot lock it: " +
                  (errno == EWOULDBLOCK ? std::string("held for 2 s") : std::strerror(errno));
            close(fd);
            return -1;
        }
        usleep(50000);  // pmccabe misreads a digit separator
    }
    return fd;
}

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `events` on fd until the deadline; false on timeout or once stop_fd is readable.
bool wait_for(int fd, short events, int stop_fd, Clock::time_point deadline) {
    for (;;) {
        int left = ms_left(deadline);
        if (left == 0) return false;
        pollfd p[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
        int n = poll(p, 2, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || p[1].revents) return false;
        return true;
    }
}

std::optional<std::string> read_request(int fd, int stop_fd, Clock::time_point deadline,
                                        std::string& out) {
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0) return std::nullopt;  // the client's end of the request
        if (n > 0) {
            if (out.size() + static_cast<std::size_t>(n) > kMaxRequestBytes)
                return "request over " + std::to_string(kMaxRequestBytes) + " bytes";
            out.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return std::string(std::strerror(errno));
        if (!wait_for(fd, POLLIN, stop_fd, deadline)) return std::string("request timed out");
    }
}

void write_reply(int fd, int stop_fd, Clock::time_point deadline, const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            wait_for(fd, POLLOUT, stop_fd, deadline))
            continue;
        return;  // the client went away or does not read: its loss
    }
}

ControlReply usage(const std::string& text) {
    return ControlReply{false, {"usage: " + text}};
}

}  // namespace

ControlReply dispatch_control(const ControlHandlers& h, const std::vector<std::string>& words) {
    const std::string& cmd = words.at(0);
    if (cmd == "stats") {
        if (words.size() != 1) return usage("stats");
        return h.stats ? h.stats() : ControlReply{false, {"stats are not available"}};
    }
    if (cmd == "reload") {
        if (words.size() != 1) return usage("reload");
        return h.reload ? h.reload() : ControlReply{false, {"reload is not available"}};
    }
    if (cmd == "limit-show" || cmd == "limit-reset") {
        if (words.size() < 2) return usage(cmd + " RULE KEY...");
        return h.limit ? h.limit(words) : ControlReply{false, {"limits are not available"}};
    }
    std::string shown;
    for (char c : cmd) shown += (c >= 0x21 && c < 0x7f) ? c : '?';
    return ControlReply{
        false, {"unknown command '" + shown + "' (stats, limit-show, limit-reset, reload)"}};
}

// --- ControlServer --------------------------------------------------------------------

ControlServer::~ControlServer() {
    stop();
}

ControlOpen ControlServer::open(const std::string& path, bool explicit_setting, uid_t uid,
                                gid_t gid) {
    using R = ControlOpen::Result;
    auto problem = [&](std::string why) {
        if (explicit_setting) return ControlOpen{R::Failed, "control socket " + path + ": " + why};
        return ControlOpen{
            R::Off, "control socket " + path + ": " + why + "; running without a control socket"};
    };
    std::string dir = parent_of(path);
    int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return problem("directory " + dir + ": " + std::strerror(errno));
    close(dir_fd);
    if (auto why = socket_directory_problem(path, uid == static_cast<uid_t>(-1) ? geteuid() : uid))
        return problem(*why);
    // Two daemons starting at once must not both find the file stale and take it from
    // each other: the check and the bind happen under a lock on a file of the daemon's
    // own, mode 0600 (a lock on the directory could be held by any user who can read it).
    std::string lock_why;
    int lock_fd = lock_beside(path, uid, lock_why);
    if (lock_fd < 0) return problem(lock_why);
    struct Unlock {
        int fd;
        ~Unlock() { close(fd); }  // closing drops the lock
    } unlock{lock_fd};
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) return problem("exists and is not a socket");
        if (answers(path)) return problem("another running daemon answers on it");
        if (unlink(path.c_str()) != 0)
            return problem(std::string("cannot remove the stale socket: ") + std::strerror(errno));
    }
    std::string why;
    int fd = bind_private(path, why);
    if (fd < 0) return problem(why);
    if (!give_to(path, uid, gid, st, why)) {
        close(fd);
        unlink(path.c_str());
        return problem(why);
    }
    path_ = path;
    fd_ = fd;
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    return ControlOpen{R::Opened, {}};
}

bool ControlServer::start(ControlHandlers handlers, std::string& why, ControlTimeouts timeouts) {
    if (fd_ < 0) return true;
    if (pipe2(stop_, O_CLOEXEC) != 0) {
        why = std::string("control socket: pipe: ") + std::strerror(errno);
        return false;
    }
    handlers_ = std::move(handlers);
    timeouts_ = timeouts;
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
        why = std::string("control socket: cannot start its thread: ") + e.what();
        return false;
    }
    return true;
}

void ControlServer::run() {
    for (;;) {
        pollfd p[2] = {{fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            spdlog::error("control socket: poll: {}", std::strerror(errno));
            return;
        }
        if (p[1].revents) return;
        int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) {
            // Out of descriptors (EMFILE) leaves the connection pending and the socket
            // readable: wait a little rather than spin on it.
            if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
                pollfd stop{stop_[0], POLLIN, 0};
                if (poll(&stop, 1, 100) > 0) return;
            }
            continue;
        }
        serve_one(client);
        close(client);
    }
}

void ControlServer::serve_one(int client) {
    // The socket is 0600; a peer that is neither root nor the daemon's user got in
    // through a mode changed by hand, and is refused all the same.
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        spdlog::warn("control socket: refused a client with uid {}", cred.uid);
        return;
    }
    std::string request;
    auto start = Clock::now();
    if (auto why = read_request(client, stop_[0],
                                start + std::chrono::milliseconds(timeouts_.request_ms), request)) {
        spdlog::warn("control socket: {}; connection closed", *why);
        return;
    }
    if (request.empty()) return;  // a probe: another daemon checking that this one is alive
    std::string why;
    auto words = parse_control_request(request, why);
    if (!words) {
        spdlog::warn("control socket: {}; connection closed", why);
        return;
    }
    ControlReply reply;
    try {
        reply = dispatch_control(handlers_, *words);
    } catch (const std::exception& e) {
        reply = ControlReply{false, {std::string("internal error: ") + e.what()}};
    }
    write_reply(client, stop_[0], Clock::now() + std::chrono::milliseconds(timeouts_.reply_ms),
                encode_control_reply(reply));
}

void ControlServer::stop() {
    if (thread_.joinable()) {
        char byte = 1;
        if (write(stop_[1], &byte, 1) < 0) {
        }  // a full pipe wakes the thread as well
        thread_.join();
    }
    for (int& fd : stop_)
        if (fd >= 0) close(std::exchange(fd, -1));
    if (fd_ < 0) return;
    // Only the file this daemon bound: a socket a later daemon bound there stays. It is
    // removed while it still answers, so that no starting daemon can have found it stale
    // and put its own in its place between the check and the unlink.
    int pfd = ::open(path_.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (pfd >= 0 && fstat(pfd, &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
        unlink(path_.c_str());
    if (pfd >= 0) close(pfd);
    close(std::exchange(fd_, -1));
}

// --- ReloadRequests -------------------------------------------------------------------

ReloadRequests::ReloadRequests() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

ReloadRequests::~ReloadRequests() {
    if (fd_ >= 0) close(fd_);
}

ControlReply ReloadRequests::request() {
    std::unique_lock lock(mutex_);
    if (fd_ < 0) return ControlReply{false, {"reload by control socket unavailable (eventfd)"}};
    if (stopping_) return ControlReply{false, {"the daemon is stopping"}};
    pending_ = true;
    std::uint64_t ticket = served_ + 1;
    std::uint64_t one = 1;
    if (write(fd_, &one, sizeof one) != static_cast<ssize_t>(sizeof one)) {
        pending_ = false;
        return ControlReply{false, {std::string("eventfd: ") + std::strerror(errno)}};
    }
    done_.wait(lock, [&] { return served_ >= ticket || stopping_; });
    if (served_ < ticket) return ControlReply{false, {"the daemon is stopping"}};
    return reply_;
}

void ReloadRequests::serve(const std::function<ControlReply()>& reload) {
    std::uint64_t count = 0;
    if (read(fd_, &count, sizeof count) < 0) {
    }  // EAGAIN: nothing was asked
    {
        std::lock_guard lock(mutex_);
        if (!pending_) return;
        pending_ = false;
    }
    ControlReply reply = reload();  // without the lock: request() only waits meanwhile
    std::lock_guard lock(mutex_);
    reply_ = std::move(reply);
    ++served_;
    done_.notify_all();
}

void ReloadRequests::shutdown() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    done_.notify_all();
}

// --- LogCapture -----------------------------------------------------------------------

namespace {
// Set only on the thread that asked for a capture: spdlog's cached thread ids cannot be
// trusted for this (the main thread keeps its parent's id across the fork, a number the
// kernel may give a session thread later), a thread_local flag can.
thread_local bool t_capturing = false;
// A reload with a million bad lines must not answer with a million lines.
constexpr std::size_t kMaxCapturedLines = 1000;
}  // namespace

// Every thread's every line passes here: one that is not the capturing thread's costs a
// thread_local test, no lock (null_mutex), so the MTA's threads never wait on a reload.
struct LogCapture::Sink : spdlog::sinks::base_sink<spdlog::details::null_mutex> {
    void start() {
        lines_.clear();
        dropped_ = 0;
        t_capturing = true;
    }
    std::vector<std::string> finish() {
        t_capturing = false;
        if (dropped_)
            lines_.push_back("... and " + std::to_string(dropped_) + " more lines in the log");
        return std::exchange(lines_, {});
    }

  protected:
    // The payload as logged: a diagnostic says its own "file:line:col: error:". Only the
    // capturing thread ever gets here past the test, so lines_ needs no lock.
    void sink_it_(const spdlog::details::log_msg& msg) override {
        if (!t_capturing) return;
        if (lines_.size() >= kMaxCapturedLines) {
            ++dropped_;
            return;
        }
        lines_.emplace_back(msg.payload.data(), msg.payload.size());
    }
    void flush_() override {}

  private:
    std::vector<std::string> lines_;
    std::size_t dropped_ = 0;
};

LogCapture& LogCapture::install() {
    static LogCapture capture = [] {
        LogCapture c;
        c.sink_ = std::make_shared<Sink>();
        spdlog::default_logger_raw()->sinks().push_back(c.sink_);
        return c;
    }();
    return capture;
}

void LogCapture::begin() {
    sink_->start();
}

std::vector<std::string> LogCapture::end() {
    return sink_->finish();
}

}  // namespace pm
