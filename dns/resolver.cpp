// SPDX-License-Identifier: BSD-2-Clause
#include "dns/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "policy/ip.h"

namespace pm {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kQueriesPerBatch = 32;

std::string ares_status_name(int status) {
    switch (status) {
        case ARES_ETIMEOUT: return "timeout";
        case ARES_ESERVFAIL: return "SERVFAIL";
        case ARES_EREFUSED: return "REFUSED";
        case ARES_ECONNREFUSED: return "connection refused";
        case ARES_EBADRESP: return "bad answer";
        case ARES_EDESTRUCTION:
        case ARES_ECANCELLED: return "resolver stopped";
        default: return ares_strerror(status);
    }
}

// What one answer packet held: the A records, or the TXT strings, and its TTL.
struct Parsed {
    DnsAnswer::Status status = DnsAnswer::Status::Failed;
    std::vector<std::uint32_t> addresses;
    std::string txt;
    std::string error;
    std::chrono::seconds ttl{0};
};

Parsed parse_a(int status, const unsigned char* buf, int len) {
    Parsed p;
    if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
        p.status = DnsAnswer::Status::NotFound;
        p.ttl = kNegativeTtl;
        return p;
    }
    if (status != ARES_SUCCESS) {
        p.error = ares_status_name(status);
        return p;
    }
    ares_addrttl ttls[kMaxDnsAddresses];
    int n = static_cast<int>(kMaxDnsAddresses);
    status = ares_parse_a_reply(buf, len, nullptr, ttls, &n);
    if (status == ARES_ENODATA || (status == ARES_SUCCESS && n == 0)) {
        p.status = DnsAnswer::Status::NotFound;
        p.ttl = kNegativeTtl;
        return p;
    }
    if (status != ARES_SUCCESS) {
        p.error = ares_status_name(status);
        return p;
    }
    p.status = DnsAnswer::Status::Found;
    int ttl = ttls[0].ttl;
    for (int i = 0; i < n; ++i) {
        p.addresses.push_back(ntohl(ttls[i].ipaddr.s_addr));
        ttl = std::min(ttl, ttls[i].ttl);
    }
    p.ttl = std::chrono::seconds(std::max(ttl, 0));
    return p;
}

// The TXT strings joined (a record of several strings is one text), cut at kMaxDnsTxt.
std::string parse_txt(int status, const unsigned char* buf, int len) {
    if (status != ARES_SUCCESS) return {};
    ares_txt_reply* reply = nullptr;
    if (ares_parse_txt_reply(buf, len, &reply) != ARES_SUCCESS) return {};
    std::string out;
    for (ares_txt_reply* r = reply; r && out.size() < kMaxDnsTxt; r = r->next)
        out.append(reinterpret_cast<const char*>(r->txt), r->length);
    ares_free_data(reply);
    if (out.size() > kMaxDnsTxt) out.resize(kMaxDnsTxt);
    return out;
}

}  // namespace

struct Resolver::Impl {
    struct Entry {
        DnsAnswer answer;
        bool a_done = false;
        bool txt_wanted = false, txt_done = false;
        Clock::time_point expires;
        std::list<std::string>::iterator lru;
        std::size_t bytes = 0;
        bool done() const { return a_done && (!txt_wanted || txt_done); }
    };
    struct Query {
        Impl* impl;
        std::string name;
        bool txt;
    };

    ResolverSettings settings;
    ares_channel channel = nullptr;
    int wake_fd = -1;
    std::thread thread;
    std::atomic<bool> stopping{false};

    mutable std::mutex mutex;
    std::condition_variable answered;
    std::unordered_map<std::string, Entry> entries;
    std::list<std::string> lru;  // front: most recently used
    std::size_t bytes = 0;
    std::vector<Query*> to_send;  // handed to the resolver thread
    ResolverStats counts;

    explicit Impl(const ResolverSettings& s);
    ~Impl();
    void run();
    bool send_pending();
    void poll_once(bool more_to_send);
    // With `mutex` held.
    void start_locked(const std::string& name, bool txt);
    void request(const std::string& name, bool txt);
    void touch(Entry& e) { lru.splice(lru.begin(), lru, e.lru); }
    void evict();
    void complete(const Query& q, int status, const unsigned char* buf, int len);
    static void on_answer(void* arg, int status, int timeouts, unsigned char* buf, int len);
};

