#include "milter/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "config/logging.h"
#include "milter/adapter.h"
#include "policy/policy.h"

namespace pm {

namespace {

// What reload replaces as a whole: the compiled rules and the switches new connections get.
struct Running {
    std::shared_ptr<const Policy> policy;
    ConversationOptions options;
};

// Read by every connection, replaced by the signal thread: an atomic shared_ptr, so a
// connection never sees half a reload and a transaction in flight keeps its own policy.
std::atomic<std::shared_ptr<const Running>> g_running;

std::string describe(const Policy& policy) {
    std::string out = std::to_string(policy.rule_count()) + " rules from ";
    const auto& files = policy.source_files();
    for (std::size_t i = 0; i < files.size(); ++i) out += (i ? ", " : "") + files[i];
    return out;
}

std::string switches(const ConversationOptions& o) {
    return std::string("observe=") + (o.observe_all ? "yes" : "no") +
           " soft-bounce=" + (o.soft_bounce ? "yes" : "no");
}

// Loads the rules and logs every diagnostic; null if there was any error.
std::shared_ptr<const Policy> load_and_report(const std::string& rules_file) {
    LoadResult result = load_policy_file(rules_file);
    for (const auto& d : result.diagnostics.all()) {
        if (d.severity == Severity::Error)
            spdlog::error("{}", d.to_string());
        else
            spdlog::warn("{}", d.to_string());
    }
    return result.policy;
}

// --- socket and privileges -----------------------------------------------------------

// The file path of a unix: or local: socket spec, empty for inet sockets.
std::string unix_socket_path(const std::string& spec) {
    for (const char* prefix : {"unix:", "local:"})
        if (spec.rfind(prefix, 0) == 0) return spec.substr(std::strlen(prefix));
    return {};
}

// smfi_opensocket(true) removes a leftover socket file; first make sure no running
// instance still listens on it, or we would steal its socket.
bool socket_in_use(const std::string& path) {
    struct stat st;
    if (path.empty() || stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    bool listening = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    return listening;
}

std::optional<std::string> drop_privileges(const std::string& user,
                                           const std::string& socket_path) {
    errno = 0;
    passwd* pw = getpwnam(user.c_str());
    if (!pw) return "unknown user \"" + user + "\"";
    // The socket was created as root; the MTA connects as its own user, so the socket
    // must belong to the user (and group) the daemon runs as.
    if (!socket_path.empty() && chown(socket_path.c_str(), pw->pw_uid, pw->pw_gid) != 0)
        return "chown " + socket_path + ": " + std::strerror(errno);
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0)
        return "cannot become user \"" + user + "\": " + std::strerror(errno);
    return std::nullopt;
}

// --- signals --------------------------------------------------------------------------
//
// libmilter's smfi_main starts its own signal thread, which sigwait()s for SIGHUP,
// SIGTERM and SIGINT and stops the milter on any of them (libmilter/signal.c). A second
// sigwait() thread for SIGHUP would race with it: the kernel gives a process-directed
// signal to any one thread waiting for it. Linux, however, always offers such a signal
// first to the thread-group leader if that thread has it unblocked. So the main thread
// keeps the four signals unblocked, with handlers that only write the signal number to
// a pipe, and runs smfi_main in a second thread, which (with every thread libmilter
// starts from it) inherits a mask that blocks them. SA_NODEFER keeps the signal
// unblocked in the main thread even while its handler runs.

int g_signal_pipe[2] = {-1, -1};
constexpr char kMilterEnded = 'X';

extern "C" void forward_signal(int sig) {
    int saved = errno;
    char byte = static_cast<char>(sig);
    [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &byte, 1);
    errno = saved;
}

sigset_t daemon_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGHUP, SIGUSR1, SIGTERM, SIGINT}) sigaddset(&set, sig);
    return set;
}

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = forward_signal;
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGHUP, SIGUSR1, SIGTERM, SIGINT}) sigaction(sig, &sa, nullptr);
}

// --- reload ---------------------------------------------------------------------------

// Re-reads the command line and config file, then the rules and lists. Anything wrong
// keeps the running policy.
void reload(int argc, const char* const argv[], const Options& started_with) {
    Options fresh;
    std::ostringstream out, err;
    if (auto code = parse_options(argc, argv, fresh, out, err); code) {
        spdlog::error("reload failed, keeping the running policy: {}", err.str());
        return;
    }
    auto policy = load_and_report(fresh.rules_file);
    auto old = g_running.load();
    if (!policy) {
        spdlog::error("reload of {} failed, keeping the running policy ({})", fresh.rules_file,
                      describe(*old->policy));
        return;
    }
    auto next = std::make_shared<Running>(Running{policy, fresh.conversation()});
    g_running.store(next);
    if (fresh.socket != started_with.socket || fresh.user != started_with.user ||
        fresh.log != started_with.log)
        spdlog::warn("socket, user and log changes take effect only at the next start");
    if (fresh.log_level != started_with.log_level) setup_logging(started_with.log, fresh.log_level);
    spdlog::info("reloaded: {}; {}", describe(*policy), switches(next->options));
}

}  // namespace

