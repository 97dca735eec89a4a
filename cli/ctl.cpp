// SPDX-License-Identifier: BSD-2-Clause
#include "cli/ctl.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "milter/control_protocol.h"

namespace pm {

namespace {

// A reload of a large policy takes seconds; a daemon that does not answer in this long
// is stuck.
constexpr auto kReplyTimeout = std::chrono::seconds(120);

// Usage the client can tell without the daemon: the command and how many arguments.
std::string usage_problem(const std::vector<std::string>& words) {
    const std::string& cmd = words[0];
    if (cmd == "stats" || cmd == "reload")
        return words.size() == 1 ? "" : cmd + " takes no arguments";
    if (cmd == "limit-show" || cmd == "limit-reset")
        return words.size() >= 2 ? "" : "usage: --ctl " + cmd + " RULE KEY...";
    return "unknown command '" + cmd + "' (stats, limit-show, limit-reset, reload)";
}

std::string connect_problem(int error, const std::string& path) {
    switch (error) {
        case ENOENT:
            return "no control socket " + path +
                   ": is policy-milter running, with this "
                   "control setting?";
        case ECONNREFUSED: return "nothing answers on " + path + ": policy-milter is not running";
        case EACCES:
        case EPERM: return "permission denied on " + path + ": run as root or as the daemon's user";
        default: return "cannot connect to " + path + ": " + std::strerror(error);
    }
}

struct Fd {
    int fd;
    ~Fd() {
        if (fd >= 0) close(fd);
    }
};

// Sends the request and reads everything until the daemon closes; empty `why` on success.
std::string exchange(const std::string& path, const std::string& request, std::string& reply) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return "control socket path too long: " + path;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    Fd s{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (s.fd < 0) return std::string("socket: ") + std::strerror(errno);
    if (connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return connect_problem(errno, path);
    for (std::size_t sent = 0; sent < request.size();) {
        ssize_t n = send(s.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return std::string("sending the request: ") + std::strerror(errno);
        sent += static_cast<std::size_t>(n);
    }
    shutdown(s.fd, SHUT_WR);
    auto deadline = std::chrono::steady_clock::now() + kReplyTimeout;
    char buf[4096];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{s.fd, POLLIN, 0};
        int ready = left.count() > 0 ? poll(&p, 1, static_cast<int>(left.count())) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) return "no reply from the daemon within 120 s";
        ssize_t n = recv(s.fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::string("reading the reply: ") + std::strerror(errno);
        if (n == 0) return {};
        reply.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace

int run_ctl(const Options& o, std::ostream& out, std::ostream& err) {
    if (std::string why = usage_problem(o.ctl); !why.empty()) {
        err << "policy-milter: --ctl: " << why << '\n';
        return 2;
    }
    if (o.control == "none") {
        err << "policy-milter: --ctl: control = none (" << o.config_file
            << "): the daemon has no control socket\n";
        return 1;
    }
    std::string why;
    auto request = encode_control_request(o.ctl, why);
    if (!request) {
        err << "policy-milter: --ctl: " << why << '\n';
        return 2;
    }
    std::string bytes;
    std::string path = o.control.substr(5);  // after "unix:", checked with the config file
    if (why = exchange(path, *request, bytes); !why.empty()) {
        err << "policy-milter: --ctl: " << why << '\n';
        return 1;
    }
    auto reply = parse_control_reply(bytes);
    if (!reply) {
        err << "policy-milter: --ctl: the daemon closed the connection without a complete "
               "reply (see its log)\n";
        return 1;
    }
    for (const auto& line : reply->lines) (reply->ok ? out : err) << line << '\n';
    return reply->ok ? 0 : 1;
}

}  // namespace pm
