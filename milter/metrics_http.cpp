// SPDX-License-Identifier: BSD-2-Clause
#include "milter/metrics_http.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

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
    server_ = std::make_unique<httplib::Server>();
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
