// SPDX-License-Identifier: BSD-2-Clause
#include "policy/delegation.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "policy/esmtp.h"

namespace pm {

std::string_view PolicyRequest::get(std::string_view name) const {
    for (const auto& [n, v] : attributes)
        if (n == name) return v;
    return {};
}

namespace {

// Postfix's attribute names are lower-case words with '_' (client_address, ccert_subject).
bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    return true;
}

}  // namespace

RequestReader::Result RequestReader::line(std::string_view text, PolicyRequest& out,
                                          std::string& why) {
    if (text.empty()) {  // the end of a request; an empty line before any is ignored
        if (building_.attributes.empty()) return Result::NeedMore;
        out = std::move(building_);
        building_ = {};
        request_bytes_ = 0;
        return Result::Request;
    }
    auto eq = text.find('=');
    if (eq == std::string_view::npos || !valid_name(text.substr(0, eq))) {
        why = eq == std::string_view::npos ? "a line without '='" : "an invalid attribute name";
        return Result::Error;
    }
    std::string_view name = text.substr(0, eq), value = text.substr(eq + 1);
    for (auto& [n, v] : building_.attributes)
        if (n == name) {  // a repeated attribute: the last one counts
            v = std::string(value);
            return Result::NeedMore;
        }
    if (building_.attributes.size() == kMaxPolicyAttributes) {
        why = "more than " + std::to_string(kMaxPolicyAttributes) + " attributes";
        return Result::Error;
    }
    building_.attributes.emplace_back(std::string(name), std::string(value));
    return Result::NeedMore;
}

RequestReader::Result RequestReader::feed(std::string_view& data, PolicyRequest& out,
                                          std::string& why) {
    while (!data.empty()) {
        auto nl = data.find('\n');
        std::string_view piece = data.substr(0, nl);
        if (piece.find('\0') != std::string_view::npos) {
            why = "a NUL byte";
            return Result::Error;
        }
        if (partial_.size() + piece.size() > kMaxPolicyLine ||
            request_bytes_ + piece.size() > kMaxPolicyRequest) {
            why = partial_.size() + piece.size() > kMaxPolicyLine
                      ? "a line longer than " + std::to_string(kMaxPolicyLine) + " bytes"
                      : "a request larger than " + std::to_string(kMaxPolicyRequest) + " bytes";
            return Result::Error;
        }
        request_bytes_ += piece.size() + 1;
        if (nl == std::string_view::npos) {
            partial_.append(piece);
            data = {};
            return Result::NeedMore;
        }
        data.remove_prefix(nl + 1);
        std::string whole = std::move(partial_);
        partial_.clear();
        whole.append(piece);
        Result r = line(whole, out, why);
        if (r != Result::NeedMore) return r;
    }
    return Result::NeedMore;
}

std::optional<Stage> stage_of_state(std::string_view s) {
    // Postfix's protocol_state is the SMTP command's name: a client using CHUNKING has
    // smtpd_data_restrictions run at its first BDAT, as "BDAT".
    static constexpr std::array<std::pair<std::string_view, Stage>, 10> kStates = {{
        {"CONNECT", Stage::Connect},
        {"EHLO", Stage::Helo},
        {"HELO", Stage::Helo},
        {"MAIL", Stage::Mail},
        {"RCPT", Stage::Rcpt},
        {"DATA", Stage::Data},
        {"BDAT", Stage::Data},
        {"END-OF-MESSAGE", Stage::Message},
        {"VRFY", Stage::Vrfy},
        {"ETRN", Stage::Etrn},
    }};
    for (const auto& [name, stage] : kStates)
        if (name == s) return stage;
    return std::nullopt;
}

std::string_view without_postfix_prefix(std::string_view text) {
    // "<" ANYTHING-BUT-">" ">: " CLASS " rejected: ", as smtpd_check.c writes it.
    static constexpr std::array<std::string_view, 8> kClasses = {
        "Client host",       "Unverified Client host", "Helo command", "Sender address",
        "Recipient address", "Etrn command",           "Data command", "End-of-data"};
    if (text.empty() || text.front() != '<') return text;
    auto close = text.find(">: ");
    if (close == std::string_view::npos) return text;
    std::string_view rest = text.substr(close + 3);
    for (std::string_view c : kClasses)
        if (rest.substr(0, c.size()) == c && rest.substr(c.size(), 11) == " rejected: ")
            return rest.substr(c.size() + 11);
    return text;
}

