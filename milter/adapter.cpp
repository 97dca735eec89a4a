// SPDX-License-Identifier: BSD-2-Clause
#include "milter/adapter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "milter/decision_log.h"
#include "milter/quick_ack.h"
#include "milter/reply_encoding.h"
#include "milter/stats.h"
#include "policy/esmtp.h"

namespace pm {

namespace {

AdapterSettings g_settings;

// --- what the loaded policy needs from the MTA ---------------------------------------

struct Needs {
    bool helo = false, mail = false, rcpt = false;
    bool headers = false, body = false;
    bool unknown = false;  // the unknown stage: xxfi_unknown
    bool add_header = false, quarantine = false;
    // Macros at MAIL beyond the queue id: without {auth_authen} auth.user is always "",
    // without {tls_version} tls is always false.
    bool auth_macro = false, tls_macro = false;
    // Macros at connect beyond {client_name}: {client_ptr} for client.ptr and
    // client.resolve, {client_resolve} for client.resolve (Sendmail's; Postfix has none).
    bool ptr_macro = false, resolve_macro = false;
    // By stage, connect to data and unknown: the MTA waits for the reply of that step.
    // Wanted where a rule or limit of the stage can decide; granted where it was not
    // negotiated as no-reply (SMFIP_NR_*). End of message is always answered.
    std::array<bool, kStageCount> reply{};
    // The step whose continue becomes accept: nothing after it can decide (early_accept).
    std::optional<Stage> accept_at;
};

// Where filtering can end early with SMFIS_ACCEPT: at the step after which no rule, no
// limit (a transaction's counts are committed at end of message), no add-header and no
// quarantine can decide any more. Message-level at MAIL or DATA, connection-level at
// connect. Never at RCPT: a later recipient of the same message could still be refused
// (ACCEPT there would end the message for all of them). Never at HELO: a client repeats
// it after STARTTLS, and a helo rule decides again.
std::optional<Stage> early_accept(const Policy& p) {
    auto used = [&](Stage s) { return p.stage_used(s); };
    // An unknown command may come at any time: an accept, of the connection or of a
    // message, would keep it from the milter.
    if (used(Stage::Unknown)) return std::nullopt;
    bool transaction_limit = false;
    if (p.has_limits())
        for (const Statement& s : p.statements())
            if (s.is_limit() && s.stage >= Stage::Mail && s.stage <= Stage::Message)
                transaction_limit = true;
    if (used(Stage::Message) || transaction_limit || p.uses_action(ActionKind::AddHeader) ||
        p.uses_action(ActionKind::Quarantine))
        return std::nullopt;
    if (used(Stage::Data) || used(Stage::Rcpt)) return Stage::Data;
    if (used(Stage::Mail)) return Stage::Mail;
    if (used(Stage::Helo)) return std::nullopt;
    return Stage::Connect;
}

Needs needs_of(const Policy& p) {
    Needs n;
    auto used = [&](Stage s) { return p.stage_used(s); };
    // A bytes limit at message marks message.size as used too (the parser sees to it).
    bool message_size = p.uses_field(FieldId::MessageSize);
    n.add_header = p.uses_action(ActionKind::AddHeader);
    n.quarantine = p.uses_action(ActionKind::Quarantine);
    // Also where no rule reads it: every decision line says helo=<...> (policy-milter(8),
    // LOGGING), and where no rule decides at HELO the step has no reply, no MTA wait. Not
    // for a connection accepted at connect: nothing after it is decided or logged.
    n.helo = early_accept(p) != Stage::Connect || used(Stage::Helo) || p.uses_field(FieldId::Helo);
    n.rcpt = used(Stage::Rcpt) || used(Stage::Data) || used(Stage::Message);
    n.mail = used(Stage::Mail) || n.rcpt;
    n.headers = used(Stage::Message) && (p.uses_field(FieldId::Header) || message_size);
    n.body = used(Stage::Message) && (message_size || !p.body_patterns().empty());
    n.unknown = used(Stage::Unknown);
    n.auth_macro = p.uses_field(FieldId::AuthUser);
    n.tls_macro = p.uses_field(FieldId::Tls);
    n.resolve_macro = p.uses_field(FieldId::ClientResolve);
    n.ptr_macro = n.resolve_macro || p.uses_field(FieldId::ClientPtr);
    for (Stage s :
         {Stage::Connect, Stage::Helo, Stage::Mail, Stage::Rcpt, Stage::Data, Stage::Unknown})
        n.reply[stage_index(s)] = used(s);
    n.accept_at = early_accept(p);
    return n;
}

// A step negotiated as no-reply cannot carry a decision of a reloaded policy.
bool replies_cover(const Needs& granted, const Needs& wanted) {
    for (std::size_t i = 0; i < kStageCount; ++i)
        if (wanted.reply[i] && !granted.reply[i]) return false;
    return true;
}

// True if a connection negotiated for `granted` can run a policy that needs `wanted`.
bool covers(const Needs& granted, const Needs& wanted) {
    auto ok = [](bool have, bool want) { return have || !want; };
    return ok(granted.helo, wanted.helo) && ok(granted.mail, wanted.mail) &&
           ok(granted.rcpt, wanted.rcpt) && ok(granted.headers, wanted.headers) &&
           ok(granted.body, wanted.body) && ok(granted.unknown, wanted.unknown) &&
           ok(granted.add_header, wanted.add_header) && ok(granted.quarantine, wanted.quarantine) &&
           ok(granted.auth_macro, wanted.auth_macro) && ok(granted.tls_macro, wanted.tls_macro) &&
           ok(granted.ptr_macro, wanted.ptr_macro) &&
           ok(granted.resolve_macro, wanted.resolve_macro) && replies_cover(granted, wanted);
}

// Everything the adapter keeps for one MTA connection, across several messages. Made at
// xxfi_negotiate, which tells the MTA which callbacks and actions this connection needs
// (`granted`, for the policy of that moment); at xxfi_connect when there was none.
struct Connection {
    Connection(ConversationOptions options, std::shared_ptr<const Policy> negotiated,
               std::optional<Needs> needs)
        : granted(needs),
          policy(std::move(negotiated)),
          conversation(policy, *g_settings.store, options, g_settings.greylist) {}