Resolver::Impl::Impl(const ResolverSettings& s) : settings(s) {
    int status = ares_library_init(ARES_LIB_INIT_ALL);
    if (status != ARES_SUCCESS)
        throw std::runtime_error(std::string("c-ares: ") + ares_strerror(status));
    ares_options opts{};
    // A lost packet is sent again within the stage's time: c-ares waits `timeout` for the
    // first try and doubles it for each next one (a quarter, then a half, of dns-timeout).
    // A stage never waits longer than dns-timeout whatever c-ares does (wait()), and a
    // late answer still fills the cache.
    opts.timeout = static_cast<int>(std::max<long>(settings.timeout.count() / 4, 20));
    opts.tries = 3;
    opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    // Room for the answers of a burst of lookups (the kernel caps it at rmem_max).
    opts.socket_receive_buffer_size = 1 << 20;
    status = ares_init_options(
        &channel, &opts,
        ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_SOCK_RCVBUF);
    if (status != ARES_SUCCESS)
        throw std::runtime_error(std::string("c-ares: ") + ares_strerror(status));
    if (!settings.servers.empty() &&
        (status = ares_set_servers_ports_csv(channel, settings.servers.c_str())) != ARES_SUCCESS) {
        ares_destroy(channel);
        throw std::runtime_error("c-ares: dns-servers \"" + settings.servers +
                                 "\": " + ares_strerror(status));
    }
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) {
        ares_destroy(channel);
        throw std::runtime_error("eventfd failed");
    }
    thread = std::thread([this] { run(); });
}

Resolver::Impl::~Impl() {
    stopping = true;
    std::uint64_t one = 1;
    if (write(wake_fd, &one, sizeof one) < 0) {
        // The thread also wakes at least every second.
    }
    thread.join();
    ares_destroy(channel);  // calls each pending callback with ARES_EDESTRUCTION
    for (Query* q : to_send) delete q;
    close(wake_fd);
}

void Resolver::Impl::run() {
    while (!stopping) poll_once(send_pending());
}

// Sends at most kQueriesPerBatch of the queries handed in, so that the answers to a burst
// are read between sends instead of overflowing the socket's buffer; true if more wait.
bool Resolver::Impl::send_pending() {
    std::vector<Query*> batch;
    bool more = false;
    {
        std::lock_guard lock(mutex);
        std::size_t n = std::min(to_send.size(), kQueriesPerBatch);
        batch.assign(to_send.begin(), to_send.begin() + static_cast<std::ptrdiff_t>(n));
        to_send.erase(to_send.begin(), to_send.begin() + static_cast<std::ptrdiff_t>(n));
        more = !to_send.empty();
    }
    for (Query* q : batch)
        ares_query(channel, q->name.c_str(), ns_c_in, q->txt ? ns_t_txt : ns_t_a, on_answer, q);
    return more;
}

void Resolver::Impl::poll_once(bool more_to_send) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM + 1];
    nfds_t n = 0;
    fds[n++] = {wake_fd, POLLIN, 0};
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short events = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
        if (events) fds[n++] = {socks[i], events, 0};
    }
    timeval max{1, 0}, tv{};
    timeval* t = ares_timeout(channel, &max, &tv);
    int ms = more_to_send ? 0 : static_cast<int>(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
    int ready = poll(fds, n, ms);
    if (ready > 0 && (fds[0].revents & POLLIN)) {
        std::uint64_t v = 0;
        if (read(wake_fd, &v, sizeof v) < 0) {
            // Nothing to read: another wake-up took it.
        }
    }
    bool any = false;
    for (nfds_t i = 1; i < n; ++i) {
        if (!fds[i].revents) continue;
        any = true;
        bool in = fds[i].revents & (POLLIN | POLLERR | POLLHUP);
        bool out = fds[i].revents & POLLOUT;
        ares_process_fd(channel, in ? fds[i].fd : ARES_SOCKET_BAD,
                        out ? fds[i].fd : ARES_SOCKET_BAD);
    }
    if (!any) ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
}

void Resolver::Impl::request(const std::string& name, bool txt) {
    to_send.push_back(new Query{this, name, txt});
    counts.queries_sent++;
}

