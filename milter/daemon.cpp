// SPDX-License-Identifier: BSD-2-Clause
#include "milter/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#include "config/logging.h"
#include "milter/adapter.h"
#include "milter/signals.h"
#include "milter/socket_file.h"
#include "milter/startup.h"
#include "milter/systemd_notify.h"
#include "pm_version.h"  // generated: PM_VERSION
#include "policy/policy.h"
#ifdef PM_WITH_REDIS
#include "store/redis_counter_store.h"
#endif

namespace pm {

namespace {

// What reload replaces as a whole: the compiled rules and the switches new connections get.
struct Running {
    std::shared_ptr<const Policy> policy;
    ConversationOptions options;
};

// Read by every connection, replaced by the signal thread: a connection never sees half
// a reload and a transaction in flight keeps its own policy. A mutex rather than
// std::atomic<std::shared_ptr>: libstdc++ 12's atomic load releases its internal lock
// with a relaxed store, so its read is not ordered before the next reload's write (a
// race ThreadSanitizer reports, tests/protocol Signals.ReloadsChanging...). The lock is
// held only to copy the pointer.
class RunningSlot {
  public:
    std::shared_ptr<const Running> load() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return running_;
    }
    void store(std::shared_ptr<const Running> next) {
        std::shared_ptr<const Running> old;  // released outside the lock
        std::lock_guard<std::mutex> lock(mutex_);
        old = std::exchange(running_, std::move(next));
    }

  private:
    mutable std::mutex mutex_;
    std::shared_ptr<const Running> running_;
};
RunningSlot g_running;

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

// --- the counter store ----------------------------------------------------------------

// The settings that choose the store: a reload that changes them needs a restart, since
// the counters live in the store.
std::string store_settings(const Options& o) {
    if (o.store == "memory") return "memory";
    return o.store + " prefix=" + o.redis_prefix +
           " timeout=" + std::to_string(o.redis_timeout_ms) +
           "ms password-file=" + o.redis_password_file;
}

// The store of `store`, created once for all connections; null with the reason in `why`.
// The Redis password was read by the start-up checks, before privileges were dropped.
std::unique_ptr<CounterStore> make_store(const Options& o, const std::string& redis_password,
                                         std::string& why) {
    if (o.store == "memory") return std::make_unique<MemoryCounterStore>();
#ifdef PM_WITH_REDIS
    auto address = parse_redis_url(o.store, why);
    if (!address) return nullptr;
    RedisSettings settings;
    settings.host = address->host;
    settings.port = address->port;
    settings.db = address->db;
    settings.prefix = o.redis_prefix;
    settings.timeout = std::chrono::milliseconds(o.redis_timeout_ms);
    settings.password = redis_password;
    return std::make_unique<RedisCounterStore>(std::move(settings));
#else
    (void)redis_password;
    why = "store " + o.store + ": this build has no Redis support";
    return nullptr;
#endif
}

// A first contact, for the log only: the daemon starts either way, and store-on-error
// decides what a missing store means.
void check_store(CounterStore& store) {
#ifdef PM_WITH_REDIS
    if (auto* redis = dynamic_cast<RedisCounterStore*>(&store)) {
        try {
            redis->ping();
            spdlog::info("counter store {} (prefix \"{}\", timeout {} ms): connected",
                         redis->settings().url(), redis->settings().prefix,
                         redis->settings().timeout.count());
        } catch (const StoreError& e) {
            spdlog::warn("counter store not reachable at start: {}", e.what());
        }
    }
#else
    (void)store;
#endif
}

// --- socket and privileges -----------------------------------------------------------

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

std::optional<std::string> drop_privileges(const std::string& user) {
    errno = 0;
    passwd* pw = getpwnam(user.c_str());
    if (!pw) return "unknown user \"" + user + "\"";
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0)
        return "cannot become user \"" + user + "\": " + std::strerror(errno);
    return std::nullopt;
}

// --- reload ---------------------------------------------------------------------------