    // needs_of(the policy in force), computed once per policy.
    const Needs& needs() {
        if (needs_for != policy) {
            needs_for = policy;
            current = needs_of(*policy);
        }
        return current;
    }

    // The policy for the connection and then for each new transaction, handed to the
    // conversation at connect and at each MAIL: the latest one,
    // unless it needs a callback, an action or a macro this connection did not negotiate
    // (a reload cannot renegotiate: its rules would see no headers, say, fail to
    // quarantine, or take every authenticated client for one that is not).
    // Then the connection keeps the policy it has, whole, until it ends.
    std::shared_ptr<const Policy> policy_in_force() {
        std::shared_ptr<const Policy> latest = g_settings.policy();
        if (!policy) return policy = std::move(latest);  // never run without rules
        if (latest == policy || latest == refused) return policy;
        if (!granted || covers(*granted, needs_of(*latest))) {
            policy = std::move(latest);
        } else {
            spdlog::debug(
                "an open connection keeps its rules: the reloaded ones need "
                "callbacks, actions or macros it did not negotiate");
            refused = std::move(latest);
        }
        return policy;
    }

    std::optional<Needs> granted;           // none: not negotiated (SMFIC_QUIT_NC)
    std::shared_ptr<const Policy> policy;   // in force for this connection
    std::shared_ptr<const Policy> refused;  // a newer one it cannot run
    std::shared_ptr<const Policy> needs_for;
    Needs current;
    // The steps negotiated as no-reply (SMFIP_NR_*), kept for the whole MTA connection
    // (SMFIC_QUIT_NC starts another session on it without a new negotiation).
    unsigned long no_reply = 0;
    MilterSocket socket;  // to acknowledge what gets no reply (quick_ack.h)
    // A local error at a step without reply, answered at every later step that has one
    // for as long as the error's scope lasts: a session's (connect, HELO) with 421 until
    // the session ends, a transaction's with 451 until it ends.
    enum class Deferred { None, Transaction, Session } deferred = Deferred::None;
    void end_transaction() {
        if (deferred == Deferred::Transaction) deferred = Deferred::None;
    }
    Conversation conversation;
    // The MTA's queue id for the log, the one thing of the session only the adapter knows;
    // empty until the MTA names one.
    std::string queue_id;
};

// What an MTA connection negotiated, by libmilter context. A session after SMFIC_QUIT_NC
// runs on the same MTA connection without a negotiation of its own, and libmilter keeps
// the flags: its callbacks must still answer no-reply steps with SMFIS_NOREPLY (any other
// status would send a reply the MTA does not read). libmilter frees a context without
// telling the filter, so entries stay; each negotiation replaces that of its context's
// address, and libmilter's allocations reuse addresses: about one entry per connection
// open at the peak. An entry counts only while its socket is still the context's: a new
// MTA connection in a reused context has another (no_reply is asked for only when the
// socket is known).
struct Negotiated {
    Needs granted;
    unsigned long no_reply = 0;
    MilterSocket socket;
    // The policy the connection ran when its session ended: the next session keeps it
    // unless a reload it can run came in between (policy_in_force()). Weak: a record
    // outlives its connection, and must not keep a replaced policy alive.
    std::weak_ptr<const Policy> policy;
};
std::mutex g_negotiated_mutex;
std::unordered_map<const void*, Negotiated> g_negotiated;

std::size_t g_negotiated_sweep_at = 1024;

// An entry whose socket is no longer open (or is another socket now) belongs to an MTA
// connection that has ended.
bool ended(const Negotiated& n) {
    struct stat st;
    return fstat(n.socket.fd, &st) != 0 || st.st_ino != n.socket.inode;
}

void remember_negotiation(SMFICTX* ctx, const Negotiated& n) {
    std::lock_guard lock(g_negotiated_mutex);
    g_negotiated[ctx] = n;
    // Should addresses not be reused, the ended connections' entries go now and then:
    // the map stays within twice the connections open (at least 1,024 entries).
    if (g_negotiated.size() >= g_negotiated_sweep_at) {
        std::erase_if(g_negotiated, [](const auto& entry) { return ended(entry.second); });
        g_negotiated_sweep_at = std::max<std::size_t>(1024, 2 * g_negotiated.size());
    }
}

// At the end of a session: the policy the next session on this MTA connection (after
// SMFIC_QUIT_NC) starts from.
void remember_policy(SMFICTX* ctx, const std::shared_ptr<const Policy>& policy) {
    std::lock_guard lock(g_negotiated_mutex);
    if (auto it = g_negotiated.find(ctx); it != g_negotiated.end()) it->second.policy = policy;
}

std::optional<Negotiated> negotiation_of(SMFICTX* ctx) {
    std::optional<MilterSocket> socket = milter_socket_of(ctx);
    std::lock_guard lock(g_negotiated_mutex);
    auto it = g_negotiated.find(ctx);
    if (it == g_negotiated.end()) return std::nullopt;
    if (!socket || socket->fd != it->second.socket.fd || socket->inode != it->second.socket.inode) {
        g_negotiated.erase(it);  // another MTA connection's
        return std::nullopt;
    }
    return it->second;
}

Connection* connection_of(SMFICTX* ctx) {
    return static_cast<Connection*>(smfi_getpriv(ctx));
}

// Every callback after connect needs the context; its absence is a local error.
Connection& require_connection(SMFICTX* ctx) {
    Connection* c = connection_of(ctx);
    if (!c) throw std::logic_error("no connection context (connect callback missing)");
    return *c;
}

// A view of libmilter's copy of the macro, valid during the callback: most are only
// tested or compared, and a string per lookup would cost an allocation.
std::string_view macro(SMFICTX* ctx, const char* name) {
    const char* value = smfi_getsymval(ctx, const_cast<char*>(name));
    return value ? value : "";
}

void refresh_queue_id(SMFICTX* ctx, Connection& c) {
    std::string_view id = macro(ctx, "i");
    // Asked at every step of a transaction, the same id each time once it is known.
    if (!id.empty() && id != c.queue_id) c.queue_id = id;
}

// The least severe decision line the logger writes. Most events decide nothing and log
// at debug, usually off: their lines are then never formatted (most of the log's cost).
LogLevel lowest_logged_level() {
    if (spdlog::should_log(spdlog::level::debug)) return LogLevel::Debug;
    if (spdlog::should_log(spdlog::level::info)) return LogLevel::Info;
    return LogLevel::Warning;
}

void log_decision(const Decision& d, const Connection& c, std::string_view recipient) {
    LogEvent event{c.queue_id, recipient};
    auto lines = decision_log_lines(d, c.conversation.facts(), event, lowest_logged_level());
    for (const auto& line : lines) {
        switch (line.level) {
            case LogLevel::Debug: spdlog::debug("{}", line.text); break;
            case LogLevel::Info: spdlog::info("{}", line.text); break;
            case LogLevel::Warning: spdlog::warn("{}", line.text); break;
        }
    }
}

bool set_reply(SMFICTX* ctx, const Reply& reply) {
    std::string code = std::to_string(reply.code);
    std::string enhanced = reply.enhanced.to_string();
    std::string text = milter_reply_text(reply);
    return smfi_setreply(ctx, code.data(), enhanced.data(), text.data()) == MI_SUCCESS;
}

// A refusal goes out with the status that matches its code's class: libmilter drops a
// 4xx reply paired with SMFIS_REJECT (and a 5xx with TEMPFAIL), and the MTA then
// answers with its own default text.
sfsistat refuse(SMFICTX* ctx, const Reply& reply) {
    if (!set_reply(ctx, reply)) spdlog::warn("smfi_setreply failed for \"{}\"", reply.line());
    return reply.code / 100 == 4 ? SMFIS_TEMPFAIL : SMFIS_REJECT;
}

sfsistat translate(SMFICTX* ctx, const Decision& d) {
    switch (d.verdict) {
        case Verdict::Continue:
        case Verdict::Pass: return SMFIS_CONTINUE;
        case Verdict::Accept: return SMFIS_ACCEPT;
        case Verdict::Discard: return SMFIS_DISCARD;
        case Verdict::Quarantine: return SMFIS_CONTINUE;  // held by smfi_quarantine at eom
        case Verdict::Reject:
        case Verdict::Tempfail:
            if (d.reply) return refuse(ctx, *d.reply);
            return d.verdict == Verdict::Reject ? SMFIS_REJECT : SMFIS_TEMPFAIL;
    }
    return SMFIS_CONTINUE;
}

// The replies are cut to what libmilter sends first, so that the log shows them as the
// client gets them. `recipient`: that of a rcpt event, for the log.
sfsistat decide(SMFICTX* ctx, Connection& c, Decision d, std::string_view recipient = {}) {
    fit_replies_for_milter(d);
    for (const auto& w : d.dns_warnings)
        spdlog::warn("{}: {}", c.queue_id.empty() ? "NOQUEUE" : c.queue_id, w);
    for (const auto& e : d.dns_errors)
        spdlog::error("{}: {}", c.queue_id.empty() ? "NOQUEUE" : c.queue_id, e);
    process_stats().count_decision(d);
    log_decision(d, c, recipient);
    return translate(ctx, d);
}

// Stages as the error reply needs them: only 421 is legal before MAIL.
enum class ReplyPhase { Session, Transaction, None };

sfsistat local_error(SMFICTX* ctx, ReplyPhase phase, const char* callback, const char* what) {
    try {
        spdlog::error("{}: local error, answering tempfail: {}", callback, what);
    } catch (...) {
    }
    if (phase == ReplyPhase::None) return SMFIS_CONTINUE;
    process_stats().count_reply(phase == ReplyPhase::Session ? 421 : 451);
    char session_code[] = "421";
    char transaction_code[] = "451";
    char enhanced[] = "4.3.0";
    char text[] = "Local error in processing, try again later";
    smfi_setreply(ctx, phase == ReplyPhase::Session ? session_code : transaction_code, enhanced,
                  text);
    return SMFIS_TEMPFAIL;
}

// Times a callback into the statistics (milter/stats.h), however it ends.
class CallbackTimer {
  public:
    explicit CallbackTimer(Callback c) : callback_(c), start_(std::chrono::steady_clock::now()) {}
    ~CallbackTimer() {
        process_stats().observe(callback_, std::chrono::steady_clock::now() - start_);
    }
    CallbackTimer(const CallbackTimer&) = delete;
    CallbackTimer& operator=(const CallbackTimer&) = delete;

