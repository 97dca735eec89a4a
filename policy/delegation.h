// SPDX-License-Identifier: BSD-2-Clause
// POLICY DELEGATION (pure: no sockets)
//   RequestReader         bytes in, Postfix policy requests out, bounded (or an error)
//   stage_of_state(s)     protocol_state -> the stage its rules run at
//   action_of(d)          a decision as the value of Postfix's action= reply
//   without_postfix_prefix(text)   a reply text without the prefix Postfix adds itself
//   DelegationSession     one SMTP session as its requests describe it, driving a
//                         Conversation through the steps the requests imply
//   SessionTable          sessions by `instance`, bounded, least recently used out first
//
// Postfix's SMTPD_POLICY_README: a request is lines of name=value ending with an empty
// line; the reply is "action=..." and an empty line; one connection carries many
// requests. The milter front end and this one drive the same Conversation, so one rule
// set decides both (policy-milter.rules(5), POLICY DELEGATION).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "policy/conversation.h"
#include "policy/decision.h"
#include "policy/stage.h"

namespace pm {

// A request line ("name=value") at most, newline excluded. Postfix's own limit on what
// it reads and writes as one attribute line: line_length_limit's default, 2048, is the
// SMTP command line; attributes such as ccert_subject are shorter. Twice that leaves room.
inline constexpr std::size_t kMaxPolicyLine = 4096;
// One request at most, and the attributes in it (Postfix 3.7 sends about 40).
inline constexpr std::size_t kMaxPolicyRequest = 64 * 1024;
inline constexpr std::size_t kMaxPolicyAttributes = 128;
// What one transaction keeps of its accepted recipients, at most: Postfix's default
// smtpd_recipient_limit, and 64 KiB of addresses. A transaction that goes beyond (only a
// hostile client of the policy socket can) starts afresh, so that a session's memory
// stays bounded, and the table's with it.
inline constexpr std::size_t kMaxTransactionRecipients = 1000;
inline constexpr std::size_t kMaxTransactionRecipientBytes = 64 * 1024;

struct PolicyRequest {
    std::vector<std::pair<std::string, std::string>> attributes;  // in order, names unique

    // The value of `name`, empty if absent.
    std::string_view get(std::string_view name) const;
};

// Splits the bytes of one connection into requests.
class RequestReader {
  public:
    enum class Result { NeedMore, Request, Error };
    // Takes what it can from `data` (advancing it) until one request is complete (Request,
    // into `out`), the bytes run out (NeedMore), or the input breaks the protocol (Error,
    // with `why`): a line longer than kMaxPolicyLine, a request larger than
    // kMaxPolicyRequest or with more than kMaxPolicyAttributes, a line without '=' or
    // with an empty or odd name, a NUL byte. After an Error the connection is closed.
    Result feed(std::string_view& data, PolicyRequest& out, std::string& why);

  private:
    Result line(std::string_view text, PolicyRequest& out, std::string& why);

    std::string partial_;  // the current line's bytes so far
    PolicyRequest building_;
    std::size_t request_bytes_ = 0;
};

// CONNECT, EHLO, HELO, MAIL, RCPT, DATA (and BDAT), END-OF-MESSAGE, VRFY, ETRN; nullopt
// otherwise.
std::optional<Stage> stage_of_state(std::string_view protocol_state);

// pass or no decision: DUNNO; accept: OK; reject, tempfail: "550 5.7.1 text";
// discard: DISCARD; quarantine: HOLD; add-header: PREPEND Name: value.
std::string action_of(const Decision& d);

// Postfix puts "<ADDRESS>: Recipient address rejected: " (or Client host, Helo command,
// Sender address, Etrn command, Data command, End-of-data) in front of a policy service's
// reject text. A text that begins with that prefix already loses it here, so the client
// sees it once.
std::string_view without_postfix_prefix(std::string_view text);

// One SMTP session as Postfix's requests describe it. A request may be the first this
// session hears (the service listed only in smtpd_recipient_restrictions sees RCPT and
// nothing before): the steps before it run first, from the request's attributes, and the
// first that decides anything but pass answers the request.
class DelegationSession {
  public:
    // `greylist`: as Conversation's, the daemon's one store, so that a triplet passed
    // through one front end has passed for the other.
    DelegationSession(std::shared_ptr<const Policy> policy, CounterStore& store,
                      ConversationOptions options, GreylistStore* greylist = nullptr);

    struct Answer {
        Decision decision;
        std::string recipient;  // of an rcpt or vrfy decision, for the log
    };
    // `commit_at_end`: counts wait for the END-OF-MESSAGE request; otherwise each accepted
    // request of a transaction commits what it counted at once.
    Answer handle(Stage stage, const PolicyRequest& r, bool commit_at_end);
    // The same SMTP session: the same client address and port.
    bool same_client(const PolicyRequest& r) const;
    void use_policy(std::shared_ptr<const Policy> policy) { conversation_.use_policy(policy); }
    const Facts& facts() const { return conversation_.facts(); }

    // Several connections may hand requests of one instance in (a reconnect); one at a time.
    std::mutex mutex;

  private:
    Answer answer(Stage stage, const PolicyRequest& r, bool commit_at_end);
    std::optional<Decision> catch_up(Stage stage, const PolicyRequest& r);
    std::optional<Decision> start_mail(Stage stage, const PolicyRequest& r);
    Decision transaction_step(Stage stage, const PolicyRequest& r, Answer& a);

    Conversation conversation_;
    bool connected_ = false;
    bool helo_seen_ = false;
    bool mail_seen_ = false;           // in the current instance
    std::size_t recipient_bytes_ = 0;  // of the transaction's recipients so far
    std::string client_address_, client_port_, helo_, instance_;
};

// Sessions by instance, at most `capacity`, each forgotten `idle` after its last use.
class SessionTable {
  public:
    using Clock = std::chrono::steady_clock;
    SessionTable(std::size_t capacity, std::chrono::seconds idle)
        : capacity_(capacity), idle_(idle) {}

    std::shared_ptr<DelegationSession> find(std::string_view instance, Clock::time_point now);
    void put(const std::string& instance, std::shared_ptr<DelegationSession> session,
             Clock::time_point now);
    std::size_t size() const;

  private:
    struct Entry {
        std::string instance;
        std::shared_ptr<DelegationSession> session;
        Clock::time_point used;
    };
    void expire(Clock::time_point now);

    std::size_t capacity_;
    std::chrono::seconds idle_;
    mutable std::mutex mutex_;
    std::list<Entry> lru_;  // most recently used first
    std::unordered_map<std::string_view, std::list<Entry>::iterator> by_instance_;
};

}  // namespace pm
