// SPDX-License-Identifier: BSD-2-Clause
#include "milter/systemd_notify.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>

#include <libmilter/mfapi.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>

namespace pm {

namespace {

// A file descriptor closed when it goes out of scope.
struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

std::string errno_text() {
    return std::strerror(errno);
}

// Waits until `fd` is ready for `events` or the deadline passes.
bool wait_ready(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, events, 0};
        int n = poll(&p, 1, static_cast<int>(left.count()));
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) return false;
    }
}

void put_u32(std::string& out, std::uint32_t v) {
    std::uint32_t be = htonl(v);
    out.append(reinterpret_cast<const char*>(&be), sizeof be);
}

// A milter packet: 4-byte big-endian length of command and data, the command, the data.
std::string packet(char command, const std::string& data) {
    std::string out;
    put_u32(out, static_cast<std::uint32_t>(1 + data.size()));
    out += command;
    out += data;
    return out;
}

}  // namespace

bool notify_systemd(std::string_view state) {
    const char* where = std::getenv("NOTIFY_SOCKET");
    if (!where || !*where) return false;
    std::string path = where;
    if (path[0] != '/' && path[0] != '@') return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return false;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (path[0] == '@') addr.sun_path[0] = '\0';  // an abstract socket
    auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                         (path[0] == '@' ? 0 : 1));
    Fd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.fd < 0) return false;
    return sendto(fd.fd, state.data(), state.size(), MSG_NOSIGNAL,
                  reinterpret_cast<const sockaddr*>(&addr),
                  length) == static_cast<ssize_t>(state.size());
}

std::optional<ProbeAddress> listening_milter_address() {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (fs::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
        int fd = std::atoi(it->path().filename().c_str());
        int listening = 0;
        socklen_t size = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening)
            continue;
        ProbeAddress a;
        a.length = sizeof a.address;
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&a.address), &a.length) != 0) continue;
        std::array<char, INET6_ADDRSTRLEN> text{};
        if (a.address.ss_family == AF_UNIX) {
            auto* un = reinterpret_cast<sockaddr_un*>(&a.address);
            a.text = "unix:" + std::string(un->sun_path);
        } else if (a.address.ss_family == AF_INET) {
            auto* in = reinterpret_cast<sockaddr_in*>(&a.address);
            if (in->sin_addr.s_addr == htonl(INADDR_ANY))
                in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            inet_ntop(AF_INET, &in->sin_addr, text.data(), text.size());
            a.text = "inet:" + std::to_string(ntohs(in->sin_port)) + "@" + text.data();
        } else if (a.address.ss_family == AF_INET6) {
            auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.address);
            if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) in6->sin6_addr = in6addr_loopback;
            inet_ntop(AF_INET6, &in6->sin6_addr, text.data(), text.size());
            a.text = "inet6:" + std::to_string(ntohs(in6->sin6_port)) + "@" + text.data();
        } else {
            continue;
        }
        return a;
    }
    return std::nullopt;
}

namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

// Connects the non-blocking `fd` to `to` by the deadline; why not, or nothing.
std::optional<std::string> connect_by(int fd, const ProbeAddress& to, SteadyTime deadline) {
    if (connect(fd, reinterpret_cast<const sockaddr*>(&to.address), to.length) == 0)
        return std::nullopt;
    if (errno != EINPROGRESS && errno != EAGAIN) return "connect: " + errno_text();
    if (!wait_ready(fd, POLLOUT, deadline)) return "connect: timed out";
    int error = 0;
    socklen_t size = sizeof error;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) return std::string("connect: ") + std::strerror(error);
    return std::nullopt;
}

// Sends all of `out` by the deadline; why not, or nothing.
std::optional<std::string> send_by(int fd, const std::string& out, SteadyTime deadline) {
    for (std::size_t sent = 0; sent < out.size();) {
        if (!wait_ready(fd, POLLOUT, deadline)) return "send: timed out";
        ssize_t n = send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR && errno != EAGAIN) return "send: " + errno_text();
        if (n > 0) sent += static_cast<std::size_t>(n);
    }
    return std::nullopt;
}