  private:
    Callback callback_;
    std::chrono::steady_clock::time_point start_;
};

// No C++ exception may cross into libmilter (C code): each callback runs through here.
template <class Body>
sfsistat guarded(SMFICTX* ctx, ReplyPhase phase, const char* callback, Body body) noexcept {
    // Each call site has its own Body type, so its own instance of this function: the name
    // is looked up once per site.
    static const Callback timed = callback_from_name(callback);
    CallbackTimer timer(timed);
    try {
        return body();
    } catch (const std::exception& e) {
        return local_error(ctx, phase, callback, e.what());
    } catch (...) {
        return local_error(ctx, phase, callback, "unknown exception");
    }
}

// A step without reply: acknowledged at once (quick_ack.h); an error there is kept for
// the next step that has a reply, for as long as its scope lasts.
sfsistat without_reply(Connection* c, ReplyPhase phase, const char* callback,
                       sfsistat status) noexcept {
    if (c) acknowledge_now(c->socket);
    if (status == SMFIS_CONTINUE) return SMFIS_NOREPLY;
    using D = Connection::Deferred;
    if (c && c->deferred != D::Session)
        c->deferred = phase == ReplyPhase::Session ? D::Session : D::Transaction;
    try {
        spdlog::warn("{}: this step has no reply: the error is answered at the next one", callback);
    } catch (...) {
    }
    return SMFIS_NOREPLY;
}

// What a callback returns for the `status` it decided. SMFIS_NOREPLY at a step this MTA
// connection negotiated without reply (`no_reply_flag`, SMFIP_NR_*): any other status
// would send a reply the MTA does not read. Such a step only decides where a local error
// made it tempfail; that is answered at the next step with a reply. SMFIS_ACCEPT instead
// of continue at the step `stage` where nothing later can decide (early_accept).
sfsistat answer(SMFICTX* ctx, unsigned long no_reply_flag, std::optional<Stage> stage,
                ReplyPhase phase, const char* callback, sfsistat status) noexcept {
    Connection* c = connection_of(ctx);
    unsigned long no_reply = c ? c->no_reply : 0;
    if (!c) {
        try {  // a failed connect: no connection keeps the flags
            if (std::optional<Negotiated> n = negotiation_of(ctx)) no_reply = n->no_reply;
        } catch (...) {
        }
    }
    if (no_reply & no_reply_flag) return without_reply(c, phase, callback, status);
    if (!c) return status;
    // A transaction's error waits for the transaction's next step: HELO and an unknown
    // command allow only 421, which would end the session (review finding).
    bool session = c->deferred == Connection::Deferred::Session;
    bool deferred_here = session || (c->deferred == Connection::Deferred::Transaction &&
                                     phase == ReplyPhase::Transaction);
    if (deferred_here && (status == SMFIS_CONTINUE || status == SMFIS_ACCEPT)) {
        return local_error(ctx, session ? ReplyPhase::Session : ReplyPhase::Transaction, callback,
                           "an earlier step without reply failed");
    }
    if (status == SMFIS_CONTINUE && stage && c->policy && c->needs().accept_at == stage) {
        // Accepted at DATA, the message's data comes with no callback: counted here.
        if (stage == Stage::Data) process_stats().count_message();
        return SMFIS_ACCEPT;
    }
    return status;
}

std::optional<IpAddress> ip_of(const sockaddr* sa, std::uint32_t& port) {
    port = 0;
    if (!sa) return std::nullopt;
    if (sa->sa_family == AF_INET) {
        sockaddr_in in;
        std::memcpy(&in, sa, sizeof in);
        port = ntohs(in.sin_port);
        return IpAddress::from_v4(ntohl(in.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        sockaddr_in6 in6;
        std::memcpy(&in6, sa, sizeof in6);
        port = ntohs(in6.sin6_port);
        Ipv6Bits bits = 0;
        for (unsigned char byte : in6.sin6_addr.s6_addr) bits = (bits << 8) | byte;
        return IpAddress::from_v6(bits);
    }
    return std::nullopt;  // AF_UNIX and anything else: no client IP
}

// ESMTP SIZE=N among the MAIL FROM parameters; 0 if absent or malformed (parse_esmtp_size:
// digits only, so "-1" cannot wrap a bytes limit's count).
std::uint64_t declared_size(char** argv) {
    for (char** arg = argv + 1; *arg; ++arg) {
        if (strncasecmp(*arg, "SIZE=", 5) != 0) continue;
        if (auto n = parse_esmtp_size(*arg + 5)) return *n;
        spdlog::debug("MAIL FROM: ignoring a malformed SIZE= parameter (not 1-20 digits)");
        return 0;
    }
    return 0;
}

// Steps without a reply (SMFIP_NR_*, of those `offered`): where no rule or limit of the
// policy decides, unless the step is the one where filtering may end early with accept.
// Headers, end of header and body never decide (end of message does). Sets the steps
// `granted` a reply.
unsigned long no_reply_steps(const Needs& n, unsigned long offered, Needs& granted) {
    static constexpr std::array<unsigned long, kStageCount> kNoReplyFlag = {
        SMFIP_NR_CONN, SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT, SMFIP_NR_DATA, 0,
        SMFIP_NR_UNKN};
    unsigned long no_reply = SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY;
    for (Stage s : kAllStages) {
        std::size_t i = stage_index(s);
        if (!n.reply[i] && n.accept_at != s) no_reply |= kNoReplyFlag[i];
    }
    no_reply &= offered;
    for (Stage s : kAllStages) {
        std::size_t i = stage_index(s);
        granted.reply[i] = !kNoReplyFlag[i] || !(no_reply & kNoReplyFlag[i]);
    }
    return no_reply;
}

// The macros the policy reads, and the queue id at every step for the log.
void ask_for_macros(SMFICTX* ctx, const Needs& n) {
    std::string mail_macros = "i";
    if (n.auth_macro) mail_macros += " {auth_authen}";
    if (n.tls_macro) mail_macros += " {tls_version}";
    std::string connect_macros = "{client_name}";
    if (n.ptr_macro) connect_macros += " {client_ptr}";
    if (n.resolve_macro) connect_macros += " {client_resolve}";
    char queue_id[] = "i";
    smfi_setsymlist(ctx, SMFIM_CONNECT, connect_macros.data());
    smfi_setsymlist(ctx, SMFIM_ENVFROM, mail_macros.data());
    smfi_setsymlist(ctx, SMFIM_ENVRCPT, queue_id);
    smfi_setsymlist(ctx, SMFIM_DATA, queue_id);
    smfi_setsymlist(ctx, SMFIM_EOH, queue_id);
    smfi_setsymlist(ctx, SMFIM_EOM, queue_id);
}

// --- callbacks ------------------------------------------------------------------------

sfsistat on_negotiate(SMFICTX* ctx, unsigned long offered_actions, unsigned long offered_steps,
                      unsigned long, unsigned long, unsigned long* actions, unsigned long* steps,
                      unsigned long* f2, unsigned long* f3) {
    return guarded(ctx, ReplyPhase::None, "negotiate", [&] {
        std::shared_ptr<const Policy> policy = g_settings.policy();
        Needs n = needs_of(*policy);
        // Without SMFIF_SETSYMLIST the MTA sends the macros of its own configuration,
        // whatever the policy: a reloaded policy gets the same ones as this policy would.
        Needs granted = n;
        if (!(offered_actions & SMFIF_SETSYMLIST))
            granted.auth_macro = granted.tls_macro = granted.ptr_macro = granted.resolve_macro =
                true;
        // Only if the socket is known: a session after SMFIC_QUIT_NC must be told apart
        // from a new MTA connection (negotiation_of).
        std::optional<MilterSocket> socket = milter_socket_of(ctx);
        unsigned long no_reply = no_reply_steps(n, socket ? offered_steps : 0, granted);
        Negotiated negotiated{granted, no_reply, socket.value_or(MilterSocket{}), policy};
        delete connection_of(ctx);  // none expected; never leak one
        smfi_setpriv(ctx, nullptr);
        unsigned long want = 0;
        if (n.add_header) want |= SMFIF_ADDHDRS;
        if (n.quarantine) want |= SMFIF_QUARANTINE;
        if (offered_actions & SMFIF_SETSYMLIST) want |= SMFIF_SETSYMLIST;
        *actions = want & offered_actions;

        // Steps the policy never looks at are switched off: fewer round trips per message.
        // Connect always stays on: it creates the context and the client facts. DATA and
        // end-of-header stay on too: Postfix sends their macros even for a switched-off
        // step, in a packet nobody answers, and its next one then waits out a 40 ms
        // delayed ACK (bench/RESULTS.md); answering them costs a round trip of ~0.1 ms.
        // With no-reply steps, DATA and end of header cost the MTA no wait, and
        // acknowledge_now() answers their packets at the TCP level at once.
        unsigned long skip = 0;
        if (!n.unknown) skip |= SMFIP_NOUNKNOWN;
        if (!n.helo) skip |= SMFIP_NOHELO;
        if (!n.mail) skip |= SMFIP_NOMAIL;
        if (!n.rcpt) skip |= SMFIP_NORCPT;
        if (!n.headers) skip |= SMFIP_NOHDRS;
        if (!n.body) skip |= SMFIP_NOBODY;
        *steps = (skip & offered_steps) | no_reply;
        *f2 = *f3 = 0;

        if (*actions & SMFIF_SETSYMLIST) ask_for_macros(ctx, n);
        // Last, once every flag is set: should anything above throw, libmilter keeps its
        // default flags (no no-reply step), and no connection or record may promise one.
        auto* c = new Connection(g_settings.options(), policy, granted);
        c->no_reply = negotiated.no_reply;
        c->socket = negotiated.socket;
        smfi_setpriv(ctx, c);
        if (socket) remember_negotiation(ctx, negotiated);
        return SMFIS_CONTINUE;
    });
}

sfsistat on_connect(SMFICTX* ctx, char*, _SOCK_ADDR* address) {
    sfsistat status = guarded(ctx, ReplyPhase::Session, "connect", [&] {
        Connection* c = connection_of(ctx);  // made at negotiate
        if (!c) {
            // After SMFIC_QUIT_NC: the MTA connection's negotiation still holds.
            std::optional<Negotiated> n = negotiation_of(ctx);
            c = new Connection(g_settings.options(), n ? n->policy.lock() : nullptr,
                               n ? std::optional<Needs>(n->granted) : std::nullopt);
            if (n) c->no_reply = n->no_reply, c->socket = n->socket;
            smfi_setpriv(ctx, c);
        }

        std::uint32_t port = 0;
        std::optional<IpAddress> ip = ip_of(address, port);
        // {client_name} is the MTA's verified reverse name, or the bracketed address when
        // there is none (Facts::set_client makes that "unknown").
        process_stats().count_connection();
        c->conversation.use_policy(c->policy_in_force());
        ClientLookup lookup{macro(ctx, "{client_ptr}"), macro(ctx, "{client_resolve}")};
        return decide(ctx, *c,
                      c->conversation.connect(ip, macro(ctx, "{client_name}"), port, lookup));
    });
    return answer(ctx, SMFIP_NR_CONN, Stage::Connect, ReplyPhase::Session, "connect", status);
}

sfsistat on_helo(SMFICTX* ctx, char* name) {
    sfsistat status = guarded(ctx, ReplyPhase::Session, "helo", [&] {
        Connection& c = require_connection(ctx);
        c.end_transaction();  // HELO/EHLO resets any transaction
        return decide(ctx, c, c.conversation.helo(name ? name : ""));
    });
    return answer(ctx, SMFIP_NR_HELO, std::nullopt, ReplyPhase::Session, "helo", status);
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
    sfsistat status = guarded(ctx, ReplyPhase::Transaction, "envfrom", [&] {
        Connection& c = require_connection(ctx);
        c.end_transaction();  // a new transaction: the last one's error ended with it
        const char* sender = argv && argv[0] ? argv[0] : "<>";
        c.queue_id.clear();  // a new transaction: NOQUEUE until the MTA names one
        refresh_queue_id(ctx, c);
        bool tls = !macro(ctx, "{tls_version}").empty();
        c.conversation.use_policy(c.policy_in_force());  // a reload applies from here on
        Decision d = c.conversation.mail(sender, macro(ctx, "{auth_authen}"),
                                         argv ? declared_size(argv) : 0, tls);
        return decide(ctx, c, std::move(d));
    });
    return answer(ctx, SMFIP_NR_MAIL, Stage::Mail, ReplyPhase::Transaction, "envfrom", status);
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) {
    sfsistat status = guarded(ctx, ReplyPhase::Transaction, "envrcpt", [&] {
        Connection& c = require_connection(ctx);
        const char* recipient = argv && argv[0] ? argv[0] : "";
        refresh_queue_id(ctx, c);
        // The conversation keeps the recipient only if it accepts it: the log takes it from
        // the event, as Address::from_smtp keeps it in raw().
        return decide(ctx, c, c.conversation.rcpt(recipient), Address::unwrap(recipient));
    });
    return answer(ctx, SMFIP_NR_RCPT, std::nullopt, ReplyPhase::Transaction, "envrcpt", status);
}

sfsistat on_data(SMFICTX* ctx) {
    sfsistat status = guarded(ctx, ReplyPhase::Transaction, "data", [&] {
        Connection& c = require_connection(ctx);
        refresh_queue_id(ctx, c);
        return decide(ctx, c, c.conversation.data());
    });
    return answer(ctx, SMFIP_NR_DATA, Stage::Data, ReplyPhase::Transaction, "data", status);
}

sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
    sfsistat status = guarded(ctx, ReplyPhase::Transaction, "header", [&] {
        Connection& c = require_connection(ctx);
        std::string_view n = name ? name : "", v = value ? value : "";
        c.conversation.header(n, v);
        c.conversation.body_bytes(n.size() + 2 + v.size() + 2);  // "Name: value\r\n"
        return SMFIS_CONTINUE;
    });
    return answer(ctx, SMFIP_NR_HDR, std::nullopt, ReplyPhase::Transaction, "header", status);
}

sfsistat on_eoh(SMFICTX* ctx) {
    sfsistat status = guarded(ctx, ReplyPhase::Transaction, "eoh", [&] {
        require_connection(ctx).conversation.body_bytes(2);  // the empty line
        return SMFIS_CONTINUE;
    });
    return answer(ctx, SMFIP_NR_EOH, std::nullopt, ReplyPhase::Transaction, "eoh", status);
}

sfsistat on_body(SMFICTX* ctx, unsigned char* chunk, size_t length) {
    sfsistat status = guarded(ctx, ReplyPhase::Transaction, "body", [&] {
        Conversation& conv = require_connection(ctx).conversation;
        conv.body_bytes(length);
        if (chunk) conv.scan_body({reinterpret_cast<const char*>(chunk), length});
        return SMFIS_CONTINUE;
    });
    return answer(ctx, SMFIP_NR_BODY, std::nullopt, ReplyPhase::Transaction, "body", status);
}

sfsistat on_eom(SMFICTX* ctx) {
    sfsistat status = guarded(ctx, ReplyPhase::Transaction, "eom", [&] {
        Connection& c = require_connection(ctx);
        process_stats().count_message();
        refresh_queue_id(ctx, c);
        Decision d = c.conversation.message();
        if (!d.refused() && d.verdict != Verdict::Discard) {
            // smfi_addheader takes char* but only copies from it: d's strings go as they are.
            for (auto& [name, value] : d.headers_to_add) {
                if (smfi_addheader(ctx, name.data(), value.data()) != MI_SUCCESS)
                    spdlog::warn("{}: smfi_addheader \"{}\" failed (was SMFIF_ADDHDRS granted?)",
                                 c.queue_id, name);
            }
        }
        if (d.verdict == Verdict::Quarantine) {
            std::string reason = d.quarantine_reason.empty() ? d.rule_id : d.quarantine_reason;
            if (smfi_quarantine(ctx, reason.data()) != MI_SUCCESS)
                spdlog::warn("{}: smfi_quarantine failed (was SMFIF_QUARANTINE granted?)",
                             c.queue_id);
        }
        return decide(ctx, c, std::move(d));
    });
    status = answer(ctx, 0, std::nullopt, ReplyPhase::Transaction, "eom", status);
    if (Connection* c = connection_of(ctx)) c->end_transaction();  // answered: it ends here
    return status;
}

// A command the MTA does not recognise. 421 is the only temporary reply it may draw, so a
// local error answers as a session's.
sfsistat on_unknown(SMFICTX* ctx, const char* command) {
    sfsistat status = guarded(ctx, ReplyPhase::Session, "unknown", [&] {
        Connection& c = require_connection(ctx);
        refresh_queue_id(ctx, c);
        return decide(ctx, c, c.conversation.unknown(command ? command : ""));
    });
    return answer(ctx, SMFIP_NR_UNKN, std::nullopt, ReplyPhase::Session, "unknown", status);
}

// MTA-side abort (RSET, a refused or broken transaction): nothing of it counts. The
// connection goes on, and may start another message.
sfsistat on_abort(SMFICTX* ctx) {
    return guarded(ctx, ReplyPhase::None, "abort", [&] {
        if (Connection* c = connection_of(ctx)) {
            c->conversation.abort();
            c->queue_id.clear();
            c->end_transaction();  // the transaction's error, if any, went with it
        }
        return SMFIS_CONTINUE;
    });
}

sfsistat on_close(SMFICTX* ctx) {
    return guarded(ctx, ReplyPhase::None, "close", [&] {
        if (Connection* c = connection_of(ctx)) remember_policy(ctx, c->policy);
        delete connection_of(ctx);
        smfi_setpriv(ctx, nullptr);
        return SMFIS_CONTINUE;
    });
}

char g_filter_name[] = "policy-milter";

}  // namespace

void set_adapter_settings(AdapterSettings settings) {
    g_settings = std::move(settings);
}

smfiDesc adapter_description() {
    smfiDesc d{};
    d.xxfi_name = g_filter_name;
    d.xxfi_version = SMFI_VERSION;
    // The actions any policy may need; xxfi_negotiate asks per connection only for those
    // the loaded policy uses.
    d.xxfi_flags = SMFIF_ADDHDRS | SMFIF_QUARANTINE | SMFIF_SETSYMLIST;
    d.xxfi_connect = on_connect;
    d.xxfi_helo = on_helo;
    d.xxfi_envfrom = on_envfrom;
    d.xxfi_envrcpt = on_envrcpt;
    d.xxfi_header = on_header;
    d.xxfi_eoh = on_eoh;
    d.xxfi_body = on_body;
    d.xxfi_eom = on_eom;
    d.xxfi_abort = on_abort;
    d.xxfi_close = on_close;
    d.xxfi_unknown = on_unknown;
    d.xxfi_data = on_data;
    d.xxfi_negotiate = on_negotiate;
    return d;
}

}  // namespace pm
