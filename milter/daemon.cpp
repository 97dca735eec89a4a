// SPDX-License-Identifier: BSD-2-Clause
#include "milter/daemon.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#include "config/dns_settings.h"
#include "config/logging.h"
#include "dns/resolver.h"
#include "milter/adapter.h"
#include "milter/control.h"
#include "milter/greylist_saver.h"
#include "milter/limit_control.h"
#include "milter/listener.h"
#include "milter/metrics_http.h"
#include "milter/policy_delegation.h"
#include "milter/signals.h"
#include "milter/startup.h"
#include "milter/stats.h"
#include "milter/systemd_notify.h"
#include "pm_version.h"  // generated: PM_VERSION
#include "policy/policy.h"
#include "store/factory.h"

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
// The DNS lists' resolver, set once after the fork (Daemon::start_resolver).
std::atomic<DnsSource*> g_dns{nullptr};

// A new session's switches: the running policy's, and the resolver. The milter and the
// policy service both start their sessions with these.
ConversationOptions session_options() {
    ConversationOptions o = g_running.load()->options;
    o.dns = g_dns.load();
    return o;
}

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

// A first contact, for the log only: the daemon starts either way, and store-on-error
// decides what a missing store means.
void probe_store(CounterStore& store) {
    try {
        if (store.probe()) spdlog::info("counter store {}: connected", store.describe());
    } catch (const StoreError& e) {
        spdlog::warn("counter store not reachable at start: {}", e.what());
    }
}

// --- privileges -----------------------------------------------------------------------

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

// Settings a reload reads but cannot apply to a running daemon: the admin is told.
void warn_of_start_only_changes(const Options& now, const Options& was) {
    if (now.socket != was.socket || now.user != was.user || now.socket_mode != was.socket_mode ||
        now.socket_group != was.socket_group || now.log != was.log ||
        now.pid_file != was.pid_file || now.syslog_facility != was.syslog_facility ||
        now.syslog_name != was.syslog_name || now.control != was.control ||
        now.policy_socket != was.policy_socket || now.dns_servers != was.dns_servers)
        spdlog::warn(
            "socket, user, pid-file, log, syslog, control, policy-socket and dns-servers "
            "changes take effect only at the next start");
    if (now.stats_interval != was.stats_interval || now.metrics != was.metrics)
        spdlog::warn("stats-interval and metrics changes take effect only at the next start");
    if (now.state_dir != was.state_dir || now.greylist_max_entries != was.greylist_max_entries ||
        now.greylist_save_interval != was.greylist_save_interval)
        spdlog::warn(
            "state-dir, greylist-max-entries and greylist-save-interval changes take effect "
            "only at the next start");
    if (store_settings(now) != store_settings(was))
        spdlog::warn(
            "store settings changed ({}): they take effect only at the next start; "
            "counters stay in {}",
            store_settings(now), store_settings(was));
}

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
        process_stats().count_reload(false);
        return nullptr;
    }
    auto policy = load_and_report(fresh.rules_file);
    auto old = g_running.load();
    if (!policy) {
        spdlog::error("reload of {} failed, keeping the running policy ({})", fresh.rules_file,
                      describe(*old->policy));
        process_stats().count_reload(false);
        return nullptr;
    }
    auto next = std::make_shared<Running>(Running{policy, fresh.conversation()});
    g_running.store(next);
    warn_of_start_only_changes(fresh, started_with);
    // Only the level of the one logger changes: threads answering the MTA log meanwhile.
    if (fresh.log_level != log_level_name()) {
        set_log_level(fresh.log_level);
        spdlog::info("log level {}", log_level_name());
    }
    spdlog::info("reloaded: {}; {}", describe(*policy), switches(next->options));
    process_stats().count_reload(true);
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
// run_daemon would destroy them under it (the store is the Daemon's, a local; the rest
// are statics), so the process ends here, with the log flushed and without running any
// destructor.
[[noreturn]] void exit_leaving_sessions(int code) {
    spdlog::default_logger()->flush();
    std::cout.flush();
    std::cerr.flush();
#ifdef __SANITIZE_ADDRESS__
    __lsan_do_leak_check();  // what exit() would have checked (what is reachable is no leak)
#endif
    std::_Exit(code);
}

// Why the start failed, and the exit code that says whether a restart can help.
struct NotStarted {
    std::string why;
    int code = 1;
};