// Re-reads the command line and config file, then the rules and lists. Anything wrong
// keeps the running policy. Returns the policy it replaced, for the caller to retire.
std::shared_ptr<const Policy> reload(int argc, const char* const argv[],
                                     const Options& started_with) {
    Options fresh;
    std::ostringstream out, err;
    if (auto code = parse_options(argc, argv, fresh, out, err); code) {
        std::istringstream lines(err.str());  // one log line per diagnostic
        for (std::string line; std::getline(lines, line);) spdlog::error("{}", line);
        spdlog::error("reload failed, keeping the running policy ({})",
                      describe(*g_running.load()->policy));
        return nullptr;
    }
    auto policy = load_and_report(fresh.rules_file);
    auto old = g_running.load();
    if (!policy) {
        spdlog::error("reload of {} failed, keeping the running policy ({})", fresh.rules_file,
                      describe(*old->policy));
        return nullptr;
    }
    auto next = std::make_shared<Running>(Running{policy, fresh.conversation()});
    g_running.store(next);
    if (fresh.socket != started_with.socket || fresh.user != started_with.user ||
        fresh.socket_mode != started_with.socket_mode ||
        fresh.socket_group != started_with.socket_group || fresh.log != started_with.log ||
        fresh.pid_file != started_with.pid_file ||
        fresh.syslog_facility != started_with.syslog_facility ||
        fresh.syslog_name != started_with.syslog_name)
        spdlog::warn(
            "socket, user, pid-file, log and syslog changes take effect only at the next start");
    if (store_settings(fresh) != store_settings(started_with))
        spdlog::warn(
            "store settings changed ({}): they take effect only at the next start; "
            "counters stay in {}",
            store_settings(fresh), store_settings(started_with));
    // Only the level of the one logger changes: threads answering the MTA log meanwhile.
    if (fresh.log_level != log_level_name()) {
        set_log_level(fresh.log_level);
        spdlog::info("log level {}", log_level_name());
    }
    spdlog::info("reloaded: {}; {}", describe(*policy), switches(next->options));
    return old->policy;
}

// The connections still running a replaced policy hold it; the last one to end would
// free it in its callback, on the MTA's time (a large policy's lists take milliseconds
// to free). Instead the main thread keeps a reference and frees each one once it is the
// only holder left.
class RetiredPolicies {
  public:
    void add(std::shared_ptr<const Policy> policy) {
        if (policy) retired_.push_back(std::move(policy));
    }
    void free_unused() {
        std::erase_if(retired_, [](const auto& p) { return p.use_count() == 1; });
    }
    bool empty() const { return retired_.empty(); }

  private:
    std::vector<std::shared_ptr<const Policy>> retired_;
};

// The main thread only waits for signals and reloads: it runs at a lower CPU priority
// than the threads answering the MTA (on Linux, nice is per thread), so compiling a
// large policy under full load takes longer instead of delaying mail.
void lower_main_thread_priority() {
    auto tid = static_cast<id_t>(gettid());
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, tid);
    if (errno == 0 && setpriority(PRIO_PROCESS, tid, std::min(nice_now + 10, 19)) != 0)
        spdlog::debug("cannot lower the reload thread's priority: {}", std::strerror(errno));
}

// libmilter's smfi_main() returns without waiting for its session threads: one may still
// be inside a callback, using the counter store, the policy and the logger. Returning from
// run_daemon would destroy them under it (the store is a local, the rest are statics), so
// the process ends here, with the log flushed and without running any destructor.
[[noreturn]] void exit_leaving_sessions(int code) {
    spdlog::default_logger()->flush();
    std::cout.flush();
    std::cerr.flush();
#ifdef __SANITIZE_ADDRESS__
    __lsan_do_leak_check();  // what exit() would have checked (what is reachable is no leak)
#endif
    std::_Exit(code);
}

}  // namespace

