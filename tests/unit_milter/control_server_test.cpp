// SPDX-License-Identifier: BSD-2-Clause
// The control socket's server (milter/control.h) on a real unix socket: where it opens
// and when it stays off, its mode, and that a hostile or stuck client costs only its own
// connection, for a bounded time. Also run under ThreadSanitizer (build/tsan): the server
// thread, the reload hand-off to a "main loop" thread and the log capture.
#include "milter/control.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace pm {
namespace {

using R = ControlOpen::Result;
constexpr uid_t kKeepUid = static_cast<uid_t>(-1);
constexpr gid_t kKeepGid = static_cast<gid_t>(-1);

int connect_to(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// Sends `bytes`, ends the request, reads the reply until the server closes.
std::string ask_raw(const std::string& path, const std::string& bytes, bool end = true) {
    int fd = connect_to(path);
    if (fd < 0) return "(no connection)";
    if (!bytes.empty()) {
        // A server that gave up may have closed already (an oversized request): not checked.
        (void)send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }
    if (end) shutdown(fd, SHUT_WR);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, n);
    close(fd);
    return out;
}

std::string ask(const std::string& path, const std::vector<std::string>& words) {
    std::string why;
    return ask_raw(path, *encode_control_request(words, why));
}

class ControlServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string pattern = ::testing::TempDir() + "pm-control-XXXXXX";
        std::vector<char> buf(pattern.begin(), pattern.end());
        buf.push_back('\0');
        ASSERT_NE(mkdtemp(buf.data()), nullptr);
        dir_ = buf.data();
        chmod(dir_.c_str(), 0755);
        path_ = dir_ + "/control.sock";
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    ControlHandlers handlers() {
        ControlHandlers h;
        h.stats = [] { return ControlReply{true, {"stats: one", "stats: two"}}; };
        h.limit = [](const std::vector<std::string>& w) {
            return ControlReply{false, {"limit " + w.at(1)}};
        };
        return h;
    }
    std::string dir_, path_;
};