int run_daemon(const Options& options, int argc, const char* const argv[]) {
    if (auto problem = setup_logging(options.log, options.log_level)) {
        std::cerr << "policy-milter: " << *problem << '\n';
        return 2;
    }
    // Broken rules stop the start with every diagnostic, on the terminal as well as in
    // the log (the log may be syslog).
    LoadResult loaded = load_policy_file(options.rules_file);
    for (const auto& d : loaded.diagnostics.all()) {
        if (options.log != "stderr") std::cerr << d << '\n';
        if (d.severity == Severity::Error)
            spdlog::error("{}", d.to_string());
        else
            spdlog::warn("{}", d.to_string());
    }
    if (!loaded.policy) {
        spdlog::error("not started: {} has errors", options.rules_file);
        if (options.log != "stderr")
            std::cerr << "policy-milter: not started: " << options.rules_file << " has errors\n";
        return 1;
    }
    g_running.store(std::make_shared<Running>(Running{loaded.policy, options.conversation()}));

    MemoryCounterStore store;  // one for all connections; survives reloads
    set_adapter_settings({[] { return g_running.load()->policy; },
                          [] { return g_running.load()->options; }, &store});

    auto fail = [&](const std::string& why) {
        spdlog::error("not started: {}", why);
        if (options.log != "stderr") std::cerr << "policy-milter: not started: " << why << '\n';
        return 1;
    };
    std::string socket_spec = options.socket;
    std::string socket_path = unix_socket_path(socket_spec);
    if (socket_in_use(socket_path)) return fail("another process is listening on " + socket_path);
    if (smfi_setconn(socket_spec.data()) != MI_SUCCESS)
        return fail("bad socket specification \"" + socket_spec + "\"");
    smfiDesc description = adapter_description();
    if (smfi_register(description) != MI_SUCCESS) return fail("smfi_register failed");
    // Open the socket while still root (a privileged port or a root-owned directory),
    // then drop privileges. umask: the MTA's group must be able to write to a unix socket.
    mode_t old_umask = umask(0117);
    bool opened = smfi_opensocket(true) == MI_SUCCESS;
    umask(old_umask);
    if (!opened) return fail("cannot open socket " + socket_spec);
    if (!options.user.empty())
        if (auto problem = drop_privileges(options.user, socket_path)) return fail(*problem);

    // Before any thread exists: fork into the background (threads do not survive a fork).
    // The working directory is kept so relative rules and config paths still resolve at
    // reload.
    if (!options.foreground && daemon(1, 0) != 0)
        return fail(std::string("cannot go to the background: ") + std::strerror(errno));

    if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) return fail("pipe2 failed");
    sigset_t signals = daemon_signals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // inherited by the milter threads
    std::atomic<int> milter_result{MI_SUCCESS};
    std::thread milter_thread([&milter_result] {
        milter_result = smfi_main();
        char byte = kMilterEnded;
        [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &byte, 1);
    });
    install_signal_handlers();
    pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);  // in the main thread only

    spdlog::info("started: {}; socket {}; {}", describe(*loaded.policy), socket_spec,
                 switches(options.conversation()));
    bool stopping = false;
    for (;;) {
        char byte = 0;
        ssize_t n = read(g_signal_pipe[0], &byte, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || byte == kMilterEnded) break;
        int sig = byte;
        if ((sig == SIGHUP || sig == SIGUSR1) && !stopping) {
            spdlog::info("reloading on {}", sig == SIGHUP ? "SIGHUP" : "SIGUSR1");
            try {
                reload(argc, argv, options);
            } catch (const std::exception& e) {
                spdlog::error("reload failed, keeping the running policy: {}", e.what());
            }
        } else if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
            stopping = true;
            spdlog::info("stopping on {}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            smfi_stop();
        }
    }
    milter_thread.join();
    spdlog::info("stopped: {}", describe(*g_running.load()->policy));
    if (!socket_path.empty()) unlink(socket_path.c_str());
    return milter_result == MI_SUCCESS ? 0 : 1;
}

}  // namespace pm