std::string action_of(const Decision& d) {
    switch (d.verdict) {
        case Verdict::Continue:
        case Verdict::Pass: break;
        case Verdict::Accept: return "OK";
        case Verdict::Discard: return "DISCARD";
        case Verdict::Quarantine:
            return d.quarantine_reason.empty() ? "HOLD" : "HOLD " + d.quarantine_reason;
        case Verdict::Reject:
        case Verdict::Tempfail:
            if (!d.reply) return d.verdict == Verdict::Reject ? "REJECT" : "DEFER";
            return std::to_string(d.reply->code) + ' ' + d.reply->enhanced.to_string() + ' ' +
                   std::string(without_postfix_prefix(d.reply->text));
    }
    // One action per reply: the first header an add-header rule added.
    if (!d.headers_to_add.empty())
        return "PREPEND " + d.headers_to_add.front().first + ": " + d.headers_to_add.front().second;
    return "DUNNO";
}

// ---- DelegationSession ------------------------------------------------------------------

namespace {

// Whether an earlier stage run on the way to a request's own answers that request. Its
// accept does not: it means no more rules for the session (DUNNO from here on), as with
// the milter, never Postfix's OK, which would also skip the rest of Postfix's list.
bool decides(const Decision& d) {
    return d.verdict != Verdict::Continue && d.verdict != Verdict::Pass &&
           d.verdict != Verdict::Accept;
}

std::uint64_t number(std::string_view text) {
    return parse_esmtp_size(text).value_or(0);
}

std::uint32_t port_of(std::string_view text) {
    std::uint32_t port = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    return ec == std::errc{} && p == text.data() + text.size() && port <= 65535 ? port : 0;
}

// Postfix's unverified name is "unknown"; Facts::set_client takes "" for it.
std::string_view client_name(const PolicyRequest& r) {
    std::string_view name = r.get("client_name");
    return name == "unknown" ? std::string_view{} : name;
}

}  // namespace

DelegationSession::DelegationSession(std::shared_ptr<const Policy> policy, CounterStore& store,
                                     ConversationOptions options, GreylistStore* greylist)
    : conversation_(std::move(policy), store, options, greylist) {}

bool DelegationSession::same_client(const PolicyRequest& r) const {
    return connected_ && r.get("client_address") == client_address_ &&
           r.get("client_port") == client_port_;
}

// The session's connect and helo, once each (helo again when the name changes: EHLO
// after STARTTLS, or a client that says another name).
std::optional<Decision> DelegationSession::catch_up(Stage stage, const PolicyRequest& r) {
    if (!connected_ || stage == Stage::Connect) {
        connected_ = true;
        helo_seen_ = mail_seen_ = false;
        client_address_ = std::string(r.get("client_address"));
        client_port_ = std::string(r.get("client_port"));
        Decision d =
            conversation_.connect(parse_ip(client_address_), client_name(r), port_of(client_port_));
        if (stage == Stage::Connect || decides(d)) return d;
    }
    std::string_view helo = r.get("helo_name");
    if (stage == Stage::Helo || (!helo.empty() && (!helo_seen_ || helo != helo_))) {
        helo_seen_ = true;
        helo_ = std::string(helo);
        Decision d = conversation_.helo(helo);
        if (stage == Stage::Helo || decides(d)) return d;
    }
    return std::nullopt;
}

// MAIL, for a MAIL request or the first request of a new instance.
std::optional<Decision> DelegationSession::start_mail(Stage stage, const PolicyRequest& r) {
    std::string_view instance = r.get("instance");
    // Postfix names the instance only once MAIL has passed its restrictions: a MAIL request
    // has none, and the transaction it started takes the first instance that follows.
    if (stage != Stage::Mail && mail_seen_ && (instance == instance_ || instance_.empty())) {
        instance_ = std::string(instance);
        return std::nullopt;
    }
    instance_ = std::string(instance);
    mail_seen_ = true;
    recipient_bytes_ = 0;
    bool tls = !r.get("encryption_protocol").empty();
    Decision d = conversation_.mail("<" + std::string(r.get("sender")) + ">",
                                    r.get("sasl_username"), number(r.get("size")), tls);
    if (stage == Stage::Mail || decides(d)) return d;
    return std::nullopt;
}