TEST_F(ControlServerTest, AnswersWithMode0600AndRemovesItsSocketAtStop) {
    ControlServer server;
    ControlOpen opened = server.open(path_, true, kKeepUid, kKeepGid);
    ASSERT_EQ(opened.result, R::Opened) << opened.message;
    struct stat st;
    ASSERT_EQ(lstat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    std::string why;
    ASSERT_TRUE(server.start(handlers(), why)) << why;
    EXPECT_EQ(ask(path_, {"stats"}), "ok\nstats: one\nstats: two\n");
    EXPECT_EQ(ask(path_, {"limit-show", "r\n", "k"}), "error\nlimit r\\x0a\n");
    EXPECT_EQ(ask(path_, {"stats", "x"}), "error\nusage: stats\n");
    EXPECT_EQ(ask(path_, {"bogus"}),
              "error\nunknown command 'bogus' (stats, limit-show, limit-reset, reload)\n");
    EXPECT_EQ(ask(path_, {"reload"}), "error\nreload is not available\n");
    server.stop();
    EXPECT_NE(lstat(path_.c_str(), &st), 0);
}

TEST_F(ControlServerTest, TheDefaultStaysOffWhereAnExplicitSettingFails) {
    std::string missing = dir_ + "/no-such-dir/control.sock";
    ControlServer a;
    EXPECT_EQ(a.open(missing, false, kKeepUid, kKeepGid).result, R::Off);
    ControlOpen failed = a.open(missing, true, kKeepUid, kKeepGid);
    EXPECT_EQ(failed.result, R::Failed);
    EXPECT_NE(failed.message.find("no-such-dir"), std::string::npos) << failed.message;

    // A live daemon's socket is never taken: by the default (off) nor when set (fails).
    ControlServer live;
    ASSERT_EQ(live.open(path_, true, kKeepUid, kKeepGid).result, R::Opened);
    ControlServer second;
    ControlOpen off = second.open(path_, false, kKeepUid, kKeepGid);
    EXPECT_EQ(off.result, R::Off);
    EXPECT_NE(off.message.find("another running daemon answers on it"), std::string::npos);
    EXPECT_EQ(second.open(path_, true, kKeepUid, kKeepGid).result, R::Failed);
    std::string why;
    ASSERT_TRUE(live.start(handlers(), why));
    EXPECT_EQ(ask(path_, {"stats"}).rfind("ok\n", 0), 0u);  // still the first daemon's

    // A file that is not a socket is left alone.
    std::string plain = dir_ + "/plain";
    close(open(plain.c_str(), O_CREAT | O_WRONLY, 0600));
    EXPECT_EQ(second.open(plain, true, kKeepUid, kKeepGid).result, R::Failed);
    EXPECT_TRUE(std::filesystem::exists(plain));
}

TEST_F(ControlServerTest, AStaleSocketIsReplaced) {
    {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strcpy(addr.sun_path, path_.c_str());
        ASSERT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
        close(fd);  // bound, never listening: what a killed daemon leaves
    }
    ControlServer server;
    ASSERT_EQ(server.open(path_, false, kKeepUid, kKeepGid).result, R::Opened);
    std::string why;
    ASSERT_TRUE(server.start(handlers(), why));
    EXPECT_EQ(ask(path_, {"stats"}).rfind("ok\n", 0), 0u);
}

// Garbage, an oversized request and a client that never ends its request each lose their
// own connection; the next client is answered, within the request timeout.
TEST_F(ControlServerTest, HostileClientsCloseOnlyTheirConnection) {
    ControlServer server;
    ASSERT_EQ(server.open(path_, true, kKeepUid, kKeepGid).result, R::Opened);
    std::string why;
    ASSERT_TRUE(server.start(handlers(), why, ControlTimeouts{300, 300}));
    EXPECT_EQ(ask_raw(path_, "GET / HTTP/1.0\r\n\r\n"), "");
    EXPECT_EQ(ask_raw(path_, std::string("pmctl1\0stats", 12)), "");  // no final NUL
    EXPECT_EQ(ask_raw(path_, std::string(kMaxRequestBytes + 10, '\0')), "");
    EXPECT_EQ(ask_raw(path_, ""), "");

    int stuck = connect_to(path_);  // sends nothing and never ends its request
    ASSERT_GE(stuck, 0);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(ask(path_, {"stats"}).rfind("ok\n", 0), 0u);
    auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(waited, std::chrono::milliseconds(2000));
    close(stuck);

    // A client that never reads a large reply: the server gives up after reply_ms.
    ControlHandlers big = handlers();
    server.stop();
    ControlServer again;
    ASSERT_EQ(again.open(path_, true, kKeepUid, kKeepGid).result, R::Opened);
    big.stats = [] { return ControlReply{true, std::vector<std::string>(100000, "stats: x")}; };
    ASSERT_TRUE(again.start(big, why, ControlTimeouts{300, 300}));
    int lazy = connect_to(path_);
    std::string req = *encode_control_request({"stats"}, why);
    send(lazy, req.data(), req.size(), MSG_NOSIGNAL);
    shutdown(lazy, SHUT_WR);
    t0 = std::chrono::steady_clock::now();
    std::string next = ask(path_, {"limit-show", "r"});
    EXPECT_EQ(next, "error\nlimit r\n");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2000));
    close(lazy);
    again.stop();  // also while a client is connected
}

