// SPDX-License-Identifier: BSD-2-Clause
// The Postfix policy-delegation front end (`policy-socket = unix:PATH | inet:PORT@HOST`;
// policy-milter(8), POLICY DELEGATION): the daemon's rules, store and reload, served to
// Postfix's check_policy_service beside the milter socket. Requests are read and mapped
// by policy/delegation.h; this is the socket side.
//
//   PolicyServer::open(spec, ...)   still root: binds the socket (a unix socket gets
//                                   socket-mode and the daemon's user and socket-group)
//   PolicyServer::start(settings)   after the fork: the accept loop on a thread
//   PolicyServer::stop()            closes every connection and waits for their threads
//
// Each connection has a thread of its own, reading requests one after another; at most
// max_connections at once (another is closed at once), each closed after idle_timeout
// without a request, after input that breaks the protocol (garbage, a line or request
// over the bounds), or when writing a reply takes longer than write_timeout. A closed
// connection costs Postfix a reconnect; nothing else.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "config/socket_spec.h"
#include "policy/conversation.h"
#include "policy/delegation.h"

namespace pm {

struct PolicyServiceSettings {
    // The policy and switches in force now: read at each request, so that a reload (SIGHUP)
    // applies to the policy service as to the milter, from each session's next transaction.
    std::function<std::shared_ptr<const Policy>()> policy;
    std::function<ConversationOptions()> options;
    CounterStore* store = nullptr;
    GreylistStore* greylist = nullptr;  // the milter's, shared the same way
    std::size_t max_connections = 1000;
    // Longer than Postfix's smtpd_policy_service_max_idle (300 s), which closes first.
    std::chrono::milliseconds idle_timeout{330000};
    std::chrono::milliseconds write_timeout{10000};
    // Instances remembered (SessionTable): with kMaxTransactionRecipientBytes each, 256 MiB
    // at most however hostile the requests; Postfix has one transaction per smtpd process.
    std::size_t max_sessions = 4096;
    std::chrono::seconds session_idle{3600};
};

class PolicyServer {
  public:
    PolicyServer() = default;
    ~PolicyServer();
    PolicyServer(const PolicyServer&) = delete;
    PolicyServer& operator=(const PolicyServer&) = delete;

    // Binds and listens; false with `why`. A unix socket file that nobody answers on is
    // replaced; one a live process answers on is not.
    bool open(const SocketSpec& spec, mode_t mode, uid_t uid, gid_t gid, std::string& why);
    bool start(PolicyServiceSettings settings, std::string& why);
    void stop();
    bool is_open() const { return fd_ >= 0; }
    unsigned port() const;  // an inet socket's port, as bound (for tests: port 0)
    std::size_t connections() const;

  private:
    void run();
    void serve(int client);
    bool answer_request(const PolicyRequest& r, std::shared_ptr<DelegationSession>& current,
                        std::string& reply);
    std::shared_ptr<DelegationSession> session_for(const PolicyRequest& r,
                                                   std::shared_ptr<DelegationSession>& current);
    void finished(int client);

    int fd_ = -1;
    int stop_fd_ = -1;
    std::string path_;  // a unix socket's file, removed at stop
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    PolicyServiceSettings settings_;
    std::unique_ptr<SessionTable> sessions_;
    std::atomic<bool> end_of_message_seen_{false};
    std::thread thread_;
    mutable std::mutex mutex_;
    std::condition_variable all_done_;
    std::size_t active_ = 0;
};

}  // namespace pm
