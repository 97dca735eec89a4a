// SPDX-License-Identifier: BSD-2-Clause
#include "milter/metrics_http.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "milter/stats.h"

namespace pm {

namespace {

// httplib's own ThreadPool queues every accepted connection, without limit: a flood
// would hold a file descriptor each, which the milter's own sockets need. This one keeps
// at most kMetricsQueue waiting; past that the accepting thread serves the connection
// itself, and accepts nothing meanwhile.
class BoundedPool : public httplib::TaskQueue {
  public:
    BoundedPool() {
        for (std::size_t i = 0; i < kMetricsThreads; ++i) threads_.emplace_back([this] { work(); });
    }
    void enqueue(std::function<void()> job) override {
        {
            std::unique_lock lock(mutex_);
            if (jobs_.size() < kMetricsQueue) {
                jobs_.push_back(std::move(job));
                lock.unlock();
                ready_.notify_one();
                return;
            }
        }
        job();
    }
    void shutdown() override {
        {
            std::lock_guard lock(mutex_);
            shutdown_ = true;
        }
        ready_.notify_all();
        for (auto& t : threads_) t.join();
    }

  private:
    void work() {
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock lock(mutex_);
                ready_.wait(lock, [this] { return shutdown_ || !jobs_.empty(); });
                if (jobs_.empty()) return;  // shut down, nothing left
                job = std::move(jobs_.front());
                jobs_.pop_front();
            }
            job();
        }
    }

    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    bool shutdown_ = false;
};

// httplib 0.11 bounds each header line but not their number, and its read timeout is
// per read: a client that keeps sending header lines grows the daemon without end. So
// each connection is read through this stream instead of httplib's own: one request, at
// most kMaxRequestBytes of it, all within kMetricsTimeoutSeconds.
class BoundedStream : public httplib::Stream {
  public:
    explicit BoundedStream(int fd)
        : fd_(fd),
          deadline_(std::chrono::steady_clock::now() +
                    std::chrono::seconds(kMetricsTimeoutSeconds)) {}
    static constexpr std::size_t kMaxRequestBytes = 16 * 1024;

    bool is_readable() const override { return ready(POLLIN); }
    bool is_writable() const override { return ready(POLLOUT); }
    ssize_t read(char* ptr, size_t size) override {
        if (read_ >= kMaxRequestBytes || !ready(POLLIN)) return -1;
        ssize_t n = recv(fd_, ptr, std::min(size, kMaxRequestBytes - read_), 0);
        if (n > 0) read_ += static_cast<std::size_t>(n);
        return n;
    }
    ssize_t write(const char* ptr, size_t size) override {
        if (!ready(POLLOUT)) return -1;
        return send(fd_, ptr, size, MSG_NOSIGNAL);
    }
    void get_remote_ip_and_port(std::string& ip, int& port) const override {
        address(getpeername, ip, port);
    }
    void get_local_ip_and_port(std::string& ip, int& port) const override {
        address(getsockname, ip, port);
    }
    socket_t socket() const override { return fd_; }