// The daemon from its start to its stop, one step per function, in this order: the
// rules, the start-up checks, the counter store, the socket and privileges, the fork,
// the announcement, then serving until stopped.
class Daemon {
  public:
    Daemon(const Options& options, int argc, const char* const argv[])
        : options_(options), argc_(argc), argv_(argv) {}

    // Every step up to the fork; nullopt once libmilter serves.
    std::optional<NotStarted> start() {
        if (auto failed = load_rules()) return failed;
        if (auto failed = check()) return failed;
        if (auto failed = make_store()) return failed;
        if (auto failed = open_socket_and_drop_privileges()) return failed;
        return go_background_and_serve();
    }
    // Every failure before the fork ends here: one line on stderr (the journal under
    // systemd) besides the log.
    int fail(const NotStarted& failed) const {
        spdlog::error("not started: {}", failed.why);
        notify_systemd("STATUS=not started: " + failed.why);  // kept by systemctl status
        if (options_.log != "stderr")
            std::cerr << "policy-milter: not started: " << failed.why << '\n';
        return failed.code;
    }
    void announce();
    void serve();
    [[noreturn]] void stop();

  private:
    std::optional<NotStarted> load_rules();
    std::optional<NotStarted> check();
    std::optional<NotStarted> make_store();
    std::optional<NotStarted> open_socket_and_drop_privileges();
    std::optional<NotStarted> go_background_and_serve();
    std::optional<NotStarted> start_resolver();
    bool handle_signals();
    bool reload_now(const std::string& why);
    std::optional<NotStarted> open_control();
    std::optional<NotStarted> open_policy_socket();
    ControlHandlers control_handlers();
    int poll_timeout_ms() const;
    void log_stats_when_due();

    const Options& options_;
    int argc_;
    const char* const* argv_;
    std::shared_ptr<const Policy> policy_;  // as loaded at start
    StartupPlan plan_;
    // One store for all connections; it survives reloads.
    std::unique_ptr<CounterStore> store_;
    std::unique_ptr<GreylistStore> greylist_;
    GreylistSaver saver_;
    std::unique_ptr<Resolver> resolver_;  // DNS lists; dns-servers apply at the next start
    Listener listener_;
    PidFile pid_file_;  // created while still root, written after the fork
    std::optional<int> signal_fd_;
    std::unique_ptr<Watchdog> watchdog_;
    RetiredPolicies retired_;
    // `control`: opened with the socket, served from after the fork (milter/control.h).
    // In this order: the control thread may wait on reload_requests_ until control_ stops.
    ReloadRequests reload_requests_;
    ControlServer control_;
    PolicyServer policy_server_;  // `policy-socket`: after store_, which it uses
    bool stopping_ = false;
    MetricsServer metrics_;  // bound before the fork, serving after it
    std::chrono::steady_clock::time_point next_stats_;
};

// Broken rules stop the start with every diagnostic, on the terminal as well as in the
// log (the log may be syslog).
std::optional<NotStarted> Daemon::load_rules() {
    LoadResult loaded = load_policy_file(options_.rules_file);
    for (const auto& d : loaded.diagnostics.all()) {
        if (options_.log != "stderr") std::cerr << d << '\n';
        if (d.severity == Severity::Error)
            spdlog::error("{}", d.to_string());
        else
            spdlog::warn("{}", d.to_string());
    }
    if (!loaded.policy) return NotStarted{options_.rules_file + " has errors", kExitConfig};
    policy_ = loaded.policy;
    g_running.store(std::make_shared<Running>(Running{policy_, options_.conversation()}));
    return std::nullopt;
}

// What --check checks, checked the same way: user, group, socket, pid file, Redis.
std::optional<NotStarted> Daemon::check() {
    plan_ = check_startup(options_, StartupPurpose::Start, policy_.get());
    const StartupProblem* first_error = plan_.first_error();
    for (const auto& p : plan_.problems) {
        if (&p == first_error && p.where.empty()) continue;  // the "not started" line says it
        if (options_.log != "stderr") std::cerr << p.to_string() << '\n';
        std::string line = p.where.empty() ? p.message : p.to_string();
        if (p.severity == Severity::Error)
            spdlog::error("{}", line);
        else
            spdlog::warn("{}", line);
    }
    if (first_error) return NotStarted{first_error->message, plan_.exit_code()};
    return std::nullopt;
}

