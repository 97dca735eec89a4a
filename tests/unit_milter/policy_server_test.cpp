// SPDX-License-Identifier: BSD-2-Clause
// The policy-delegation server (milter/policy_delegation.h) on real sockets, without
// Postfix: the exact action lines, several requests on one connection, garbage and
// over-long lines closing only their own connection, the idle timeout, the bound on
// connections, and a policy swapped (a reload) while clients keep asking.
#include "milter/policy_delegation.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/memory_counter_store.h"

namespace pm {
namespace {

constexpr uid_t kKeepUid = static_cast<uid_t>(-1);
constexpr gid_t kKeepGid = static_cast<gid_t>(-1);

const char* kRules =
    "rule \"bad\" at rcpt when recipient == \"bad@example.com\" reject 550 5.1.1 "
    "\"<{recipient}>: Recipient address rejected: no such user\"\n"
    "rule \"vip\" at rcpt when recipient == \"vip@example.com\" accept\n"
    "rule \"later\" at rcpt when recipient == \"later@example.com\" tempfail 450 4.2.0 \"later\"\n"
    "rule \"root\" at vrfy when recipient.local == \"root\" reject 550 5.7.1 \"no\"\n"
    "rule \"etrn\" at etrn when domain != \"example.com\" tempfail 459 4.7.1 \"not here\"\n";

std::shared_ptr<const Policy> load(const std::string& text) {
    LoadResult r = load_policy_text(text, "t.rules");
    EXPECT_TRUE(r.policy);
    return r.policy;
}

// A server on 127.0.0.1, an ephemeral port, with the policy in `policy` (swappable).
struct Server {
    MemoryCounterStore store;
    std::mutex mutex;
    std::shared_ptr<const Policy> policy = load(kRules);
    PolicyServer server;
    unsigned port = 0;

