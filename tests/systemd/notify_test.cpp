// SPDX-License-Identifier: BSD-2-Clause
// systemd's notification protocol as the real daemon speaks it: policy-milter started with
// $NOTIFY_SOCKET (and $WATCHDOG_USEC) naming a datagram socket of the test's, as systemd
// starts a Type=notify unit. READY=1 only once the milter socket answers, RELOADING=1 and
// READY=1 around a reload, WATCHDOG=1 only while the socket answers a milter session,
// STOPPING=1 at SIGTERM. The booted-systemd version of these checks is
// tests/systemd/nspawn-test.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "milter/systemd_notify.h"
#include "tests/tsan_libmilter.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kRules = R"(rule "subject" at message
    when header["Subject"] matches /forbidden/
    reject 554 5.7.1 "no"
)";

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
  public:
    explicit NotifySocket(const fs::path& path) : path_(path) {
        fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~NotifySocket() {
        close(fd_);
        unlink(path_.c_str());
    }
    bool bound() const { return bound_; }
    // The next datagram within `wait`, or nothing.
    std::optional<std::string> next(std::chrono::milliseconds wait) {
        timeval tv{static_cast<time_t>(wait.count() / 1000),
                   static_cast<suseconds_t>((wait.count() % 1000) * 1000)};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[4096];
        ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n < 0) return std::nullopt;
        return std::string(buf, static_cast<std::size_t>(n));
    }
    // The next datagram that is not a watchdog ping.
    std::optional<std::string> next_state(std::chrono::milliseconds wait) {
        auto deadline = std::chrono::steady_clock::now() + wait;
        while (std::chrono::steady_clock::now() < deadline) {
            auto m = next(std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now() + 1ms));
            if (!m) return std::nullopt;
            if (*m != "WATCHDOG=1") return m;
        }
        return std::nullopt;
    }
    // Counts watchdog pings during `span`.
    int pings_during(std::chrono::milliseconds span) {
        int pings = 0;
        auto deadline = std::chrono::steady_clock::now() + span;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return pings;
            if (auto m = next(left); m && *m == "WATCHDOG=1") ++pings;
        }
    }

  private:
    fs::path path_;
    int fd_ = -1;
    bool bound_ = false;
};

