// SPDX-License-Identifier: BSD-2-Clause
#include "milter/policy_delegation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "milter/decision_log.h"
#include "milter/socket_file.h"
#include "milter/stats.h"

namespace pm {

namespace {

std::string errno_text(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

bool unix_address(sockaddr_un& addr, const std::string& path) {
    std::memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return false;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return true;
}

// Whether a process accepts connections on the socket file `path` now.
bool someone_answers(const sockaddr_un& addr) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    bool live = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 ||
                errno == EAGAIN || errno == EINPROGRESS;
    close(fd);
    return live;
}

// Mode and owner through a descriptor of the socket just bound, never through the path
// (as the milter's and the control socket's: milter/socket_file.h).
bool give_socket(const std::string& path, mode_t mode, uid_t uid, gid_t gid, struct stat& st,
                 std::string& why) {
    int pfd = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0 || fstat(pfd, &st) != 0)
        why = errno_text(path.c_str());
    else if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1)
        why = path + ": not the socket just created";
    else if (chmod(("/proc/self/fd/" + std::to_string(pfd)).c_str(), mode) != 0)
        why = errno_text("chmod");
    else if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
             fchownat(pfd, "", uid, gid, AT_EMPTY_PATH) != 0)
        why = errno_text("chown");
    if (pfd >= 0) close(pfd);
    return why.empty();
}

int listen_unix(const std::string& path, mode_t mode, std::string& why) {
    sockaddr_un addr;
    if (!unix_address(addr, path)) {
        why = "policy-socket: the path is too long";
        return -1;
    }
    if (someone_answers(addr)) {
        why = "policy-socket unix:" + path + ": another process listens there";
        return -1;
    }
    struct stat st;
    if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path.c_str());  // stale
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        why = errno_text("socket");
        return -1;
    }
    mode_t old_mask = umask(~mode & 0777);
    int bound = bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    int bind_errno = errno;
    umask(old_mask);
    if (bound != 0 || listen(fd, SOMAXCONN) != 0) {
        errno = bound != 0 ? bind_errno : errno;
        why = "policy-socket unix:" + path + ": " + errno_text(bound != 0 ? "bind" : "listen");
        close(fd);
        return -1;
    }
    return fd;
}

int listen_inet(const SocketSpec& spec, std::string& why) {
    addrinfo hints{};
    hints.ai_family = spec.family == SocketFamily::Inet6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    std::string port = std::to_string(spec.port);
    int rc =
        getaddrinfo(spec.host.empty() ? nullptr : spec.host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0 || !found) {
        why = "policy-socket: " + spec.host + ": " + gai_strerror(rc);
        return -1;
    }
    int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (fd < 0 || bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        why = "policy-socket inet:" + port + "@" + spec.host + ": " + errno_text("bind");
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    return fd;
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// At most one line a second from `last`'s call site: a flood of connections or of garbage
// must not flood the log.
bool log_now(std::atomic<std::int64_t>& last) {
    std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::steady_clock::now().time_since_epoch())
                           .count();
    std::int64_t before = last.load(std::memory_order_relaxed);
    return now != before && last.compare_exchange_strong(before, now);
}
std::atomic<std::int64_t> g_full_logged{0}, g_closed_logged{0};

LogLevel lowest_logged_level() {
    if (spdlog::should_log(spdlog::level::debug)) return LogLevel::Debug;
    if (spdlog::should_log(spdlog::level::info)) return LogLevel::Info;
    return LogLevel::Warning;
}

// The same lines and counters as the milter's decisions (milter/decision_log.h, stats.h).
void log_and_count(const Decision& d, const Facts& facts, const PolicyRequest& r,
                   std::string_view recipient) {
    process_stats().count_decision(d);
    if (d.stage == Stage::Message && !d.refused()) process_stats().count_message();
    LogEvent event{r.get("queue_id"), recipient};
    for (const auto& line : decision_log_lines(d, facts, event, lowest_logged_level())) {
        switch (line.level) {
            case LogLevel::Debug: spdlog::debug("{}", line.text); break;
            case LogLevel::Info: spdlog::info("{}", line.text); break;
            case LogLevel::Warning: spdlog::warn("{}", line.text); break;
        }
    }
}

}  // namespace

PolicyServer::~PolicyServer() {
    stop();
}

bool PolicyServer::open(const SocketSpec& spec, mode_t mode, uid_t uid, gid_t gid,
                        std::string& why) {
    if (spec.family == SocketFamily::Unix) {
        if (auto problem = socket_directory_problem(spec.path, uid)) {
            why = "policy-socket unix:" + spec.path + ": " + *problem;
            return false;
        }
        fd_ = listen_unix(spec.path, mode, why);
        if (fd_ < 0) return false;
        path_ = spec.path;
        struct stat st;
        if (!give_socket(path_, mode, uid, gid, st, why)) {
            stop();
            return false;
        }
        dev_ = st.st_dev;
        ino_ = st.st_ino;
    } else {
        fd_ = listen_inet(spec, why);
        if (fd_ < 0) return false;
        int on = 1;  // replies are one small write each: no Nagle delay (accepted inherit it)
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) why = errno_text("eventfd");
    return stop_fd_ >= 0;
}

unsigned PolicyServer::port() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (fd_ < 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return 0;
}

std::size_t PolicyServer::connections() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return active_;
}