    explicit Server(std::size_t max_connections = 1000,
                    std::chrono::milliseconds idle = std::chrono::milliseconds(30000)) {
        std::string why;
        auto spec = parse_socket_spec("inet:1@127.0.0.1", why);
        spec->port = 0;  // any free port
        EXPECT_TRUE(server.open(*spec, 0660, kKeepUid, kKeepGid, why)) << why;
        PolicyServiceSettings s;
        s.policy = [this] {
            std::lock_guard<std::mutex> lock(mutex);
            return policy;
        };
        s.options = [] { return ConversationOptions{}; };
        s.store = &store;
        s.max_connections = max_connections;
        s.idle_timeout = idle;
        EXPECT_TRUE(server.start(std::move(s), why)) << why;
        port = server.port();
    }
};

int connect_to(unsigned port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

void send_all(int fd, const std::string& bytes) {
    ASSERT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
}

// Reads one reply (up to the empty line); "(closed)" if the server closed first.
std::string read_reply(int fd) {
    std::string out;
    char c;
    while (out.size() < 2 || out.compare(out.size() - 2, 2, "\n\n") != 0) {
        if (recv(fd, &c, 1, 0) != 1) return out + "(closed)";
        out += c;
    }
    return out;
}

std::string rcpt(const std::string& recipient, const std::string& instance = "abc.1") {
    return "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
           "client_address=192.0.2.1\nclient_port=40000\nclient_name=mx.example.net\n"
           "reverse_client_name=mx.example.net\nhelo_name=mx.example.net\n"
           "sender=s@example.org\nrecipient=" +
           recipient + "\nrecipient_count=0\nqueue_id=\ninstance=" + instance +
           "\nsize=0\nsasl_username=\nencryption_protocol=\n\n";
}

TEST(PolicyServer, ExactActionLines) {
    Server s;
    int fd = connect_to(s.port);
    ASSERT_GE(fd, 0);
    send_all(fd, rcpt("bad@example.com"));
    EXPECT_EQ(read_reply(fd), "action=550 5.1.1 no such user\n\n");
    send_all(fd, rcpt("later@example.com"));
    EXPECT_EQ(read_reply(fd), "action=450 4.2.0 later\n\n");
    send_all(fd, rcpt("someone@example.com"));
    EXPECT_EQ(read_reply(fd), "action=DUNNO\n\n");
    send_all(fd, rcpt("vip@example.com"));
    EXPECT_EQ(read_reply(fd), "action=OK\n\n");
    send_all(fd,
             "request=smtpd_access_policy\nprotocol_state=VRFY\nclient_address=192.0.2.1\n"
             "client_port=40000\nrecipient=root\n\n");
    EXPECT_EQ(read_reply(fd), "action=550 5.7.1 no\n\n");
    send_all(fd,
             "request=smtpd_access_policy\nprotocol_state=ETRN\nclient_address=192.0.2.1\n"
             "client_port=40000\netrn_domain=other.example\n\n");
    EXPECT_EQ(read_reply(fd), "action=459 4.7.1 not here\n\n");
    send_all(fd, "request=smtpd_access_policy\nprotocol_state=SOMETHING-NEW\n\n");
    EXPECT_EQ(read_reply(fd), "action=DUNNO\n\n");
    close(fd);
}

// Several requests in one write (pipelined), answered in order on the same connection.
TEST(PolicyServer, SeveralRequestsOnOneConnection) {
    Server s;
    int fd = connect_to(s.port);
    ASSERT_GE(fd, 0);
    std::string many;
    for (int i = 0; i < 50; ++i)
        many += rcpt(i % 2 ? "bad@example.com" : "ok@example.com", "i" + std::to_string(i / 10));
    send_all(fd, many);
    for (int i = 0; i < 50; ++i)
        EXPECT_EQ(read_reply(fd), i % 2 ? "action=550 5.1.1 no such user\n\n" : "action=DUNNO\n\n")
            << i;
    close(fd);
}

// Garbage, a NUL, an over-long line, or a request not for smtpd_access_policy closes that
// connection only; another connection goes on being answered.
TEST(PolicyServer, GarbageClosesThatConnectionOnly) {
    Server s;
    int good = connect_to(s.port);
    ASSERT_GE(good, 0);
    send_all(good, rcpt("bad@example.com"));
    EXPECT_EQ(read_reply(good), "action=550 5.1.1 no such user\n\n");
    for (std::string bad : {std::string("GET / HTTP/1.0\r\n\r\n"), std::string("a=b\0c\n\n", 7),
                            "recipient=" + std::string(5000, 'x') + "\n\n",
                            std::string("request=other\nprotocol_state=RCPT\n\n"),
                            std::string(70000, '\n') + "=x\n"}) {
        int fd = connect_to(s.port);
        ASSERT_GE(fd, 0);
        (void)send(fd, bad.data(), bad.size(), MSG_NOSIGNAL);
        EXPECT_EQ(read_reply(fd), "(closed)") << bad.substr(0, 20);
        close(fd);
    }
    send_all(good, rcpt("ok@example.com"));
    EXPECT_EQ(read_reply(good), "action=DUNNO\n\n");
    close(good);
}

TEST(PolicyServer, IdleConnectionsAreClosed) {
    Server s(1000, std::chrono::milliseconds(200));
    int fd = connect_to(s.port);
    ASSERT_GE(fd, 0);
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(read_reply(fd), "(closed)");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
    close(fd);
}

// Beyond max_connections a new connection is closed at once; those in place go on.
TEST(PolicyServer, ConnectionsAreBounded) {
    Server s(20);
    std::vector<int> fds;
    for (int i = 0; i < 20; ++i) {
        fds.push_back(connect_to(s.port));
        send_all(fds.back(), rcpt("ok@example.com", "c" + std::to_string(i)));
        EXPECT_EQ(read_reply(fds.back()), "action=DUNNO\n\n");
    }
    int extra = connect_to(s.port);
    ASSERT_GE(extra, 0);
    EXPECT_EQ(read_reply(extra), "(closed)");
    close(extra);
    send_all(fds[0], rcpt("bad@example.com"));
    EXPECT_EQ(read_reply(fds[0]), "action=550 5.1.1 no such user\n\n");
    for (int fd : fds) close(fd);
    for (int i = 0; i < 100 && s.server.connections() > 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(s.server.connections(), 0u);
}

// Thousands of connections, one after another and some at once: all answered or closed,
// none left open, and the server still answers.
TEST(PolicyServer, ThousandsOfConnections) {
    Server s(64);
    std::atomic<int> answered{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 8; ++t)
        clients.emplace_back([&, t] {
            for (int i = 0; i < 250; ++i) {
                int fd = connect_to(s.port);
                if (fd < 0) continue;
                std::string r = rcpt("ok@example.com", std::to_string(t) + "." + std::to_string(i));
                (void)send(fd, r.data(), r.size(), MSG_NOSIGNAL);
                if (read_reply(fd) == "action=DUNNO\n\n") ++answered;
                close(fd);
            }
        });
    for (auto& c : clients) c.join();
    EXPECT_GT(answered.load(), 1500);
    int fd = connect_to(s.port);
    send_all(fd, rcpt("bad@example.com"));
    EXPECT_EQ(read_reply(fd), "action=550 5.1.1 no such user\n\n");
    close(fd);
}

// A reload (the policy swapped) while clients ask: every answer is the old or the new
// policy's, and a new transaction gets the new one.
TEST(PolicyServer, ReloadUnderLoad) {
    Server s;
    std::atomic<bool> done{false};
    std::atomic<int> wrong{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t)
        clients.emplace_back([&, t] {
            int fd = connect_to(s.port);
            for (int i = 0; !done; ++i) {
                send_all(fd, rcpt("bad@example.com", std::to_string(t) + "." + std::to_string(i)));
                std::string a = read_reply(fd);
                if (a != "action=550 5.1.1 no such user\n\n" && a != "action=DUNNO\n\n") ++wrong;
            }
            close(fd);
        });
    for (int i = 0; i < 50; ++i) {
        auto next =
            load(i % 2 ? kRules : "rule \"none\" at rcpt when recipient == \"x@y\" reject\n");
        {
            std::lock_guard<std::mutex> lock(s.mutex);
            s.policy = std::move(next);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(4));  // requests in between
    }
    done = true;
    for (auto& c : clients) c.join();
    EXPECT_EQ(wrong.load(), 0);
    {
        std::lock_guard<std::mutex> lock(s.mutex);
        s.policy = load("rule \"none\" at rcpt when recipient == \"x@y\" reject\n");
    }
    int fd = connect_to(s.port);
    send_all(fd, rcpt("bad@example.com", "new-instance"));
    EXPECT_EQ(read_reply(fd), "action=DUNNO\n\n");
    close(fd);
}

TEST(PolicyServer, UnixSocketWithItsMode) {
    std::string dir =
        std::filesystem::temp_directory_path() / ("pm-policy-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    chmod(dir.c_str(), 0755);
    std::string why;
    auto spec = parse_socket_spec("unix:" + dir + "/policy.sock", why);
    ASSERT_TRUE(spec) << why;
    {
        PolicyServer server;
        ASSERT_TRUE(server.open(*spec, 0660, kKeepUid, kKeepGid, why)) << why;
        struct stat st;
        ASSERT_EQ(stat(spec->path.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0660u);
        PolicyServer second;  // a live server there: refused, not replaced
        EXPECT_FALSE(second.open(*spec, 0660, kKeepUid, kKeepGid, why));
        server.stop();
        EXPECT_FALSE(std::filesystem::exists(spec->path));
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pm
