// SPDX-License-Identifier: BSD-2-Clause
// The fixture of the milter protocol tests: the real policy-milter binary as a child
// process on a free loopback port, its log, libmilter's syslog lines, and helpers to drive
// it through mc::Client (tests/milter_client) and to assert the exact replies.
//
// The daemon runs as
//   policy-milter -c /dev/null --foreground --log stderr --log-level debug
//                 --rules DIR/rules.conf --socket inet:PORT@127.0.0.1 [EXTRA...]
// (or --socket unix:PATH after use_unix_socket(), and -c DIR/policy-milter.conf without
// --log-level after write_config()), with stdout and stderr in DIR/daemon.log. libmilter itself
// logs through syslog(3), not through the daemon's logger: when the tests run as root and `unshare
// --mount` works, the daemon runs in a private mount namespace whose /dev/log is a socket of the
// test's own (DIR/devlog, caught into Daemon::syslog_text() and DIR/syslog); elsewhere those lines
// are not seen. (With --log stderr the daemon never calls openlog(), so libmilter logs with
// facility user and the program's name as ident.)
//
// DIR is a fresh directory under $TMPDIR (or /tmp), removed unless a test failed or
// PM_KEEP_TEST_DIRS=1. Under the sanitizer builds the daemon is instrumented too and gets
// the test's environment (ASAN_OPTIONS, TSAN_OPTIONS): it must exit 0 on SIGTERM, which
// under ASan includes LeakSanitizer's check at exit. ASan needs no suppression: libmilter
// frees or still references everything then (its connection threads' stacks are roots).
// TSan gets a few, for libmilter's stop path only (see tsan_suppressions()).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "milter_client.h"
#include "tests/tsan_libmilter.h"

extern char** environ;

#ifndef PM_POLICY_MILTER
#error "PM_POLICY_MILTER must name the policy-milter binary under test"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define PM_PROTOCOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PM_PROTOCOL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define PM_PROTOCOL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PM_PROTOCOL_TSAN 1
#endif
#endif

namespace mc {
// For gtest's messages: "accept" rather than "4-byte object <01-00 00-00>".
inline void PrintTo(Outcome outcome, std::ostream* os) {
    *os << to_string(outcome);
}
}  // namespace mc

namespace pm::protocol {

// The steps the suites before issue 13 offer: all of them, except the no-reply flags
// (SMFIP_NR_*), as an MTA without them would: every step is answered, and each reply is
// asserted as it was. economy_test.cpp offers the no-reply flags too (as Postfix and
// Sendmail do) and counts the steps the MTA waits for; the e2e suites run real MTAs.
inline constexpr std::uint32_t kAnsweredSteps =
    0x1FFFFF & ~static_cast<std::uint32_t>(SMFIP_NR_HDR | SMFIP_NR_CONN | SMFIP_NR_HELO |
                                           SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA |
                                           SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY);

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

#if defined(PM_PROTOCOL_ASAN) || defined(PM_PROTOCOL_TSAN)
// The sanitizer builds are Debug builds and several times slower.
inline constexpr int kSlowdown = 4;
#else
inline constexpr int kSlowdown = 1;
#endif

inline std::chrono::milliseconds scaled(std::chrono::milliseconds t) {
    return t * kSlowdown;
}

// --- small utilities --------------------------------------------------------------------

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

inline void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

inline std::string last_lines(const std::string& text, std::size_t n) {
    std::size_t pos = text.size();
    if (pos > 0 && text[pos - 1] == '\n') --pos;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t nl = pos == 0 ? std::string::npos : text.rfind('\n', pos - 1);
        if (nl == std::string::npos) return text;
        pos = nl;
    }
    return text.substr(pos + 1);
}

// A free TCP port on 127.0.0.1: bind port 0, read it back, close. The daemon binds it a
// moment later; Daemon::start() tries another one if it was taken in between.
inline int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