// The Redis password was read by the start-up checks, before privileges were dropped.
std::optional<NotStarted> Daemon::make_store() {
    StoreSettings settings;
    settings.name = options_.store;
    settings.redis_prefix = options_.redis_prefix;
    settings.redis_timeout = std::chrono::milliseconds(options_.redis_timeout_ms);
    settings.redis_password = plan_.redis_password;
    std::string why;
    store_ = make_counter_store(settings, why);
    if (!store_) return NotStarted{why, kExitConfig};
    greylist_ = make_greylist_store(settings, options_.greylist_max_entries, why);
    if (!greylist_) return NotStarted{why, kExitConfig};
    saver_.start(*greylist_, options_.state_dir, options_.greylist_save_interval);
    set_adapter_settings(
        {[] { return g_running.load()->policy; }, session_options, store_.get(), greylist_.get()});
    return std::nullopt;
}

std::optional<NotStarted> Daemon::open_socket_and_drop_privileges() {
    if (auto failed = listener_.open(options_, plan_))
        return NotStarted{failed->why, failed->exit_code};
    if (!options_.metrics.empty()) {  // as root: a port below 1024 works too
        std::string why;
        auto address = parse_metrics_address(options_.metrics, why);  // checked when read
        if (!address || !metrics_.bind(*address, why)) return NotStarted{why, kExitTempFail};
        if (!address->loopback)
            spdlog::warn(
                "metrics: {} is not a loopback address, and /metrics has no authentication",
                options_.metrics);
    }
    if (auto failed = open_control()) return failed;
    if (auto failed = open_policy_socket()) return failed;
    if (auto problem = pid_file_.open(options_.pid_file))
        return NotStarted{problem->message, problem->transient ? kExitTempFail : kExitConfig};
    if (!options_.user.empty())
        if (auto problem = drop_privileges(options_.user)) return NotStarted{*problem, kExitConfig};
    return std::nullopt;
}

// Before any thread exists: fork into the background (threads do not survive a fork).
// The working directory is kept so relative rules and config paths still resolve at
// reload.
std::optional<NotStarted> Daemon::go_background_and_serve() {
    if (!options_.foreground) {
        if (::daemon(1, 0) != 0)
            return NotStarted{std::string("cannot go to the background: ") + std::strerror(errno)};
        claim_listening_sockets();
    }
    pid_file_.write_pid();
    std::string why;
    if (auto failed = start_resolver()) return failed;
    signal_fd_ = open_signal_fd(why);
    if (!signal_fd_) return NotStarted{why};
    if (!listener_.start(why)) return NotStarted{why};
    if (!control_.start(control_handlers(), why)) return NotStarted{why};
    if (policy_server_.is_open()) {
        PolicyServiceSettings settings;
        settings.policy = [] { return g_running.load()->policy; };
        settings.options = session_options;
        settings.store = store_.get();
        settings.greylist = greylist_.get();
        if (!policy_server_.start(std::move(settings), why)) return NotStarted{why};
    }
    if (!metrics_.start(why)) return NotStarted{why};
    return std::nullopt;
}

// The DNS lists' resolver (dns/resolver.h): its thread starts after the fork. Made for
// every policy, so that a reload may add DNS lists; idle, it costs one sleeping thread.
std::optional<NotStarted> Daemon::start_resolver() {
    ResolverSettings settings;
    std::string why;
    if (!options_.dns_servers.empty()) {
        auto servers = parse_dns_servers(options_.dns_servers, why);  // checked when read
        if (!servers) return NotStarted{why, kExitConfig};
        settings.servers = *servers;
    }
    settings.timeout = std::chrono::milliseconds(options_.dns_timeout_ms);
    try {
        resolver_ = std::make_unique<Resolver>(settings);
    } catch (const std::exception& e) {
        return NotStarted{std::string("DNS resolver: ") + e.what(), kExitTempFail};
    }
    g_dns.store(resolver_.get());
    return std::nullopt;
}