// Fills `in` by the deadline; why not, or nothing.
std::optional<std::string> recv_by(int fd, std::span<char> in, SteadyTime deadline) {
    for (std::size_t got = 0; got < in.size();) {
        if (!wait_ready(fd, POLLIN, deadline)) return "no answer to option negotiation";
        ssize_t n = recv(fd, in.data() + got, in.size() - got, 0);
        if (n == 0) return "closed without an answer";
        if (n < 0 && errno != EINTR && errno != EAGAIN) return "recv: " + errno_text();
        if (n > 0) got += static_cast<std::size_t>(n);
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::string> probe_milter(const ProbeAddress& to, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    Fd fd(socket(to.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.fd < 0) return "socket: " + errno_text();
    if (auto failed = connect_by(fd.fd, to, deadline)) return failed;
    // SMFIC_OPTNEG: milter protocol version 6, every action and step offered, as an MTA
    // does. The answer is SMFIC_OPTNEG too. Then SMFIC_QUIT ends the session cleanly.
    std::string data;
    put_u32(data, 6);
    put_u32(data, 0x1ff);
    put_u32(data, 0x1fffff);
    if (auto failed = send_by(fd.fd, packet('O', data), deadline)) return failed;
    std::array<char, 5> header{};
    if (auto failed = recv_by(fd.fd, header, deadline)) return failed;
    if (header[4] != 'O') return std::string("unexpected answer '") + header[4] + "'";
    std::string quit = packet('Q', "");
    [[maybe_unused]] ssize_t n = send(fd.fd, quit.data(), quit.size(), MSG_NOSIGNAL);
    return std::nullopt;
}

void stop_milter(const std::optional<ProbeAddress>& listener) {
    if (!listener) {
        smfi_stop();
        return;
    }
    std::atomic<bool> stopped{false};
    auto wake = [&] {
        const std::string quit = packet('Q', "");
        for (int i = 0; i < 250 && !stopped.load(); ++i) {  // 5 s at most
            // Non-blocking: if another socket has taken the path and nobody accepts on
            // it, a blocking connect would wait for ever once its backlog is full, and so
            // would the stop (tests/protocol SocketFile.ExitLeavesASocketThatIsNotItsOwn).
            Fd fd(
                socket(listener->address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
            if (fd.fd >= 0 && connect(fd.fd, reinterpret_cast<const sockaddr*>(&listener->address),
                                      listener->length) == 0) [[maybe_unused]]
                ssize_t n = send(fd.fd, quit.data(), quit.size(), MSG_NOSIGNAL);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    };
    std::thread waker;
    try {
        waker = std::thread(wake);
    } catch (const std::system_error&) {  // no thread to be had (TasksMax): stop the slow way
        smfi_stop();
        return;
    }
    smfi_stop();
    stopped = true;
    waker.join();
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    const char* usec = std::getenv("WATCHDOG_USEC");
    if (!usec || !*usec) return std::nullopt;
    if (const char* pid = std::getenv("WATCHDOG_PID"); pid && *pid)
        if (std::strtoll(pid, nullptr, 10) != static_cast<long long>(getpid())) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    unsigned long long value = std::strtoull(usec, &end, 10);
    if (errno != 0 || *end != '\0' || value == 0) return std::nullopt;
    return std::chrono::microseconds(value);
}

std::unique_ptr<Watchdog> systemd_ready(const std::string& status,
                                        const std::optional<ProbeAddress>& probe) {
    notify_systemd("READY=1\nSTATUS=" + status);
    auto interval = watchdog_interval();
    if (!interval) return nullptr;
    if (!probe) {
        spdlog::warn("watchdog: no listening milter socket found to probe; pinging unchecked");
        return std::make_unique<Watchdog>(*interval, [] { return std::optional<std::string>(); });
    }
    // Each probe may take a sixth of the interval, so a hung one still leaves time for
    // the next ping.
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*interval / 6);
    spdlog::debug("watchdog: every {} ms, probing {}",
                  std::chrono::duration_cast<std::chrono::milliseconds>(*interval / 3).count(),
                  probe->text);
    return std::make_unique<Watchdog>(
        *interval, [address = *probe, timeout] { return probe_milter(address, timeout); });
}

Watchdog::Watchdog(std::chrono::microseconds interval, Check healthy)
    : thread_([this, interval, healthy = std::move(healthy)] { run(interval, healthy); }) {}

Watchdog::~Watchdog() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void Watchdog::run(std::chrono::microseconds interval, const Check& healthy) {
    auto period = interval / 3;
    bool failing = false;
    for (;;) {
        if (auto problem = healthy()) {
            spdlog::error("watchdog: the milter does not answer ({}); no keep-alive sent",
                          *problem);
            failing = true;
        } else {
            if (failing) spdlog::info("watchdog: the milter answers again");
            failing = false;
            notify_systemd("WATCHDOG=1");
        }
        std::unique_lock lock(mutex_);
        if (wake_.wait_for(lock, period, [this] { return stop_; })) return;
    }
}

}  // namespace pm