int run_daemon(const Options& options, int argc, const char* const argv[]) {
    // First, before any thread exists: every thread inherits the block, and only the main
    // thread reads these signals, from its signalfd (milter/signals.cpp). One sent during
    // the start waits for the main loop.
    block_daemon_signals();
    // Every failure before the fork ends here: one line on stderr (the journal under
    // systemd) besides the log, and an exit code that says whether a restart can help.
    auto fail = [&](const std::string& why, int code) {
        spdlog::error("not started: {}", why);
        notify_systemd("STATUS=not started: " + why);  // kept by systemctl status
        if (options.log != "stderr") std::cerr << "policy-milter: not started: " << why << '\n';
        return code;
    };
    if (auto problem = setup_logging(options.log, options.log_level, options.syslog_name,
                                     options.syslog_facility)) {
        std::cerr << "policy-milter: not started: " << *problem << '\n';
        return kExitConfig;
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
    if (!loaded.policy) return fail(options.rules_file + " has errors", kExitConfig);
    g_running.store(std::make_shared<Running>(Running{loaded.policy, options.conversation()}));

    // What --check checks, checked the same way: user, group, socket, pid file, Redis.
    StartupPlan plan = check_startup(options, StartupPurpose::Start, loaded.policy.get());
    const StartupProblem* first_error = plan.first_error();
    for (const auto& p : plan.problems) {
        if (&p == first_error && p.where.empty()) continue;  // the "not started" line says it
        if (options.log != "stderr") std::cerr << p.to_string() << '\n';
        std::string line = p.where.empty() ? p.message : p.to_string();
        if (p.severity == Severity::Error)
            spdlog::error("{}", line);
        else
            spdlog::warn("{}", line);
    }
    if (first_error) return fail(first_error->message, plan.exit_code());

    // One store for all connections; it survives reloads.
    std::string store_problem;
    std::unique_ptr<CounterStore> store = make_store(options, plan.redis_password, store_problem);
    if (!store) return fail(store_problem, kExitConfig);
    set_adapter_settings({[] { return g_running.load()->policy; },
                          [] { return g_running.load()->options; }, store.get()});
    std::string socket_spec = plan.socket->to_libmilter();
    std::string socket_path = plan.socket->path;  // empty for inet sockets
    std::optional<gid_t> socket_gid;
    if (!socket_path.empty() && plan.socket_gid) socket_gid = *plan.socket_gid;
    if (smfi_setconn(socket_spec.data()) != MI_SUCCESS)
        return fail("bad socket specification \"" + socket_spec + "\"", kExitConfig);
    smfiDesc description = adapter_description();
    if (smfi_register(description) != MI_SUCCESS) return fail("smfi_register failed", 1);
    // Open the socket while still root (a privileged port or a root-owned directory),
    // then drop privileges. smfi_opensocket(true) first removes a stale socket file (the
    // checks made sure nobody listens on it). The umask gives a unix socket its mode
    // from the start, so that it is never more open than socket-mode. libmilter says why
    // it fails only through syslog: that goes to stderr too.
    auto socket_mode = static_cast<mode_t>(options.socket_mode & 0777);
    mode_t old_umask = umask(~socket_mode & 0777);
    bool opened = with_libmilter_errors_on_stderr(
        options, [] { return smfi_opensocket(true) == MI_SUCCESS; });
    umask(old_umask);
    if (!opened) return fail("cannot open socket " + options.socket, 1);
    set_nodelay_on_listening_sockets();
    // Found now: after a switch of user /proc/self/fd may be closed to us.
    std::optional<ProbeAddress> probe_address = listening_milter_address();
    // socket-mode, socket-group and --user: the MTA connects as its own user (Postfix:
    // postfix), so it needs write permission on the socket through its group or the
    // mode; the socket goes to --user (and to its group, unless socket-group gave it
    // one), so that the daemon still owns it after dropping privileges.
    if (!socket_path.empty()) {
        uid_t uid = plan.uid ? *plan.uid : static_cast<uid_t>(-1);
        gid_t gid = socket_gid ? *socket_gid : plan.uid ? plan.gid : static_cast<gid_t>(-1);
        if (auto problem = secure_socket_file(socket_path, socket_mode, uid, gid))
            return fail(*problem, kExitConfig);
    }
    PidFile pid_file;  // created while still root, written after the fork
    if (auto problem = pid_file.open(options.pid_file))
        return fail(problem->message, problem->transient ? kExitTempFail : kExitConfig);
    if (!options.user.empty())
        if (auto problem = drop_privileges(options.user)) return fail(*problem, kExitConfig);

    // Before any thread exists: fork into the background (threads do not survive a fork).
    // The working directory is kept so relative rules and config paths still resolve at
    // reload.
    if (!options.foreground) {
        if (daemon(1, 0) != 0)
            return fail(std::string("cannot go to the background: ") + std::strerror(errno), 1);
        claim_listening_sockets();
    }
    pid_file.write_pid();

    std::string why;
    std::optional<int> signal_fd = open_signal_fd(why);
    if (!signal_fd) return fail(why, 1);
    int milter_ended[2];
    if (pipe2(milter_ended, O_CLOEXEC) != 0) return fail("pipe2 failed", 1);
    std::atomic<int> milter_result{MI_SUCCESS};
    std::thread milter_thread([&milter_result, &milter_ended] {
        milter_result = smfi_main();
        [[maybe_unused]] ssize_t n = write(milter_ended[1], "X", 1);
    });

    unsigned mi_major = 0, mi_minor = 0, mi_patch = 0;
    smfi_version(&mi_major, &mi_minor, &mi_patch);
    spdlog::info("started: policy-milter {} (libmilter {}.{}.{}); {}; socket {}; {}", PM_VERSION,
                 mi_major, mi_minor, mi_patch, describe(*loaded.policy), options.socket,
                 switches(options.conversation()));
    // Under systemd (Type=notify): started only now, with the socket listening and the
    // policy loaded; the watchdog keeps pinging only while the socket answers.
    std::unique_ptr<Watchdog> watchdog;
    try {
        watchdog = systemd_ready("serving " + describe(*loaded.policy), probe_address);
    } catch (const std::system_error& e) {  // no thread for it: systemd's watchdog restarts us
        spdlog::error("watchdog: cannot start its thread: {}", e.what());
    }
    check_store(*store);
    lower_main_thread_priority();
    RetiredPolicies retired;
    bool stopping = false;
    for (bool ended = false; !ended;) {
        pollfd wait_for[2] = {{*signal_fd, POLLIN, 0}, {milter_ended[0], POLLIN, 0}};
        int ready = poll(wait_for, 2, retired.empty() ? -1 : 1000);
        retired.free_unused();
        if (ready <= 0) continue;  // EINTR or the timeout
        if (wait_for[1].revents) ended = true;
        // Everything pending at once: signals that came during a reload make one more
        // reload, not one each.
        int reload_on = 0;
        for (int sig : take_signals(*signal_fd)) {
            if (sig == SIGHUP || sig == SIGUSR1) {
                reload_on = sig;
            } else if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
                stopping = true;
                spdlog::info("stopping on {}", signal_name(sig));
                notify_systemd("STOPPING=1");
                watchdog.reset();            // its probes would fail from here on
                stop_milter(probe_address);  // smfi_stop(), without its 5 s wait
            }
        }
        if (reload_on && !stopping && !ended) {
            spdlog::info("reloading on {}", signal_name(reload_on));
            try {
                notify_systemd("RELOADING=1");
                retired.add(reload(argc, argv, options));
            } catch (const std::exception& e) {
                spdlog::error("reload failed, keeping the running policy: {}", e.what());
            }
            notify_systemd("READY=1");
        }
    }
    milter_thread.join();
    if (!socket_path.empty()) remove_own_socket();
    pid_file.remove();
    // smfi_main() returns on its own when libmilter gives up (its listener fails, or its
    // signal thread stopped it): the MTA then gets no answers at all, so the exit is an
    // error, for the service manager to restart the daemon (Restart=on-failure).
    if (!stopping) {
        spdlog::error("libmilter stopped serving on its own (smfi_main returned {}); exiting",
                      milter_result == MI_SUCCESS ? "MI_SUCCESS" : "MI_FAILURE");
        exit_leaving_sessions(1);
    }
    spdlog::info("stopped: {}", describe(*g_running.load()->policy));
    exit_leaving_sessions(milter_result == MI_SUCCESS ? 0 : 1);
}

}  // namespace pm