// Still root, so the socket can go where the daemon's user cannot create it, and be
// given to that user. The built-in default never stops the start (many daemons may share
// a host, and /run/policy-milter/ may not exist); a `control` that was set does.
std::optional<NotStarted> Daemon::open_control() {
    if (options_.control == "none") return std::nullopt;
    uid_t uid = plan_.uid ? *plan_.uid : static_cast<uid_t>(-1);
    gid_t gid = plan_.uid ? plan_.gid : static_cast<gid_t>(-1);
    ControlOpen opened =
        control_.open(options_.control.substr(5), options_.control_explicit, uid, gid);
    if (opened.result == ControlOpen::Result::Failed)
        return NotStarted{opened.message, kExitConfig};
    if (opened.result == ControlOpen::Result::Off) spdlog::warn("{}", opened.message);
    if (control_.is_open()) LogCapture::install();  // before any thread: see LogCapture
    return std::nullopt;
}

// `policy-socket`, still root (a port below 1024, a root-owned directory): the socket
// gets socket-mode, and the daemon's user and socket-group, as the milter socket does.
std::optional<NotStarted> Daemon::open_policy_socket() {
    if (options_.policy_socket.empty()) return std::nullopt;
    std::string why;
    std::optional<SocketSpec> spec = parse_socket_spec(options_.policy_socket, why);
    uid_t uid = plan_.uid ? *plan_.uid : static_cast<uid_t>(-1);
    gid_t gid = plan_.socket_gid ? *plan_.socket_gid
                : plan_.uid      ? plan_.gid
                                 : static_cast<gid_t>(-1);
    auto mode = static_cast<mode_t>(options_.socket_mode & 0777);
    if (!spec || !policy_server_.open(*spec, mode, uid, gid, why))
        return NotStarted{why, kExitConfig};
    return std::nullopt;
}

ControlHandlers Daemon::control_handlers() {
    ControlHandlers h;
    h.stats = [] { return ControlReply{true, stats_report_lines()}; };  // milter/stats.h
    h.limit = [this](const std::vector<std::string>& words) {
        return limit_command(*g_running.load()->policy, *store_, words);
    };
    h.reload = [this] { return reload_requests_.request(); };
    return h;
}

void Daemon::announce() {
    unsigned mi_major = 0, mi_minor = 0, mi_patch = 0;
    smfi_version(&mi_major, &mi_minor, &mi_patch);
    spdlog::info("started: policy-milter {} (libmilter {}.{}.{}); {}; socket {}; {}", PM_VERSION,
                 mi_major, mi_minor, mi_patch, describe(*policy_), options_.socket,
                 switches(options_.conversation()));
    if (control_.is_open()) spdlog::info("control socket unix:{}", control_.path());
    if (policy_server_.is_open())
        spdlog::info("policy service (Postfix check_policy_service) on {}", options_.policy_socket);
    else if (policy_->stage_used(Stage::Vrfy) || policy_->stage_used(Stage::Etrn))
        spdlog::warn(
            "rules at vrfy and etrn run only in the policy service, and policy-socket "
            "is not set");
    // Under systemd (Type=notify): started only now, with the socket listening and the
    // policy loaded; the watchdog keeps pinging only while the socket answers.
    try {
        watchdog_ = systemd_ready("serving " + describe(*policy_), listener_.probe_address());
    } catch (const std::system_error& e) {  // no thread for it: systemd's watchdog restarts us
        spdlog::error("watchdog: cannot start its thread: {}", e.what());
    }
    probe_store(*store_);
    if (metrics_.bound()) spdlog::info("metrics: serving http://{}/metrics", options_.metrics);
    next_stats_ = std::chrono::steady_clock::now() + std::chrono::seconds(options_.stats_interval);
    lower_main_thread_priority();
}

