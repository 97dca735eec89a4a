// SPDX-License-Identifier: BSD-2-Clause
// Load generator for a milter: C concurrent connections speak the MTA side of the milter
// protocol (tests/milter_client) to one milter and run N transactions between them, then
// report transactions per second, p50/p99/p99.9 latency per protocol step and the steps
// whose reply the MTA had to wait for, per transaction.
//
//   milter_load --socket inet:PORT@127.0.0.1 [--connections C] [--transactions N]
//               [--rcpts R] [--size BYTES] [--tx-per-conn K] [--senders N]
//               [--recipients N] [--watch-pid PID] [--hold SECONDS] [--json FILE]
//
// It plays a plain MTA: each connection negotiates, sends connect and HELO, then K
// transactions (MAIL, R x RCPT, DATA, 6 headers, end of header, the body in 64 KiB
// chunks, end of message), then QUIT. Senders and recipients are drawn at random from
// pools of --senders (default 1,000) and --recipients (default 100,000) addresses, clients
// from 10.0.0.0/8. Steps the milter switched off are not sent, as an
// MTA would do. A refusal ends what it refuses (the session, the transaction or one
// recipient) and is counted, not failed; a protocol error or a dropped connection is a
// failed transaction. --watch-pid samples the milter's VmRSS twice a second; --hold opens
// the C connections, keeps them open SECONDS, records the RSS, and runs no transactions.
#include <getopt.h>
#include <milter_client.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
    std::string socket;
    int connections = 16;
    long transactions = 10000;
    int rcpts = 2;
    std::size_t size = 4096;
    int tx_per_conn = 10;
    int senders = 1000;       // distinct senders: the keys of a per-sender limit
    int recipients = 100000;  // distinct recipients
    int watch_pid = 0;
    int hold_seconds = 0;
    std::string json;
};

// The protocol steps timed separately; `transaction` is MAIL to end of message.
enum Step {
    Negotiate,
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    Header,
    Eoh,
    Body,
    Eom,
    Transaction,
    kSteps
};
const char* const kStepNames[kSteps] = {"negotiate", "connect", "helo",       "mail",
                                        "rcpt",      "data",    "header",     "eoh",
                                        "body",      "eom",     "transaction"};

struct Samples {
    std::vector<std::uint32_t> ns[kSteps];  // latency of each command, in ns (capped)
    long done = 0, failed = 0, refused_session = 0, refused_tx = 0, refused_rcpt = 0;
    long over_100ms = 0;
    long waited = 0;  // commands whose reply the MTA waited for (negotiate excepted)
    std::vector<std::pair<std::chrono::system_clock::time_point, std::uint32_t>> slow;
    std::map<std::string, long> errors;
};

struct Shared {
    const Settings& settings;
    std::atomic<long> next{0};
    std::atomic<long> completed{0};
    std::atomic<int> open{0};
};

std::uint32_t since(Clock::time_point start) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    return static_cast<std::uint32_t>(std::min<long long>(ns, UINT32_MAX));
}

bool refused(const mc::Response& r) {
    using mc::Outcome;
    return r.outcome == Outcome::Reject || r.outcome == Outcome::Tempfail ||
           r.outcome == Outcome::ReplyCode || r.outcome == Outcome::Discard ||
           r.outcome == Outcome::ConnFail || r.outcome == Outcome::Shutdown;
}

// Accept and skip end the milter's part of a message: the MTA sends no more of it.
bool message_done(const mc::Response& r) {
    return refused(r) || r.outcome == mc::Outcome::Accept || r.outcome == mc::Outcome::Skip;
}

long vm_rss_kb(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return -1;
}

class Worker {
  public:
    Worker(Shared& shared, int id) : shared_(shared), s_(shared.settings), rng_(id * 7919 + 1) {
        body_.reserve(s_.size);
        static const char line[] = "The quick brown fox jumps over the lazy dog 0123456789.\r\n";
        while (body_.size() < s_.size) body_ += line;
        body_.resize(s_.size);
    }