// True if something accepts TCP connections on 127.0.0.1:port. The connection is closed
// at once (the daemon sees a connection without a single command).
inline bool tcp_accepts(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// True if something accepts connections on the unix socket `path` (closed at once).
// Non-blocking: a full backlog of a socket nobody accepts on is a no, not a wait.
inline bool unix_accepts(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) {
        ::close(fd);
        return false;
    }
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

inline bool env_flag(const char* name) {
    const char* v = std::getenv(name);
    return v && *v && std::string_view(v) != "0";
}

inline std::string find_program(const char* name) {
    for (const char* dir : {"/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"}) {
        std::string path = std::string(dir) + name;
        if (::access(path.c_str(), X_OK) == 0) return path;
    }
    return {};
}

// A command's exit status; the command runs with stdio on /dev/null.
inline int run_quietly(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int null = ::open("/dev/null", O_RDWR);
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(null, 2);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// --- a private syslog ---------------------------------------------------------------------

// The daemon is started as `tools/private-devlog SOCKET policy-milter ...` (PM_PRIVATE_DEVLOG,
// the same program tests/e2e/lib/syslog.sh uses), which keeps its PID.

// The unshare binary if a private mount namespace can be made here (root, not forbidden by
// a container), else empty: tools/private-devlog needs it. PM_PROTOCOL_NO_SYSLOG=1 turns the
// capture off.
inline const std::string& private_devlog_unshare() {
    static const std::string unshare = [] {
        if (env_flag("PM_PROTOCOL_NO_SYSLOG") || ::geteuid() != 0) return std::string();
        std::string path = find_program("unshare");
        if (path.empty()) return path;
        if (run_quietly({path, "--mount", "--propagation", "private", "true"}) != 0)
            return std::string();
        return path;
    }();
    return unshare;
}

// Catches the datagrams a program's syslog(3) sends to a unix socket, one line each, "<PRI>"
// included; kept in memory and written to a file.
class SyslogCatcher {
  public:
    SyslogCatcher() = default;
    SyslogCatcher(const SyslogCatcher&) = delete;
    SyslogCatcher& operator=(const SyslogCatcher&) = delete;
    ~SyslogCatcher() { stop(); }

    bool start(const std::string& path, const std::string& file) {
        file_.open(file, std::ios::binary | std::ios::app);
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) return false;
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        if (path.size() >= sizeof sun.sun_path) return false;
        std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) return false;
        ::chmod(path.c_str(), 0666);
        timeval tv{0, 50 * 1000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        thread_ = std::thread([this] { run(); });
        return true;
    }

    void stop() {
        stopping_ = true;
        if (thread_.joinable()) thread_.join();
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    std::string text() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return text_;
    }

  private:
    void run() {
        std::vector<char> buf(65536);
        while (!stopping_) {
            ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
            if (n <= 0) continue;
            std::string line(buf.data(), static_cast<std::size_t>(n));
            while (!line.empty() && (line.back() == '\0' || line.back() == '\n')) line.pop_back();
            std::lock_guard<std::mutex> lock(mutex_);
            text_ += line;
            text_ += '\n';
            file_ << line << '\n' << std::flush;
        }
    }

    int fd_ = -1;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
    mutable std::mutex mutex_;
    std::string text_;
    std::ofstream file_;
};

// --- the daemon ----------------------------------------------------------------------------

// How a daemon ended.
struct StopResult {
    bool ran = false;      // there was a process
    bool by_test = false;  // the test stopped it (else it ended by itself)
    bool killed = false;   // it did not stop on SIGTERM within the grace time: SIGKILL
    int status = 0;        // waitpid() status
    std::chrono::milliseconds took{0};

    bool clean() const {
        return !ran || (by_test && !killed && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    std::string describe() const {
        if (!ran) return "not running";
        std::string out = !by_test ? "ended by itself"
                          : killed ? "killed with SIGKILL after SIGTERM"
                                   : "stopped on SIGTERM";
        if (WIFEXITED(status)) out += ", exit status " + std::to_string(WEXITSTATUS(status));
        if (WIFSIGNALED(status))
            out += ", signal " + std::to_string(WTERMSIG(status)) + " (" +
                   strsignal(WTERMSIG(status)) + ")";
        if (by_test) out += ", after " + std::to_string(took.count()) + " ms";
        return out;
    }
};

class Daemon {
  public:
    // `name` tags the work directory; `rules` is the rules file's text; `extra` are more
    // command-line options (--observe, --soft-bounce).
    Daemon(std::string name, std::string rules, std::vector<std::string> extra = {})
        : name_(std::move(name)), rules_(std::move(rules)), extra_(std::move(extra)) {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern =
            std::string(tmp && *tmp ? tmp : "/tmp") + "/pm-protocol-" + name_ + "-XXXXXX";
        if (char* made = ::mkdtemp(pattern.data())) dir_ = made;
        log_path_ = dir_ + "/daemon.log";
        rules_path_ = dir_ + "/rules.conf";
        write_file(rules_path_, rules_);
    }
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    ~Daemon() {
        stop();
        syslog_.stop();
        if (dir_.empty()) return;
        if (keep_ || env_flag("PM_KEEP_TEST_DIRS")) {
            std::cerr << "[ protocol ] kept " << dir_ << '\n';
            return;
        }
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    // Starts the daemon and waits until it accepts connections, for at most `timeout`. On
    // failure `why` says why (with the log).
    bool start(std::string& why, std::chrono::milliseconds timeout = scaled(15s)) {
        if (dir_.empty()) {
            why = "cannot create a work directory";
            return false;
        }
        if (!syslog_started_ && !private_devlog_unshare().empty())
            syslog_started_ = syslog_.start(dir_ + "/devlog", dir_ + "/syslog");
        for (int attempt = 0; attempt < 5; ++attempt) {
            if (unix_socket_.empty()) port_ = free_port();
            std::size_t log_from = log_size();
            if (!spawn(why)) return false;
            auto deadline = Clock::now() + timeout;
            for (;;) {
                if (!alive()) break;
                // Its own socket, not one that took the port first: it logs "started" once
                // the socket is open.
                if (log_since(log_from).find("info: started: ") != std::string::npos && accepts())
                    return true;
                if (Clock::now() > deadline) {
                    why = "policy-milter did not listen on " + socket_spec();
                    stop();
                    return false;
                }
                std::this_thread::sleep_for(10ms);
            }
            std::string log = log_text().substr(log_from);
            if (log.find("cannot open socket") == std::string::npos || !unix_socket_.empty()) {
                why = "policy-milter exited at start (" + last_.describe() + "):\n" + log;
                return false;
            }
            // The port was taken between free_port() and the daemon's bind: another one.
        }
        why = "no free port for policy-milter";
        return false;
    }

    // SIGTERM, then connections to the socket to wake libmilter's accept loop (it checks
    // for a stop only between accepts, or every 5 s); SIGKILL if it is still running after
    // the grace time.
    StopResult stop(std::chrono::milliseconds grace = scaled(5s)) {
        if (pid_ <= 0) return last_;
        StopResult r;
        r.ran = true;
        r.by_test = true;
        auto started = Clock::now();
        ::kill(pid_, SIGTERM);
        auto deadline = started + grace;
        auto next_poke = started;
        for (;;) {
            pid_t done = ::waitpid(pid_, &r.status, WNOHANG);
            if (done == pid_) break;
            if (Clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                while (::waitpid(pid_, &r.status, 0) < 0 && errno == EINTR) {
                }
                r.killed = true;
                break;
            }
            if (Clock::now() >= next_poke) {
                accepts();
                next_poke = Clock::now() + 100ms;
            }
            std::this_thread::sleep_for(5ms);
        }
        r.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
        pid_ = -1;
        last_ = r;
        return r;
    }

    // False once the process has ended (its status is then in last_stop()).
    bool alive() {
        if (pid_ <= 0) return false;
        int status = 0;
        pid_t done = ::waitpid(pid_, &status, WNOHANG);
        if (done == 0) return true;
        last_ = StopResult{true, false, false, status, {}};
        pid_ = -1;
        return false;
    }

    const StopResult& last_stop() const { return last_; }
    pid_t pid() const { return pid_; }
    int port() const { return port_; }
    std::string socket_spec() const {
        if (!unix_socket_.empty()) return "unix:" + unix_socket_;
        return "inet:" + std::to_string(port_) + "@127.0.0.1";
    }
    // Something accepts connections on the daemon's socket.
    bool accepts() const {
        return unix_socket_.empty() ? tcp_accepts(port_) : unix_accepts(unix_socket_);
    }

    // Before start(): listen on the unix socket `path` instead of a loopback port.
    void use_unix_socket(std::string path) { unix_socket_ = std::move(path); }
    // Before start(): read DIR/policy-milter.conf, with this text, instead of -c /dev/null,
    // and take the log level from it (no --log-level debug on the command line). Call
    // again while it runs to change the file for the next reload.
    void write_config(const std::string& text) {
        config_path_ = dir_ + "/policy-milter.conf";
        write_file(config_path_, text);
    }
    const std::string& dir() const { return dir_; }
    const std::string& name() const { return name_; }
    void keep_dir() { keep_ = true; }

    mc::Client connect() const { return mc::Client::connect(socket_spec(), scaled(10s)); }

    std::string log_text() const { return read_file(log_path_); }
    std::size_t log_size() const {
        struct stat st {};
        return ::stat(log_path_.c_str(), &st) == 0 ? static_cast<std::size_t>(st.st_size) : 0;
    }
    std::string log_since(std::size_t from) const {
        std::string text = log_text();
        return from < text.size() ? text.substr(from) : std::string();
    }
    // Waits until the log has `needle` after byte `from`.
    bool wait_for_log(std::string_view needle, std::size_t from,
                      std::chrono::milliseconds timeout = scaled(3s)) const {
        auto deadline = Clock::now() + timeout;
        for (;;) {
            if (log_since(from).find(needle) != std::string::npos) return true;
            if (Clock::now() > deadline) return false;
            std::this_thread::sleep_for(10ms);
        }
    }

    // libmilter's syslog lines ("<PRI>TIMESTAMP IDENT: message"), if they are caught.
    bool syslog_captured() const { return syslog_started_; }
    std::string syslog_text() const { return syslog_.text(); }
    std::size_t syslog_size() const { return syslog_.text().size(); }
    bool wait_for_syslog(std::string_view needle, std::size_t from,
                         std::chrono::milliseconds timeout = scaled(3s)) const {
        auto deadline = Clock::now() + timeout;
        for (;;) {
            std::string text = syslog_.text();
            if (from < text.size() && text.find(needle, from) != std::string::npos) return true;
            if (Clock::now() > deadline) return false;
            std::this_thread::sleep_for(10ms);
        }
    }

    // What a failure message needs: the end of both logs.
    std::string diagnostics() const {
        std::string out = "--- " + log_path_ + " (last lines)\n" + last_lines(log_text(), 40);
        if (syslog_started_)
            out += "--- libmilter's syslog (last lines)\n" + last_lines(syslog_.text(), 20);
        return out;
    }

  private:
    bool spawn(std::string& why) {
        std::vector<std::string> args;
        if (syslog_started_) args = {PM_PRIVATE_DEVLOG, dir_ + "/devlog"};
        std::vector<std::string> daemon{
            PM_POLICY_MILTER, "-c",    "/dev/null", "--foreground", "--log",    "stderr",
            "--log-level",    "debug", "--rules",   rules_path_,    "--socket", socket_spec()};
        if (!config_path_.empty()) {
            daemon[2] = config_path_;
            daemon.erase(daemon.begin() + 6, daemon.begin() + 8);  // --log-level debug
        }
        args.insert(args.end(), daemon.begin(), daemon.end());
        args.insert(args.end(), extra_.begin(), extra_.end());

        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);

        std::vector<std::string> env;
        for (char** e = environ; *e; ++e) env.emplace_back(*e);
#ifdef PM_PROTOCOL_TSAN
        std::string supp = dir_ + "/tsan.supp";
        write_file(supp, tsan_suppressions());
        std::string options = "suppressions=" + supp;
        for (auto it = env.begin(); it != env.end(); ++it)
            if (it->rfind("TSAN_OPTIONS=", 0) == 0) {
                options = it->substr(13) + ":" + options;
                env.erase(it);
                break;
            }
        env.push_back("TSAN_OPTIONS=" + options);
#endif
        std::vector<char*> envp;
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);

        pid_t parent = ::getpid();
        pid_t pid = ::fork();
        if (pid < 0) {
            why = std::string("fork: ") + std::strerror(errno);
            return false;
        }
        if (pid == 0) {
            // Only async-signal-safe calls between fork and exec. The daemon dies with the
            // test process, even if that one is killed.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);
            int null = ::open("/dev/null", O_RDONLY);
            int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (null < 0 || log < 0) ::_exit(127);
            ::dup2(null, 0);
            ::dup2(log, 1);
            ::dup2(log, 2);
            ::execve(argv[0], argv.data(), envp.data());
            ::_exit(127);
        }
        pid_ = pid;
        return true;
    }

    std::string name_, rules_;
    std::vector<std::string> extra_;
    std::string dir_, log_path_, rules_path_, config_path_, unix_socket_;
    int port_ = 0;
    pid_t pid_ = -1;
    StopResult last_;
    bool keep_ = false;
    SyslogCatcher syslog_;
    bool syslog_started_ = false;
};

// --- assertions on replies -----------------------------------------------------------------

// The reply exactly: SMFIR_REPLYCODE "CODE ENHANCED TEXT", code, enhanced code and text
// each as expected, and no modification. TEXT is what libmilter sends, so a '%' the client
// sees is "%%" here (the MTA turns it back into one).
inline ::testing::AssertionResult IsReply(const mc::Response& r, int code,
                                          const std::string& enhanced, const std::string& text) {
    std::string want = std::to_string(code) + " " + enhanced + " " + text;
    if (r.outcome != mc::Outcome::ReplyCode)
        return ::testing::AssertionFailure()
               << "expected the reply \"" << want << "\", got " << r.describe();
    if (r.reply != want || r.code != code || r.enhanced != enhanced || r.text != text)
        return ::testing::AssertionFailure()
               << "expected \"" << want << "\"\n     got \"" << r.reply << "\" (code " << r.code
               << ", enhanced \"" << r.enhanced << "\", text \"" << r.text << "\")";
    if (!r.modifications.empty())
        return ::testing::AssertionFailure() << "unexpected modifications: " << r.describe();
    return ::testing::AssertionSuccess();
}

// An answer without a reply code (continue, accept, discard...), and no modification.
inline ::testing::AssertionResult Is(const mc::Response& r, mc::Outcome outcome) {
    if (r.outcome != outcome || !r.reply.empty() || !r.modifications.empty())
        return ::testing::AssertionFailure()
               << "expected " << mc::to_string(outcome) << ", got " << r.describe();
    return ::testing::AssertionSuccess();
}

// The end-of-message answer: `outcome` after exactly these modifications, each written as
// "h Name: value" (SMFIR_ADDHEADER) or "q reason" (SMFIR_QUARANTINE).
inline ::testing::AssertionResult IsEom(const mc::Response& r, mc::Outcome outcome,
                                        const std::vector<std::string>& modifications) {
    std::vector<std::string> got;
    for (const auto& m : r.modifications) {
        if (m.command == SMFIR_ADDHEADER)
            got.push_back("h " + m.name + ": " + m.value);
        else if (m.command == SMFIR_QUARANTINE)
            got.push_back("q " + m.name);
        else
            got.push_back(std::string(1, m.command) + " " + m.name + " " + m.value);
    }
    if (r.outcome != outcome || !r.reply.empty() || got != modifications) {
        auto failure = ::testing::AssertionFailure();
        failure << "expected " << mc::to_string(outcome);
        for (const auto& m : modifications) failure << " [" << m << "]";
        failure << ", got " << mc::to_string(r.outcome);
        if (!r.reply.empty()) failure << " \"" << r.reply << "\"";
        for (const auto& m : got) failure << " [" << m << "]";
        return failure;
    }
    return ::testing::AssertionSuccess();
}

// --- a shared daemon per test suite ---------------------------------------------------------

// A test suite whose tests share one daemon running the rules of `Policy` (a struct with
// static `name`, `rules` and, optionally, `args()`). The daemon starts before the suite's
// first test and is stopped after its last; it must then exit cleanly (under ASan: no
// error and no leak). A test that finds it dead fails and gets a fresh one.
template <class Policy>
class DaemonSuite : public ::testing::Test {
  public:
    static void SetUpTestSuite() { start_daemon(); }

    static void TearDownTestSuite() {
        if (!daemon_) return;
        StopResult r = daemon_->stop();
        if (!r.clean()) {
            daemon_->keep_dir();
            ADD_FAILURE() << "policy-milter (" << Policy::name
                          << ") did not end cleanly: " << r.describe() << "\n"
                          << daemon_->diagnostics();
        } else if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_suite();
                   info && info->failed_test_count() > 0) {
            daemon_->keep_dir();
        }
        daemon_.reset();
    }

  protected:
    void SetUp() override {
        if (!daemon_ || !daemon_->alive()) {
            if (daemon_) {
                daemon_->keep_dir();
                ADD_FAILURE() << "policy-milter (" << Policy::name
                              << ") died during an earlier test: "
                              << daemon_->last_stop().describe() << "\n"
                              << daemon_->diagnostics();
            }
            start_daemon();
        }
        ASSERT_TRUE(daemon_ && daemon_->alive()) << "policy-milter is not running";
        log_mark_ = daemon_->log_size();
        syslog_mark_ = daemon_->syslog_size();
    }

    void TearDown() override {
        if (HasFailure() && daemon_) {
            daemon_->keep_dir();
            std::cerr << daemon_->diagnostics();
        }
    }

    static Daemon& daemon() { return *daemon_; }

    // This test's part of the log.
    std::string log() const { return daemon_->log_since(log_mark_); }
    bool log_has(std::string_view needle) const { return daemon_->wait_for_log(needle, log_mark_); }
    bool syslog_has(std::string_view needle) const {
        return daemon_->wait_for_syslog(needle, syslog_mark_);
    }

    std::size_t log_mark_ = 0;
    std::size_t syslog_mark_ = 0;

  private:
    static void start_daemon() {
        daemon_ = std::make_unique<Daemon>(Policy::name, Policy::rules, extra_args<Policy>(0));
        std::string why;
        if (!daemon_->start(why)) {
            daemon_->keep_dir();
            ADD_FAILURE() << "cannot start policy-milter (" << Policy::name << "): " << why;
            daemon_.reset();
        }
    }

    template <class P>
    static auto extra_args(int) -> decltype(P::args()) {
        return P::args();
    }
    template <class P>
    static std::vector<std::string> extra_args(long) {
        return {};
    }

    static inline std::unique_ptr<Daemon> daemon_;
};

// A test with a daemon of its own, for rules or options no other test shares.
class OwnDaemon : public ::testing::Test {
  protected:
    // Starts a daemon for `rules`; the test fails if it does not start.
    void start(const std::string& name, const std::string& rules,
               std::vector<std::string> extra = {}) {
        daemon_ = std::make_unique<Daemon>(name, rules, std::move(extra));
        std::string why;
        ASSERT_TRUE(daemon_->start(why)) << why;
    }
    void TearDown() override {
        if (!daemon_) return;
        if (HasFailure()) {
            daemon_->keep_dir();
            std::cerr << daemon_->diagnostics();
        }
        StopResult r = daemon_->stop();
        EXPECT_TRUE(r.clean()) << r.describe() << "\n" << daemon_->diagnostics();
    }
    std::unique_ptr<Daemon> daemon_;
};

}  // namespace pm::protocol