// A socket made world-writable by hand still answers only root and the daemon's user: a
// client of another uid (here nobody, in a child process) gets no reply.
TEST_F(ControlServerTest, OtherUsersAreRefusedEvenThroughAnOpenMode) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root, to connect as another user";
    passwd* nobody = getpwnam("nobody");
    if (!nobody) GTEST_SKIP() << "no user nobody";
    ControlServer server;
    ASSERT_EQ(server.open(path_, true, kKeepUid, kKeepGid).result, R::Opened);
    std::string why;
    ASSERT_TRUE(server.start(handlers(), why));
    ASSERT_EQ(chmod(path_.c_str(), 0666), 0);
    std::string request = *encode_control_request({"stats"}, why);
    pid_t child = fork();
    if (child == 0) {
        if (setgid(nobody->pw_gid) != 0 || setuid(nobody->pw_uid) != 0) _exit(3);
        std::string reply = ask_raw(path_, request);
        _exit(reply == "(no connection)" ? 2 : reply.empty() ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: answered, 2: could not connect, 3: setuid";
    EXPECT_EQ(ask(path_, {"stats"}).rfind("ok\n", 0), 0u);  // root still is
}

// The reload hand-off: the control thread asks, a "main loop" thread runs it and its
// log lines come back; at shutdown a waiting request fails instead of hanging.
TEST_F(ControlServerTest, ReloadRunsOnTheMainLoopWithItsLogLines) {
    LogCapture& capture = LogCapture::install();
    ReloadRequests requests;
    ControlServer server;
    ASSERT_EQ(server.open(path_, true, kKeepUid, kKeepGid).result, R::Opened);
    ControlHandlers h = handlers();
    h.reload = [&] { return requests.request(); };
    std::string why;
    ASSERT_TRUE(server.start(h, why));
    std::atomic<bool> stop{false};
    std::thread main_loop([&] {
        while (!stop) {
            pollfd p{requests.fd(), POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) continue;
            requests.serve([&] {
                capture.begin();
                spdlog::error("rules.conf:1:2: error: broken");
                std::vector<std::string> lines = capture.end();
                lines.emplace_back("reload: failed");
                return ControlReply{false, lines};
            });
        }
    });
    std::thread noise([&] {  // another thread logging meanwhile is not captured
        for (int i = 0; i < 200; ++i) spdlog::debug("noise {}", i);
    });
    EXPECT_EQ(ask(path_, {"reload"}), "error\nrules.conf:1:2: error: broken\nreload: failed\n");
    noise.join();
    stop = true;
    main_loop.join();
    // Nobody serves requests any more: shutdown() answers the waiting client.
    std::thread late([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        requests.shutdown();
    });
    EXPECT_EQ(ask(path_, {"reload"}), "error\nthe daemon is stopping\n");
    late.join();
    server.stop();
}

// Review findings (2026-12-07): a user who can only read the socket's directory once
// held a lock the start waited on forever; the lock is now a private file of the daemon.
TEST_F(ControlServerTest, ALockOnTheDirectoryCannotStallTheStart) {
    int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir_fd, 0);
    ASSERT_EQ(flock(dir_fd, LOCK_EX), 0);
    ControlServer server;
    auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(server.open(path_, true, kKeepUid, kKeepGid).result, R::Opened);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
    close(dir_fd);
    struct stat st;
    ASSERT_EQ(lstat((path_ + ".lock").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    server.stop();
}

// A lock file another user made (or a symlink put there) is not the daemon's: refused.
TEST_F(ControlServerTest, ALockFileNotTheDaemonsIsRefused) {
    ASSERT_EQ(symlink("/etc/passwd", (path_ + ".lock").c_str()), 0);
    ControlServer server;
    ControlOpen opened = server.open(path_, true, kKeepUid, kKeepGid);
    EXPECT_EQ(opened.result, R::Failed);
    EXPECT_NE(opened.message.find(".lock"), std::string::npos) << opened.message;
}

// A default ACL on the directory overrides the umask at bind: the mode is set again.
TEST_F(ControlServerTest, ADefaultAclCannotOpenTheSocket) {
    if (system("command -v setfacl >/dev/null") != 0) GTEST_SKIP() << "no setfacl";
    std::string cmd = "setfacl -d -m u::rwx,g::rwx,o::rwx '" + dir_ + "' 2>/dev/null";
    if (system(cmd.c_str()) != 0) GTEST_SKIP() << "no ACL support here";
    ControlServer server;
    ASSERT_EQ(server.open(path_, true, kKeepUid, kKeepGid).result, R::Opened);
    struct stat st;
    ASSERT_EQ(lstat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    server.stop();
}

// Only the capturing thread's lines come back, and at most 1000 of them.
TEST_F(ControlServerTest, TheReloadCaptureIsBoundedAndPerThread) {
    LogCapture& capture = LogCapture::install();
    capture.begin();
    std::thread other([] { spdlog::error("another thread's line"); });
    other.join();
    for (int i = 0; i < 1500; ++i) spdlog::error("line {}", i);
    std::vector<std::string> lines = capture.end();
    ASSERT_EQ(lines.size(), 1001u);
    EXPECT_EQ(lines.front(), "line 0");
    EXPECT_EQ(lines.back(), "... and 500 more lines in the log");
    capture.begin();
    EXPECT_TRUE(capture.end().empty());
}

}  // namespace
}  // namespace pm