    void run() {
        while (shared_.next.fetch_add(1) < s_.transactions) {
            auto start = Clock::now();
            try {
                one_transaction();
            } catch (const mc::ProtocolError& e) {
                ++samples.failed;
                ++samples.errors[e.what()];
                client_.reset();
            }
            if (std::uint32_t took = since(start); took > 100'000'000) {
                ++samples.over_100ms;
                samples.slow.emplace_back(std::chrono::system_clock::now(), took);
            }
            ++samples.done;
            shared_.completed.fetch_add(1, std::memory_order_relaxed);
        }
        if (client_) client_->quit();
    }

    // Opens a session and keeps it until `until`.
    void hold(Clock::time_point until) {
        try {
            if (!open_session()) return;
            shared_.open.fetch_add(1);
            std::this_thread::sleep_until(until);
            client_->quit();
        } catch (const mc::ProtocolError& e) {
            ++samples.failed;
            ++samples.errors[e.what()];
        }
    }

    Samples samples;

  private:
    template <class F>
    mc::Response timed(Step step, F&& command) {
        auto start = Clock::now();
        mc::Response r = command();
        if (r.outcome != mc::Outcome::NotSent) samples.ns[step].push_back(since(start));
        if (r.outcome != mc::Outcome::NotSent && r.outcome != mc::Outcome::NoReply)
            ++samples.waited;
        return r;
    }

    std::string client_ip() {
        std::uniform_int_distribution<int> octet(1, 254);
        return "10." + std::to_string(octet(rng_)) + "." + std::to_string(octet(rng_)) + "." +
               std::to_string(octet(rng_));
    }

    // Negotiate, connect and HELO; false if the milter refused the session.
    bool open_session() {
        client_.emplace(mc::Client::connect(s_.socket));
        auto start = Clock::now();
        client_->negotiate();
        samples.ns[Negotiate].push_back(since(start));
        std::string ip = client_ip();
        std::string name = "host-" + ip + ".example.net";
        auto r = timed(Connect, [&] {
            return client_->connect_info(name, '4', 40000, ip,
                                         {{"j", "mx.example.com"}, {"{client_name}", name}});
        });
        if (!refused(r)) r = timed(Helo, [&] { return client_->helo(name); });
        if (refused(r) || r.outcome == mc::Outcome::Accept) {
            ++samples.refused_session;
            client_->quit();
            client_.reset();
            return false;
        }
        tx_on_connection_ = 0;
        return true;
    }

    void one_transaction() {
        while (!client_ || tx_on_connection_ >= s_.tx_per_conn) {
            if (client_) client_->quit();
            client_.reset();
            if (!open_session()) return;  // a refused session counts as this transaction
        }
        ++tx_on_connection_;
        auto start = Clock::now();
        if (!message()) client_->abort();
        samples.ns[Transaction].push_back(since(start));
    }