class SystemdNotify : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pm-notify-test.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        std::ofstream(dir_ / "rules.conf") << kRules;
        notify_ = std::make_unique<NotifySocket>(dir_ / "notify");
        ASSERT_TRUE(notify_->bound());
        socket_ = dir_ / "milter.sock";
        // Under TSan the daemon gets libmilter's stop-path suppressions (tests/tsan_libmilter.h).
        std::ofstream(dir_ / "tsan.supp") << tsan_suppressions();
    }
    void TearDown() override {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        notify_.reset();
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    // The daemon as systemd starts a Type=notify unit: in the foreground, with
    // $NOTIFY_SOCKET and, if given, $WATCHDOG_USEC for its own pid.
    void start(std::optional<int> watchdog_usec) {
        pid_ = fork();
        ASSERT_GE(pid_, 0);
        if (pid_ == 0) {
            setenv("NOTIFY_SOCKET", (dir_ / "notify").c_str(), 1);
            if (watchdog_usec) {
                setenv("WATCHDOG_USEC", std::to_string(*watchdog_usec).c_str(), 1);
                setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
            }
#if defined(__SANITIZE_THREAD__)
            const char* tsan = std::getenv("TSAN_OPTIONS");
            std::string options = "suppressions=" + (dir_ / "tsan.supp").string();
            if (tsan && *tsan) options += std::string(" ") + tsan;
            setenv("TSAN_OPTIONS", options.c_str(), 1);
#endif
            std::string rules = (dir_ / "rules.conf").string();
            std::string spec = "unix:" + socket_.string();
            std::string log = (dir_ / "daemon.log").string();
            if (!freopen(log.c_str(), "w", stderr)) _exit(126);
            execl(PM_POLICY_MILTER, PM_POLICY_MILTER, "-c", "/dev/null", "--foreground", "--log",
                  "stderr", "--log-level", "debug", "--rules", rules.c_str(), "--socket",
                  spec.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
    }
    std::string log() const {
        std::ifstream in(dir_ / "daemon.log");
        return {std::istreambuf_iterator<char>(in), {}};
    }
    // A milter session on the daemon's socket, as the watchdog probes it.
    std::optional<std::string> probe() const {
        pm::ProbeAddress a;
        auto* un = reinterpret_cast<sockaddr_un*>(&a.address);
        un->sun_family = AF_UNIX;
        std::strncpy(un->sun_path, socket_.c_str(), sizeof un->sun_path - 1);
        a.length = sizeof(sockaddr_un);
        a.text = socket_.string();
        return pm::probe_milter(a, 2000ms);
    }
    int stop() {
        kill(pid_, SIGTERM);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }

    fs::path dir_, socket_;
    std::unique_ptr<NotifySocket> notify_;
    pid_t pid_ = -1;
};

TEST_F(SystemdNotify, ReadyOnlyOnceTheSocketAnswers) {
    start(std::nullopt);
    auto m = notify_->next_state(20s);
    ASSERT_TRUE(m) << log();
    EXPECT_EQ(m->rfind("READY=1\n", 0), 0u) << *m;
    EXPECT_NE(m->find("STATUS=serving "), std::string::npos) << *m;
    // At the moment READY=1 arrived the socket was already there and answering.
    EXPECT_TRUE(fs::is_socket(socket_));
    EXPECT_EQ(probe(), std::nullopt);
    // SIGTERM ends the daemon at once, not after libmilter's 5-second listener poll.
    auto stopping = std::chrono::steady_clock::now();
    EXPECT_EQ(stop(), 0) << log();
    auto took = std::chrono::steady_clock::now() - stopping;
    EXPECT_LT(took, 3000ms) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                            << " ms\n"
                            << log();
    EXPECT_FALSE(fs::exists(socket_));
}

TEST_F(SystemdNotify, ReloadIsBracketedByReloadingAndReady) {
    start(std::nullopt);
    ASSERT_TRUE(notify_->next_state(20s)) << log();
    kill(pid_, SIGUSR1);
    EXPECT_EQ(notify_->next_state(10s), "RELOADING=1") << log();
    EXPECT_EQ(notify_->next_state(10s), "READY=1") << log();
    // A reload that fails still ends in READY=1: the old policy serves on.
    std::ofstream(dir_ / "rules.conf") << "rule \"broken\" at nowhere\n";
    kill(pid_, SIGUSR1);
    EXPECT_EQ(notify_->next_state(10s), "RELOADING=1") << log();
    EXPECT_EQ(notify_->next_state(10s), "READY=1") << log();
    EXPECT_NE(log().find("keeping the running policy"), std::string::npos) << log();
    EXPECT_EQ(probe(), std::nullopt);
    kill(pid_, SIGTERM);
    EXPECT_EQ(notify_->next_state(10s), "STOPPING=1") << log();
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    EXPECT_EQ(status, 0) << log();
}

TEST_F(SystemdNotify, WatchdogPingsOnlyWhileTheSocketAnswers) {
    // 1.2 s: a probe and a ping every 0.4 s, each probe answered within 0.2 s (slow
    // sanitizer builds included).
    start(1200000);
    ASSERT_TRUE(notify_->next_state(20s)) << log();
    EXPECT_GE(notify_->pings_during(2000ms), 3) << log();
    // The socket removed: the daemon still runs but no MTA can reach it; the pings stop,
    // so systemd kills and restarts it.
    fs::remove(socket_);
    std::this_thread::sleep_for(600ms);
    while (notify_->next(10ms)) {
    }
    EXPECT_EQ(notify_->pings_during(1500ms), 0) << log();
    EXPECT_NE(log().find("watchdog: the milter does not answer"), std::string::npos) << log();
    EXPECT_EQ(kill(pid_, 0), 0) << "the daemon itself keeps running";
    stop();
}

TEST_F(SystemdNotify, WatchdogIgnoredForAnotherPid) {
    setenv("WATCHDOG_USEC", "300000", 1);
    setenv("WATCHDOG_PID", "1", 1);
    EXPECT_EQ(pm::watchdog_interval(), std::nullopt);
    setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
    EXPECT_EQ(pm::watchdog_interval(), std::chrono::microseconds(300000));
    setenv("WATCHDOG_USEC", "x", 1);
    EXPECT_EQ(pm::watchdog_interval(), std::nullopt);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

TEST_F(SystemdNotify, NothingWithoutNotifySocket) {
    unsetenv("NOTIFY_SOCKET");
    EXPECT_FALSE(pm::notify_systemd("READY=1"));
    setenv("NOTIFY_SOCKET", (dir_ / "notify").c_str(), 1);
    EXPECT_TRUE(pm::notify_systemd("READY=1"));
    EXPECT_EQ(notify_->next(1000ms), "READY=1");
    unsetenv("NOTIFY_SOCKET");
}

TEST_F(SystemdNotify, ProbeFailsOnASilentListener) {
    // A socket that accepts (the kernel's backlog) but never answers: a hung milter.
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(listen(fd, 5), 0);
    auto started = std::chrono::steady_clock::now();
    pm::ProbeAddress a;
    std::memcpy(&a.address, &addr, sizeof addr);
    a.length = sizeof addr;
    auto why = pm::probe_milter(a, 300ms);
    EXPECT_EQ(why, "no answer to option negotiation");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
    close(fd);
    fs::remove(socket_);
    why = pm::probe_milter(a, 300ms);
    ASSERT_TRUE(why);
    EXPECT_EQ(why->rfind("connect: ", 0), 0u) << *why;
}

}  // namespace

namespace {

// A start that fails says why in STATUS=, which systemctl status shows even after the
// unit's start limit ended the retries.
TEST_F(SystemdNotify, FailedStartSaysWhyInStatus) {
    socket_ = dir_ / "missing" / "milter.sock";
    start(std::nullopt);
    auto m = notify_->next_state(20s);
    ASSERT_TRUE(m) << log();
    EXPECT_EQ(m->rfind("STATUS=not started: ", 0), 0u) << *m;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << log();
}

}  // namespace