// Waits for signals and for libmilter to end.
void Daemon::serve() {
    for (bool ended = false; !ended;) {
        pollfd wait_for[3] = {{*signal_fd_, POLLIN, 0},
                              {listener_.ended_fd(), POLLIN, 0},
                              {reload_requests_.fd(), POLLIN, 0}};
        int ready = poll(wait_for, 3, poll_timeout_ms());
        retired_.free_unused();
        log_stats_when_due();
        saver_.save_when_due();
        if (ready <= 0) continue;  // EINTR or the timeout
        if (wait_for[1].revents) ended = true;
        // Everything pending at once: signals that came during a reload make one more
        // reload, not one each.
        int reload_sig = 0;
        for (int sig : take_signals(*signal_fd_)) {
            if (sig == SIGHUP || sig == SIGUSR1) {
                reload_sig = sig;
            } else if ((sig == SIGTERM || sig == SIGINT) && !stopping_) {
                stopping_ = true;
                spdlog::info("stopping on {}", signal_name(sig));
                notify_systemd("STOPPING=1");
                watchdog_.reset();                       // its probes would fail from here on
                stop_milter(listener_.probe_address());  // smfi_stop(), without its 5 s wait
            }
        }
        if (reload_sig && !stopping_ && !ended)
            reload_now(std::string("on ") + signal_name(reload_sig));
        // `--ctl reload`: the same reload, its log lines sent back to the client.
        if (wait_for[2].revents)
            reload_requests_.serve([this] {
                LogCapture& capture = LogCapture::install();
                capture.begin();
                bool ok = !stopping_ && reload_now("on request of the control socket");
                std::vector<std::string> lines = capture.end();
                if (stopping_) lines.emplace_back("the daemon is stopping");
                lines.emplace_back(ok ? "reload: ok" : "reload: failed");
                return ControlReply{ok, std::move(lines)};
            });
    }
}

// Until the next stats: lines are due, or a second while retired policies wait to be
// freed; -1 (for ever) when neither.
int Daemon::poll_timeout_ms() const {
    int timeout = retired_.empty() ? -1 : 1000;
    if (int save = saver_.timeout_ms(); save >= 0)
        timeout = timeout < 0 ? save : std::min(timeout, save);
    if (options_.stats_interval == 0 || stopping_) return timeout;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(next_stats_ -
                                                             std::chrono::steady_clock::now());
    int stats = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 3600 * 1000));
    return timeout < 0 ? stats : std::min(timeout, stats);
}

void log_stats() {
    for (const auto& line : stats_report_lines()) spdlog::info("{}", line);
}

void Daemon::log_stats_when_due() {
    if (options_.stats_interval == 0 || stopping_) return;
    auto now = std::chrono::steady_clock::now();
    if (now < next_stats_) return;
    log_stats();
    next_stats_ = now + std::chrono::seconds(options_.stats_interval);
}

bool Daemon::reload_now(const std::string& why) {
    spdlog::info("reloading {}", why);
    bool ok = false;
    try {
        notify_systemd("RELOADING=1");
        auto replaced = reload(argc_, argv_, options_);
        ok = replaced != nullptr;
        retired_.add(std::move(replaced));
    } catch (const std::exception& e) {
        spdlog::error("reload failed, keeping the running policy: {}", e.what());
        process_stats().count_reload(false);
    }
    notify_systemd("READY=1");
    return ok;
}

void Daemon::stop() {
    reload_requests_.shutdown();
    control_.stop();
    policy_server_.stop();
    bool succeeded = listener_.join();
    metrics_.stop();
    listener_.remove_socket();
    pid_file_.remove();
    saver_.save();  // libmilter has stopped: the last decisions are in (also when it gave up)
    // smfi_main() returns on its own when libmilter gives up (its listener fails, or its
    // signal thread stopped it): the MTA then gets no answers at all, so the exit is an
    // error, for the service manager to restart the daemon (Restart=on-failure).
    if (!stopping_) {
        spdlog::error("libmilter stopped serving on its own (smfi_main returned {}); exiting",
                      succeeded ? "MI_SUCCESS" : "MI_FAILURE");
        exit_leaving_sessions(1);
    }
    if (options_.stats_interval != 0) log_stats();  // the counts of the whole run
    spdlog::info("stopped: {}", describe(*g_running.load()->policy));
    exit_leaving_sessions(succeeded ? 0 : 1);
}

}  // namespace

int run_daemon(const Options& options, int argc, const char* const argv[]) {
    // First, before any thread exists: every thread inherits the block, and only the main
    // thread reads these signals, from its signalfd (milter/signals.cpp). One sent during
    // the start waits for the main loop.
    block_daemon_signals();
    process_stats();  // made now, not in the first callback
    if (auto problem = setup_logging(options.log, options.log_level, options.syslog_name,
                                     options.syslog_facility)) {
        std::cerr << "policy-milter: not started: " << *problem << '\n';
        return kExitConfig;
    }
    Daemon d(options, argc, argv);
    if (auto failed = d.start()) return d.fail(*failed);
    d.announce();
    d.serve();
    d.stop();
}

}  // namespace pm