    // One message; false if it ended early (the MTA then sends abort).
    bool message() {
        std::uniform_int_distribution<int> sender_no(1, s_.senders);
        std::uniform_int_distribution<int> user(1, s_.recipients);
        std::string queue_id = "Q" + std::to_string(++queue_serial_) + "T" +
                               std::to_string(reinterpret_cast<std::uintptr_t>(this) % 100000);
        std::string sender = "<sender" + std::to_string(sender_no(rng_)) + "@example.org>";
        std::vector<std::string> mail_args{sender};
        mail_args.push_back("SIZE=" + std::to_string(s_.size + 300));
        auto r = timed(Mail, [&] { return client_->mail(mail_args, {{"i", queue_id}}); });
        if (message_done(r)) return ++samples.refused_tx, false;
        int accepted = 0;
        for (int i = 0; i < s_.rcpts; ++i) {
            std::string rcpt = "<user" + std::to_string(user(rng_)) + "@example.com>";
            r = timed(Rcpt, [&] { return client_->rcpt({rcpt}); });
            if (r.outcome == mc::Outcome::Accept) return true;
            if (refused(r)) {
                ++samples.refused_rcpt;
                continue;
            }
            ++accepted;
        }
        if (accepted == 0) return ++samples.refused_tx, false;
        r = timed(Data, [&] { return client_->data(); });
        if (message_done(r)) return ++samples.refused_tx, false;
        static const char* const headers[][2] = {
            {"From", "Sender <sender@example.org>"},   {"To", "User <user@example.com>"},
            {"Subject", "load test message"},          {"Date", "Sat, 28 Nov 2026 12:00:00 +0000"},
            {"Message-ID", "<load.test@example.org>"}, {"MIME-Version", "1.0"},
        };
        for (const auto& h : headers) {
            r = timed(Header, [&] { return client_->header(h[0], h[1]); });
            if (message_done(r)) return ++samples.refused_tx, r.outcome == mc::Outcome::Accept;
        }
        r = timed(Eoh, [&] { return client_->end_of_header(); });
        if (message_done(r)) return ++samples.refused_tx, r.outcome == mc::Outcome::Accept;
        r = timed(Body, [&] { return client_->body(body_); });
        if (message_done(r)) return ++samples.refused_tx, r.outcome == mc::Outcome::Accept;
        r = timed(Eom, [&] { return client_->end_of_message(); });
        if (refused(r)) ++samples.refused_tx;
        return true;  // end of message closes the transaction either way
    }

    Shared& shared_;
    const Settings& s_;
    std::minstd_rand rng_;
    std::string body_;
    std::optional<mc::Client> client_;
    int tx_on_connection_ = 0;
    long queue_serial_ = 0;
};

struct Percentiles {
    std::size_t count = 0;
    double p50 = 0, p99 = 0, p999 = 0, max = 0;  // microseconds
};

Percentiles percentiles(std::vector<std::uint32_t>& v) {
    Percentiles p;
    p.count = v.size();
    if (v.empty()) return p;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) {
        std::size_t i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
        return v[i] / 1000.0;
    };
    p.p50 = at(0.50);
    p.p99 = at(0.99);
    p.p999 = at(0.999);
    p.max = v.back() / 1000.0;
    return p;
}

[[noreturn]] void usage(int status) {
    std::fprintf(status ? stderr : stdout,
                 "usage: milter_load --socket SPEC [--connections C] [--transactions N]\n"
                 "                   [--rcpts R] [--size BYTES] [--tx-per-conn K]\n"
                 "                   [--senders N] [--recipients N] [--watch-pid PID]\n"
                 "                   [--hold SECONDS] [--json FILE]\n");
    std::exit(status);
}