// A transaction's request after MAIL: RCPT, DATA or END-OF-MESSAGE.
Decision DelegationSession::transaction_step(Stage stage, const PolicyRequest& r, Answer& a) {
    if (stage == Stage::Rcpt) {
        recipient_bytes_ += r.get("recipient").size();
        if (conversation_.facts().accepted_recipients.size() >= kMaxTransactionRecipients ||
            recipient_bytes_ > kMaxTransactionRecipientBytes) {
            conversation_.abort();  // and MAIL again, from this request
            recipient_bytes_ = 0;
            if (auto d = start_mail(Stage::Mail, r); d && decides(*d)) return *d;
        }
        a.recipient = std::string(Address::unwrap(r.get("recipient")));
        return conversation_.rcpt("<" + std::string(r.get("recipient")) + ">");
    }
    // Postfix's recipient_count: the recipients it accepted, also those the service was
    // not asked about.
    auto known = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(number(r.get("recipient_count")), kMaxTransactionRecipients));
    if (stage == Stage::Data) return conversation_.data(known, r.get("recipient"));
    std::uint64_t size = number(r.get("size"));
    if (size > conversation_.facts().message_size)
        conversation_.body_bytes(size - conversation_.facts().message_size);
    Decision d = conversation_.message(known, r.get("recipient"));
    mail_seen_ = false;  // the transaction ended: a request of it again starts another
    instance_.clear();
    return d;
}

// The stages one request runs wait for DNS dns-timeout in all, not each (review finding:
// the first RCPT of a session waited up to four times dns-timeout).
DelegationSession::Answer DelegationSession::handle(Stage stage, const PolicyRequest& r,
                                                    bool commit_at_end) {
    Facts known;
    known.set_client(parse_ip(r.get("client_address")), client_name(r), 0);
    known.set_helo(r.get("helo_name"));
    known.set_sender("<" + std::string(r.get("sender")) + ">", "", 0, false);
    known.recipient = Address::from_smtp("<" + std::string(r.get("recipient")) + ">");
    conversation_.begin_dns_request(known);
    Answer a = answer(stage, r, commit_at_end);
    conversation_.end_dns_request();
    return a;
}

DelegationSession::Answer DelegationSession::answer(Stage stage, const PolicyRequest& r,
                                                    bool commit_at_end) {
    Answer a;
    if (auto d = catch_up(stage, r)) {
        a.decision = std::move(*d);
        return a;
    }
    if (stage == Stage::Vrfy || stage == Stage::Etrn) {
        a.recipient = std::string(Address::unwrap(r.get("recipient")));
        a.decision = stage == Stage::Vrfy ? conversation_.vrfy("<" + a.recipient + ">")
                                          : conversation_.etrn(r.get("etrn_domain"));
        if (stage == Stage::Etrn) a.recipient.clear();
        return a;
    }
    if (auto d = start_mail(stage, r)) {
        a.decision = std::move(*d);
    } else if (stage != Stage::Mail) {
        a.decision = transaction_step(stage, r, a);
    }
    if (!commit_at_end && stage != Stage::Message) conversation_.commit_now(a.decision);
    return a;
}

// ---- SessionTable -----------------------------------------------------------------------

void SessionTable::expire(Clock::time_point now) {
    while (!lru_.empty() && (lru_.size() > capacity_ || now - lru_.back().used > idle_)) {
        by_instance_.erase(lru_.back().instance);
        lru_.pop_back();
    }
}

std::shared_ptr<DelegationSession> SessionTable::find(std::string_view instance,
                                                      Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mutex_);
    expire(now);
    auto it = by_instance_.find(instance);
    if (it == by_instance_.end()) return nullptr;
    it->second->used = now;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->session;
}

void SessionTable::put(const std::string& instance, std::shared_ptr<DelegationSession> session,
                       Clock::time_point now) {
    std::shared_ptr<DelegationSession> old;  // released outside the lock
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = by_instance_.find(instance); it != by_instance_.end()) {
        old = std::exchange(it->second->session, std::move(session));
        it->second->used = now;
        lru_.splice(lru_.begin(), lru_, it->second);
        return;
    }
    lru_.push_front(Entry{instance, std::move(session), now});
    by_instance_.emplace(lru_.front().instance, lru_.begin());
    expire(now);
}

std::size_t SessionTable::size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return lru_.size();
}

}  // namespace pm
