// SPDX-License-Identifier: BSD-2-Clause
// Load generator for the policy-delegation front end (policy-socket): C connections, each
// sending Postfix RCPT requests one after another (as one smtpd process does) for S
// seconds; prints requests/s and latency percentiles.
//
//   policy_service_load HOST PORT CONNECTIONS SECONDS
//
// Each request is a new transaction every 10 recipients (a new `instance`), with the
// attributes Postfix 3.7 sends at RCPT. bench/run-policy-service-bench drives it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string request(int connection, long n) {
    std::string rcpt = "user" + std::to_string(n % 1000) + "@sink.test";
    std::string instance = std::to_string(connection) + "." + std::to_string(n / 10);
    return "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
           "client_address=192.0.2." +
           std::to_string(connection % 250 + 1) +
           "\nclient_port=" + std::to_string(10000 + connection) +
           "\nclient_name=client.example\nreverse_client_name=client.example\n"
           "helo_name=client.example\nsender=sender" +
           std::to_string(connection) + "@example.net\nrecipient=" + rcpt +
           "\nrecipient_count=0\nqueue_id=\ninstance=" + instance +
           "\nsize=1000\netrn_domain=\nstress=\nsasl_method=\nsasl_username=\n"
           "sasl_sender=\nccert_subject=\nccert_issuer=\nccert_fingerprint=\n"
           "encryption_protocol=\nencryption_cipher=\nencryption_keysize=0\n"
           "server_address=127.0.0.1\nserver_port=25\npolicy_context=\n\n";
}

int connect_to(const char* host, int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// One request's round trip; false if the connection failed.
bool ask(int fd, const std::string& req) {
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
        return false;
    char buf[512];
    std::size_t have = 0;
    while (have < 2 || buf[have - 1] != '\n' || buf[have - 2] != '\n') {
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        if (n <= 0) return false;
        have += static_cast<std::size_t>(n);
        if (have == sizeof buf) return false;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SECONDS\n", argv[0]);
        return 2;
    }
    const char* host = argv[1];
    int port = std::atoi(argv[2]), connections = std::atoi(argv[3]);
    double seconds = std::atof(argv[4]);
    std::atomic<long> failures{0};
    std::vector<std::vector<double>> latencies(connections);
    auto end = Clock::now() + std::chrono::duration<double>(seconds);
    std::vector<std::thread> threads;
    auto start = Clock::now();
    for (int c = 0; c < connections; ++c)
        threads.emplace_back([&, c] {
            int fd = connect_to(host, port);
            if (fd < 0) {
                ++failures;
                return;
            }
            for (long n = 0; Clock::now() < end; ++n) {
                auto t0 = Clock::now();
                if (!ask(fd, request(c, n))) {
                    ++failures;
                    break;
                }
                latencies[c].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
            }
            close(fd);
        });
    for (auto& t : threads) t.join();
    double took = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> all;
    for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    auto pct = [&all](double p) {
        return all.empty() ? 0.0 : all[std::min(all.size() - 1, std::size_t(p * all.size()))];
    };
    std::printf(
        "connections=%d requests=%zu seconds=%.2f rps=%.0f p50_us=%.0f p99_us=%.0f "
        "failures=%ld\n",
        connections, all.size(), took, all.size() / took, pct(0.5) * 1e6, pct(0.99) * 1e6,
        failures.load());
    return failures.load() == 0 ? 0 : 1;
}