bool PolicyServer::start(PolicyServiceSettings settings, std::string& why) {
    // spdlog's registry is made at its first use: here, before the connection threads,
    // not by two of them at once (libspdlog's static is not seen by TSan, found by CI).
    spdlog::default_logger_raw();
    settings_ = std::move(settings);
    sessions_ = std::make_unique<SessionTable>(settings_.max_sessions, settings_.session_idle);
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
        why = std::string("cannot start the policy service's thread: ") + e.what();
        return false;
    }
    return true;
}

void PolicyServer::stop() {
    if (stop_fd_ >= 0) {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof one);
    }
    if (thread_.joinable()) thread_.join();
    {
        // Every connection's thread polls stop_fd_ too: each ends within a poll.
        std::unique_lock<std::mutex> lock(mutex_);
        all_done_.wait(lock, [this] { return active_ == 0; });
    }
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    if (!path_.empty()) {
        struct stat st;
        if (lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
            unlink(path_.c_str());
        path_.clear();
    }
    if (stop_fd_ >= 0) close(stop_fd_);
    stop_fd_ = -1;
}

void PolicyServer::run() {
    std::array<pollfd, 2> fds = {{{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}}};
    while (true) {
        if (poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
        if (fds[1].revents) break;
        if (!(fds[0].revents & POLLIN)) continue;
        int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) {
            if (errno == EMFILE || errno == ENFILE) usleep(10000);  // let connections end
            continue;
        }
        std::unique_lock<std::mutex> lock(mutex_);
        if (active_ >= settings_.max_connections) {
            lock.unlock();
            close(client);  // Postfix retries (smtpd_policy_service_try_limit)
            if (log_now(g_full_logged))
                spdlog::warn("policy service: {} connections already, one more closed",
                             settings_.max_connections);
            continue;
        }
        ++active_;
        lock.unlock();
        try {
            std::thread([this, client] { serve(client); }).detach();
        } catch (const std::system_error&) {
            finished(client);
        }
    }
}

void PolicyServer::finished(int client) {
    close(client);
    std::lock_guard<std::mutex> lock(mutex_);
    --active_;
    all_done_.notify_all();
}

void PolicyServer::serve(int client) {
    timeval tv{static_cast<time_t>(settings_.write_timeout.count() / 1000),
               static_cast<suseconds_t>(settings_.write_timeout.count() % 1000 * 1000)};
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    RequestReader reader;
    std::shared_ptr<DelegationSession> current;
    std::array<char, 16384> buffer;
    std::array<pollfd, 2> fds = {{{client, POLLIN, 0}, {stop_fd_, POLLIN, 0}}};
    bool open = true;
    while (open) {
        int ready = poll(fds.data(), fds.size(), static_cast<int>(settings_.idle_timeout.count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0 || fds[1].revents) break;  // idle too long, or stopping
        ssize_t got = read(client, buffer.data(), buffer.size());
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        std::string_view data(buffer.data(), static_cast<std::size_t>(got));
        while (open) {
            PolicyRequest r;
            std::string why, reply;
            RequestReader::Result result = reader.feed(data, r, why);
            if (result == RequestReader::Result::NeedMore) break;
            if (result == RequestReader::Result::Error || !answer_request(r, current, reply)) {
                if (log_now(g_closed_logged))
                    spdlog::warn("policy service: closing a connection: {}",
                                 why.empty() ? "not a request=smtpd_access_policy" : why);
                open = false;
            } else {
                open = write_all(client, reply);
            }
        }
    }
    finished(client);
}

// The session a request belongs to: that of its instance (a transaction's requests, also
// after a reconnect), else this connection's last one if it is the same SMTP session
// (requests before MAIL have no instance), else a new one.
std::shared_ptr<DelegationSession> PolicyServer::session_for(
    const PolicyRequest& r, std::shared_ptr<DelegationSession>& current) {
    auto now = SessionTable::Clock::now();
    std::string_view instance = r.get("instance");
    auto same = [&r](const std::shared_ptr<DelegationSession>& s) {
        if (!s) return false;
        std::lock_guard<std::mutex> lock(s->mutex);
        return s->same_client(r);
    };
    std::shared_ptr<DelegationSession> s;
    if (!instance.empty()) s = sessions_->find(instance, now);
    if (!same(s)) s = same(current) ? current : nullptr;
    if (!s) {
        s = std::make_shared<DelegationSession>(settings_.policy(), *settings_.store,
                                                settings_.options(), settings_.greylist);
        process_stats().count_connection();
    }
    if (!instance.empty()) sessions_->put(std::string(instance), s, now);
    current = s;
    return s;
}

bool PolicyServer::answer_request(const PolicyRequest& r,
                                  std::shared_ptr<DelegationSession>& current, std::string& reply) {
    if (r.get("request") != "smtpd_access_policy") return false;
    std::optional<Stage> stage = stage_of_state(r.get("protocol_state"));
    if (!stage) {  // a state this version does not know: no opinion
        reply = "action=DUNNO\n\n";
        return true;
    }
    if (*stage == Stage::Message) end_of_message_seen_ = true;
    try {
        std::shared_ptr<DelegationSession> s = session_for(r, current);
        std::lock_guard<std::mutex> lock(s->mutex);
        s->use_policy(settings_.policy());
        DelegationSession::Answer a = s->handle(*stage, r, end_of_message_seen_);
        log_and_count(a.decision, s->facts(), r, a.recipient);
        reply = "action=" + action_of(a.decision) + "\n\n";
    } catch (const std::exception& e) {
        spdlog::error("policy service: {}", e.what());
        reply = "action=DEFER_IF_PERMIT 4.3.0 Local error in processing, try again later\n\n";
    }
    return true;
}

}  // namespace pm