Settings parse(int argc, char** argv) {
    Settings s;
    static const option options[] = {
        {"socket", required_argument, nullptr, 's'},
        {"connections", required_argument, nullptr, 'c'},
        {"transactions", required_argument, nullptr, 'n'},
        {"rcpts", required_argument, nullptr, 'r'},
        {"size", required_argument, nullptr, 'z'},
        {"tx-per-conn", required_argument, nullptr, 'k'},
        {"watch-pid", required_argument, nullptr, 'p'},
        {"hold", required_argument, nullptr, 'H'},
        {"json", required_argument, nullptr, 'j'},
        {"senders", required_argument, nullptr, 'S'},
        {"recipients", required_argument, nullptr, 'R'},
        {"help", no_argument, nullptr, 'h'},
        {nullptr, 0, nullptr, 0},
    };
    auto number = [](const char* text, long min) {
        char* end = nullptr;
        long v = std::strtol(text, &end, 10);
        if (!end || *end || v < min) {
            std::fprintf(stderr, "milter_load: bad number '%s'\n", text);
            std::exit(2);
        }
        return v;
    };
    for (int c; (c = getopt_long(argc, argv, "h", options, nullptr)) != -1;) {
        switch (c) {
            case 's': s.socket = optarg; break;
            case 'c': s.connections = static_cast<int>(number(optarg, 1)); break;
            case 'n': s.transactions = number(optarg, 0); break;
            case 'r': s.rcpts = static_cast<int>(number(optarg, 1)); break;
            case 'z': s.size = static_cast<std::size_t>(number(optarg, 0)); break;
            case 'k': s.tx_per_conn = static_cast<int>(number(optarg, 1)); break;
            case 'p': s.watch_pid = static_cast<int>(number(optarg, 1)); break;
            case 'H': s.hold_seconds = static_cast<int>(number(optarg, 1)); break;
            case 'j': s.json = optarg; break;
            case 'S': s.senders = static_cast<int>(number(optarg, 1)); break;
            case 'R': s.recipients = static_cast<int>(number(optarg, 1)); break;
            case 'h': usage(0);
            default: usage(2);
        }
    }
    if (s.socket.empty() || optind != argc) usage(2);
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    Settings settings = parse(argc, argv);
    Shared shared{settings};
    std::vector<std::unique_ptr<Worker>> workers;
    for (int i = 0; i < settings.connections; ++i)
        workers.push_back(std::make_unique<Worker>(shared, i));

    // RSS samples of the milter: (seconds, transactions completed, kB).
    struct RssSample {
        double t;
        long tx;
        long kb;
    };
    std::vector<RssSample> rss;
    std::atomic<bool> running{true};
    auto start = Clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    std::thread watcher([&] {
        while (settings.watch_pid && running.load()) {
            rss.push_back({seconds(), shared.completed.load(), vm_rss_kb(settings.watch_pid)});
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
    });

    long hold_rss_kb = -1;
    std::vector<std::thread> threads;
    if (settings.hold_seconds) {
        auto until = Clock::now() + std::chrono::seconds(settings.hold_seconds);
        for (auto& w : workers) threads.emplace_back([&w, until] { w->hold(until); });
        // The RSS with every connection open: half-way through the hold.
        std::this_thread::sleep_until(until - std::chrono::seconds(settings.hold_seconds) / 2);
        if (settings.watch_pid) hold_rss_kb = vm_rss_kb(settings.watch_pid);
    } else {
        for (auto& w : workers) threads.emplace_back([&w] { w->run(); });
    }
    for (auto& t : threads) t.join();
    double elapsed = seconds();
    running = false;
    watcher.join();
    if (settings.watch_pid)
        rss.push_back({elapsed, shared.completed.load(), vm_rss_kb(settings.watch_pid)});

    Samples all;
    for (auto& w : workers) {
        Samples& s = w->samples;
        for (int i = 0; i < kSteps; ++i)
            all.ns[i].insert(all.ns[i].end(), s.ns[i].begin(), s.ns[i].end());
        all.done += s.done;
        all.failed += s.failed;
        all.refused_session += s.refused_session;
        all.refused_tx += s.refused_tx;
        all.refused_rcpt += s.refused_rcpt;
        all.over_100ms += s.over_100ms;
        all.waited += s.waited;
        for (const auto& [e, n] : s.errors) all.errors[e] += n;
        all.slow.insert(all.slow.end(), s.slow.begin(), s.slow.end());
    }
    double tps = elapsed > 0 ? static_cast<double>(all.done) / elapsed : 0;

    // RSS growth after warm-up: from the first sample past 20 % of the transactions to the
    // last one.
    long rss_warm = -1, rss_end = rss.empty() ? -1 : rss.back().kb, rss_max = -1;
    for (const auto& s : rss) {
        if (rss_warm < 0 && s.tx >= settings.transactions / 5) rss_warm = s.kb;
        rss_max = std::max(rss_max, s.kb);
    }

    std::printf("%s: %d connections, %ld transactions (%d rcpt, %zu bytes, %d per connection)\n",
                settings.socket.c_str(), settings.connections, all.done, settings.rcpts,
                settings.size, settings.tx_per_conn);
    std::printf(
        "  %.1f s, %.0f transactions/s, %ld failed, %ld over 100 ms; refused: %ld "
        "sessions, %ld transactions, %ld recipients\n",
        elapsed, tps, all.failed, all.over_100ms, all.refused_session, all.refused_tx,
        all.refused_rcpt);
    double waited_per_tx = all.done ? static_cast<double>(all.waited) / all.done : 0;
    // The steps an MTA waits for, connect to end of message (a session's connect and HELO
    // shared by its --tx-per-conn transactions): the round trips the milter costs it.
    std::printf("  waited steps: %.2f per transaction\n", waited_per_tx);
    for (const auto& [e, n] : all.errors) std::printf("  error x%ld: %s\n", n, e.c_str());
    // When the slow transactions ended (UTC), to set beside the milter's log.
    std::sort(all.slow.begin(), all.slow.end());
    for (const auto& [when, ns] : all.slow) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch());
        std::time_t t = std::chrono::system_clock::to_time_t(when);
        char stamp[32];
        std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::gmtime(&t));
        std::printf("  slow transaction ended %s.%03lld UTC: %.1f ms\n", stamp,
                    static_cast<long long>(ms.count() % 1000), ns / 1e6);
    }
    std::printf("  %-12s %9s %9s %9s %9s %9s\n", "step (us)", "count", "p50", "p99", "p99.9",
                "max");
    Percentiles p[kSteps];
    for (int i = 0; i < kSteps; ++i) {
        p[i] = percentiles(all.ns[i]);
        if (p[i].count)
            std::printf("  %-12s %9zu %9.1f %9.1f %9.1f %9.1f\n", kStepNames[i], p[i].count,
                        p[i].p50, p[i].p99, p[i].p999, p[i].max);
    }
    if (hold_rss_kb >= 0)
        std::printf("  milter RSS with %d connections open: %ld kB\n", shared.open.load(),
                    hold_rss_kb);
    if (rss_warm >= 0)
        std::printf(
            "  milter RSS: %ld kB after warm-up, %ld kB at the end (%+.1f %%), max %ld kB\n",
            rss_warm, rss_end,
            100.0 * static_cast<double>(rss_end - rss_warm) / static_cast<double>(rss_warm),
            rss_max);

    if (!settings.json.empty()) {
        FILE* f = std::fopen(settings.json.c_str(), "w");
        if (!f) {
            std::perror(settings.json.c_str());
            return 1;
        }
        std::fprintf(f,
                     "{\"connections\": %d, \"transactions\": %ld, \"elapsed_s\": %.3f, "
                     "\"tx_per_s\": %.1f, \"failed\": %ld, \"over_100ms\": %ld, "
                     "\"refused_sessions\": %ld, \"refused_transactions\": %ld, "
                     "\"refused_rcpts\": %ld, \"open_connections\": %d, \"hold_rss_kb\": %ld, "
                     "\"rss_warm_kb\": %ld, \"rss_end_kb\": %ld, \"rss_max_kb\": %ld, "
                     "\"waited_steps_per_tx\": %.3f, \"steps\": {",
                     settings.connections, all.done, elapsed, tps, all.failed, all.over_100ms,
                     all.refused_session, all.refused_tx, all.refused_rcpt, shared.open.load(),
                     hold_rss_kb, rss_warm, rss_end, rss_max, waited_per_tx);
        bool first = true;
        for (int i = 0; i < kSteps; ++i) {
            if (!p[i].count) continue;
            std::fprintf(f,
                         "%s\"%s\": {\"count\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, "
                         "\"p999_us\": %.1f, \"max_us\": %.1f}",
                         first ? "" : ", ", kStepNames[i], p[i].count, p[i].p50, p[i].p99,
                         p[i].p999, p[i].max);
            first = false;
        }
        std::fprintf(f, "}, \"rss\": [");
        for (std::size_t i = 0; i < rss.size(); ++i)
            std::fprintf(f, "%s[%.1f, %ld, %ld]", i ? ", " : "", rss[i].t, rss[i].tx, rss[i].kb);
        std::fprintf(f, "]}\n");
        std::fclose(f);
    }
    return all.failed ? 1 : 0;
}