void Resolver::Impl::start_locked(const std::string& name, bool txt) {
    counts.lookups++;
    Clock::time_point now = Clock::now();
    auto it = entries.find(name);
    if (it != entries.end()) {
        Entry& e = it->second;
        bool fresh = !e.done() || (e.expires > now && e.answer.status != DnsAnswer::Status::Failed);
        if (fresh) {
            counts.cache_hits++;
            touch(e);
            if (txt && !e.txt_wanted) {
                e.txt_wanted = true;
                request(name, true);
            }
            return;
        }
        bytes -= e.bytes;
        lru.erase(e.lru);
        entries.erase(it);
    }
    lru.push_front(name);
    Entry& e = entries[name];
    e.lru = lru.begin();
    e.txt_wanted = txt;
    e.bytes = 2 * name.size() + sizeof(Entry) + 64;
    bytes += e.bytes;
    request(name, false);
    if (txt) request(name, true);
    evict();
}

// The least recently used entries go until the cache is within both bounds.
void Resolver::Impl::evict() {
    while (!lru.empty() && (entries.size() > settings.max_entries || bytes > settings.max_bytes)) {
        auto it = entries.find(lru.back());
        bytes -= it->second.bytes;
        entries.erase(it);
        lru.pop_back();
    }
}

void Resolver::Impl::complete(const Query& q, int status, const unsigned char* buf, int len) {
    std::lock_guard lock(mutex);
    auto it = entries.find(q.name);
    if (it == entries.end()) return;  // evicted meanwhile
    Entry& e = it->second;
    if (q.txt) {
        e.answer.txt = parse_txt(status, buf, len);
        e.txt_done = true;
    } else {
        Parsed p = parse_a(status, buf, len);
        e.answer.status = p.status;
        e.answer.addresses = std::move(p.addresses);
        e.answer.error = std::move(p.error);
        e.expires = Clock::now() + std::min<std::chrono::seconds>(p.ttl, kMaxCacheTtl);
        e.a_done = true;
        if (p.status == DnsAnswer::Status::Failed) counts.failures++;
    }
    std::size_t size = 2 * q.name.size() + sizeof(Entry) + 64 + e.answer.txt.size() +
                       e.answer.error.size() + 4 * e.answer.addresses.size();
    bytes = bytes - e.bytes + size;
    e.bytes = size;
    answered.notify_all();
    evict();
}

void Resolver::Impl::on_answer(void* arg, int status, int, unsigned char* buf, int len) {
    std::unique_ptr<Query> q(static_cast<Query*>(arg));
    q->impl->complete(*q, status, buf, len);
}

Resolver::Resolver(const ResolverSettings& settings) : impl_(std::make_unique<Impl>(settings)) {}

Resolver::~Resolver() = default;

void Resolver::start(const std::string& name, bool txt) {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->start_locked(name, txt);
    }
    std::uint64_t one = 1;
    if (write(impl_->wake_fd, &one, sizeof one) < 0) {
        // The counter is full only with wake-ups pending: the thread is about to run.
    }
}

std::vector<DnsAnswer> Resolver::wait(std::span<const std::string> names, bool txt,
                                      Clock::time_point deadline) {
    std::unique_lock lock(impl_->mutex);
    auto ready = [&] {
        for (const auto& name : names) {
            auto it = impl_->entries.find(name);
            if (it != impl_->entries.end() && !it->second.done()) return false;
        }
        return true;
    };
    impl_->answered.wait_until(lock, deadline, ready);
    std::vector<DnsAnswer> out;
    for (const auto& name : names) {
        auto it = impl_->entries.find(name);
        if (it == impl_->entries.end() || !it->second.a_done) {
            DnsAnswer timeout;
            timeout.error = it == impl_->entries.end() ? "not looked up" : "timeout";
            out.push_back(std::move(timeout));
            continue;
        }
        out.push_back(it->second.answer);
        if (txt && !it->second.txt_done) out.back().txt.clear();
    }
    return out;
}

ResolverStats Resolver::stats() const {
    std::lock_guard lock(impl_->mutex);
    ResolverStats s = impl_->counts;
    s.entries = impl_->entries.size();
    s.bytes = impl_->bytes;
    return s;
}

}  // namespace pm
