// SPDX-License-Identifier: BSD-2-Clause
#include "milter/listener.h"

#include <fcntl.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "milter/adapter.h"
#include "milter/socket_file.h"

namespace pm {

namespace {

// libmilter writes each reply with a write of its own; at end of message that is a
// modification (an added header), then the verdict. Over TCP, Nagle's algorithm holds the
// verdict back until the MTA acknowledges the header, and the MTA, only reading, delays
// that ACK by 40 ms: one stall per message (bench/RESULTS.md, notes on the throughput
// numbers). libmilter keeps the connections it accepts to itself, but on Linux an
// accepted socket inherits TCP_NODELAY from the listening one, and the socket that
// smfi_opensocket() just opened is the only listening socket of the process.
void set_nodelay_on_listening_sockets() {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (fs::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
        int fd = std::atoi(it->path().filename().c_str());
        int listening = 0, protocol = 0, on = 1;
        socklen_t size = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening)
            continue;
        size = sizeof protocol;
        if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &size) == 0 &&
            protocol == IPPROTO_TCP &&
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0)
            spdlog::warn("cannot set TCP_NODELAY on the milter socket: {}", std::strerror(errno));
    }
}

// Opens the socket while still root (a privileged port or a root-owned directory).
// smfi_opensocket(true) first removes a stale socket file (the checks made sure nobody
// listens on it). The umask gives a unix socket its mode from the start, so that it is
// never more open than socket-mode. libmilter says why it fails only through syslog:
// that goes to stderr too.
bool open_socket(const Options& options) {
    auto socket_mode = static_cast<mode_t>(options.socket_mode & 0777);
    mode_t old_umask = umask(~socket_mode & 0777);
    bool opened = with_libmilter_errors_on_stderr(
        options, [] { return smfi_opensocket(true) == MI_SUCCESS; });
    umask(old_umask);
    return opened;
}

// socket-mode, socket-group and --user: the MTA connects as its own user (Postfix:
// postfix), so it needs write permission on the socket through its group or the mode;
// the socket goes to --user (and to its group, unless socket-group gave it one), so that
// the daemon still owns it after dropping privileges.
std::optional<std::string> secure_unix_socket(const std::string& path, const Options& options,
                                              const StartupPlan& plan) {
    auto socket_mode = static_cast<mode_t>(options.socket_mode & 0777);
    uid_t uid = plan.uid ? *plan.uid : static_cast<uid_t>(-1);
    gid_t gid = plan.socket_gid ? *plan.socket_gid : plan.uid ? plan.gid : static_cast<gid_t>(-1);
    return secure_socket_file(path, socket_mode, uid, gid);
}

}  // namespace

Listener::~Listener() {
    // Only an exception between start() and stop() gets here with smfi_main() still
    // running: stop it, or the join would wait forever and the daemon hang, unkillable.
    if (thread_.joinable()) {
        smfi_stop();
        thread_.join();
    }
    for (int fd : ended_)
        if (fd >= 0) close(fd);
}

std::optional<ListenerFailure> Listener::open(const Options& options, const StartupPlan& plan) {
    std::string socket_spec = plan.socket->to_libmilter();
    socket_path_ = plan.socket->path;
    if (smfi_setconn(socket_spec.data()) != MI_SUCCESS)
        return ListenerFailure{"bad socket specification \"" + socket_spec + "\"", kExitConfig};
    smfiDesc description = adapter_description();
    if (smfi_register(description) != MI_SUCCESS) return ListenerFailure{"smfi_register failed"};
    if (!open_socket(options)) return ListenerFailure{"cannot open socket " + options.socket};
    set_nodelay_on_listening_sockets();
    probe_address_ = listening_milter_address();
    if (!socket_path_.empty())
        if (auto problem = secure_unix_socket(socket_path_, options, plan))
            return ListenerFailure{*problem, kExitConfig};
    return std::nullopt;
}

bool Listener::start(std::string& why) {
    if (pipe2(ended_, O_CLOEXEC) != 0) {
        why = "pipe2 failed";
        return false;
    }
    try {
        thread_ = std::thread([this] {
            succeeded_ = smfi_main() == MI_SUCCESS;
            [[maybe_unused]] ssize_t n = write(ended_[1], "X", 1);
        });
    } catch (const std::system_error& e) {  // a failed start, not std::terminate
        why = std::string("cannot start libmilter's thread: ") + e.what();
        return false;
    }
    return true;
}

bool Listener::join() {
    if (thread_.joinable()) thread_.join();
    return succeeded_;
}

void Listener::remove_socket() {
    if (!socket_path_.empty()) remove_own_socket();
}

}  // namespace pm