  private:
    bool ready(short events) const {
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline_ - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            pollfd p{fd_, events, 0};
            int n = poll(&p, 1, static_cast<int>(left.count()));
            if (n < 0 && errno == EINTR) continue;
            return n > 0 && (p.revents & (events | POLLHUP | POLLERR));
        }
    }
    void address(int (*get)(int, sockaddr*, socklen_t*), std::string& ip, int& port) const {
        sockaddr_storage sa{};
        socklen_t len = sizeof sa;
        char text[INET6_ADDRSTRLEN] = "";
        port = 0;
        if (get(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return;
        if (sa.ss_family == AF_INET) {
            auto* in = reinterpret_cast<sockaddr_in*>(&sa);
            inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
            port = ntohs(in->sin_port);
        } else if (sa.ss_family == AF_INET6) {
            auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
            inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
            port = ntohs(in6->sin6_port);
        }
        ip = text;
    }

    int fd_;
    std::chrono::steady_clock::time_point deadline_;
    std::size_t read_ = 0;
};

// httplib's server, with each connection served through a BoundedStream: one request,
// then the connection closes (Prometheus opens a new one per scrape at most).
class BoundedServer : public httplib::Server {
  private:
    bool process_and_close_socket(socket_t sock) override {
        BoundedStream stream(sock);
        bool closed = true;
        bool ok = process_request(stream, true, closed, [&](httplib::Request& req) {
            stream.get_remote_ip_and_port(req.remote_addr, req.remote_port);
        });
        ::shutdown(sock, SHUT_RDWR);
        ::close(sock);
        return ok;
    }
};

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

void configure(httplib::Server& s) {
    s.new_task_queue = [] { return new BoundedPool; };
    s.set_keep_alive_max_count(10);
    s.set_keep_alive_timeout(kMetricsTimeoutSeconds);
    s.set_read_timeout(kMetricsTimeoutSeconds, 0);
    s.set_write_timeout(kMetricsTimeoutSeconds, 0);
    s.set_payload_max_length(1024);  // a GET has no body
    // httplib's default also sets SO_REUSEPORT, which would let a second process bind the
    // same port beside this one and take part of the scrapes: only SO_REUSEADDR here (a
    // restart need not wait for connections in TIME_WAIT).
    s.set_socket_options([](socket_t sock) {
        int yes = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // Everything but GET /metrics is 404, before any handler runs (HEAD and OPTIONS too).
    s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
        if (req.method == "GET" && req.path == "/metrics")
            return httplib::Server::HandlerResponse::Unhandled;
        res.status = 404;
        res.set_content("404 not found: only GET /metrics\n", "text/plain");
        return httplib::Server::HandlerResponse::Handled;
    });
    s.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(prometheus_text(process_stats().snapshot()), kContentType);
    });
    s.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
            res.status = 500;
            res.set_content("500 internal error\n", "text/plain");
        });
}

}  // namespace

MetricsServer::MetricsServer() = default;

MetricsServer::~MetricsServer() {
    stop();
}

bool MetricsServer::bind(const MetricsAddress& address, std::string& why) {
    server_ = std::make_unique<BoundedServer>();
    configure(*server_);
    // The address is a literal (config/metrics_address.h): httplib's getaddrinfo() does
    // no DNS lookup for it.
    server_->set_address_family(address.host.find(':') == std::string::npos ? AF_INET : AF_INET6);
    errno = 0;
    if (!server_->bind_to_port(address.host, static_cast<int>(address.port), 0)) {
        int e = errno;
        std::string where = address.host.find(':') == std::string::npos
                                ? address.host + ":" + std::to_string(address.port)
                                : "[" + address.host + "]:" + std::to_string(address.port);
        why =
            "metrics: cannot listen on " + where + (e ? std::string(": ") + std::strerror(e) : "");
        server_.reset();
        return false;
    }
    bound_ = true;
    return true;
}

bool MetricsServer::start(std::string& why) {
    if (!server_) return true;
    ended_ = std::make_shared<std::atomic<bool>>(false);
    try {
        listener_ = std::thread([s = server_.get(), ended = ended_] {
            if (!s->listen_after_bind() && s->is_valid())
                spdlog::error("metrics: the HTTP server stopped accepting connections");
            *ended = true;
        });
    } catch (const std::system_error& e) {
        why = std::string("metrics: cannot start its thread: ") + e.what();
        return false;
    }
    return true;
}

void MetricsServer::stop() {
    if (!server_) return;
    using Clock = std::chrono::steady_clock;
    if (listener_.joinable()) {
        // httplib's stop() does nothing until its thread runs the accept loop: a stop
        // right after the start waits for that (a moment).
        for (auto until = Clock::now() + kMetricsStopWait;
             !server_->is_running() && !*ended_ && Clock::now() < until;)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    server_->stop();
    if (listener_.joinable()) {
        auto until = Clock::now() + kMetricsStopWait;
        while (!*ended_ && Clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (!*ended_) {
            spdlog::warn("metrics: a client is still sending its request; not waiting for it");
            listener_.detach();
            (void)server_.release();  // still in use by its threads until the process ends
            bound_ = false;
            return;
        }
        listener_.join();
    }
    server_.reset();
    bound_ = false;
}

}  // namespace pm
