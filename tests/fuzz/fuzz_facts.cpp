// SPDX-License-Identifier: BSD-2-Clause
// libFuzzer target for the evaluation path: hostile facts (client name and address, HELO,
// addresses, header names and values, sizes, macro values such as {auth_authen} and the
// queue id) through compiled policies that read every field, with lists, globs (enough for
// the glob set), regexes, limits, observed rules and a template in every action, and then
// through the decision log. Evaluation must never crash, hang or leak, and what leaves the
// daemon must stay safe whatever came in:
//   - a reply is printable ASCII and fits one SMTP line (512 octets with CRLF);
//   - an added header's value and a quarantine reason are printable ASCII within their caps;
//   - no log line holds a control or non-ASCII byte (issue 10, item 6);
//   - only the first value of each header name the policy reads is kept (item 5).
//
// Input: a sequence of events, each an opcode byte and its NUL-terminated strings (the
// milter protocol carries C strings, so no value holds a NUL):
//   c IP NAME PORT    connect (IP as text; anything else is "no address")
//   h NAME            HELO
//   m SENDER AUTH SIZE TLS   MAIL FROM (SIZE decimal; TLS non-empty means on)
//   r RECIPIENT       RCPT TO
//   d                 DATA
//   x NAME VALUE      one header
//   b N               N body bytes
//   e                 end of message
//   a                 abort (RSET)
//   q ID              the MTA's queue id, for the log
//   p N               the policy the next transaction gets (a reload; N % policies)
// The first byte chooses the switches (observe everywhere, soft-bounce).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/report.h"
#include "milter/decision_log.h"
#include "milter/reply_encoding.h"
#include "policy/conversation.h"
#include "policy/decision.h"
#include "policy/policy.h"
#include "store/memory_counter_store.h"

namespace {

// Every field, every condition kind, a template in every action.
constexpr const char* kRules = R"rules(
list nets  = [ 192.0.2.0/24, 2001:db8::/32, 10.0.0.0/8, ::1 ]
list hosts = [ "mx.example.net", ".example.org", "*.bad.example", "localhost" ]
list addrs = [ "ceo@example.com", "@partner.example", ".trusted.example", "*spam*", "", "<>" ]
list words = [ "hello", "*lottery*", "win*", "*" ]

rule "c-block" at connect
    when client.ip in nets and client.name in hosts
    reject 554 5.7.1 "Go away {client.name} [{client.ip}]:{client.port}"
rule "c-port" at connect
    when client.port == 1 or client.name matches /^[0-9]+$/
    tempfail 421 4.7.0 "{client.ip} {client.name} later"
limit "conn" at connect
    key client.ip/64
    max 50 per 1m
    tempfail 421 4.7.0 "Too many from {client.ip}"

rule "h-bad" at helo
    when helo matches /^[0-9.\[\]]+$/ or helo in hosts or helo == ""
    reject 550 5.7.1 "Bad HELO {helo}"
limit "helo-rate" at helo
    key helo, client.name
    max 20 per 1h
    tempfail 421 4.7.0 "HELO {helo} too often"

rule "m-addr" at mail
    when sender in addrs and not tls
    reject 553 5.1.7 "<{sender}> {sender.local} at {sender.domain} by {auth.user}"
rule "m-size" at mail
    when mail.size > 10MB
    reject 552 5.3.4 "size {mail.size} from {sender}"
rule "m-auth" at mail
    when auth.user matches /(?i)^admin/ and sender.domain != "example.com"
    accept
rule "m-tls" at mail
    when tls and auth.user in words
    pass
limit "sender" at mail
    key sender, auth.user
    max 10 per 1h
    tempfail 451 4.7.1 "{sender} {auth.user} {tls}"

rule "r-addr" at rcpt
    when recipient in addrs or recipient.domain in hosts
    reject 550 5.1.1 "<{recipient}> {recipient.local}@{recipient.domain} #{rcpt.count}"
rule "r-count" at rcpt
    when rcpt.count > 5
    tempfail 452 4.5.3 "Too many recipients for {sender}"
limit "rcpts" at rcpt
    key auth.user, recipient.domain
    max 30 recipients per 1d
    tempfail 452 4.5.3 "{auth.user} to {recipient}"
rule "r-discard" at rcpt
    when recipient.local == "blackhole"
    discard

rule "d-domain" at data
    when recipient.domain == "example.org" and rcpt.count >= 2
    reject 554 5.7.1 "to {recipient} ({rcpt.count})"

rule "obs-tag" at message
    add-header "X-Obs" "{header[Subject]} {sender} {recipient} {helo}"
    observe
rule "tag" at message
    add-header "X-Tag" "{header[Subject]}|{header[From]}|{message.size}|{client.name}"
rule "q-obs" at message
    when header["Subject"] in words
    quarantine "held {header[Subject]}"
    observe
rule "from" at message
    when header["From"] matches /(?i)evil/
    discard
limit "list-volume" at message
    key header["List-Id"], sender
    max 2MB per 1h
    tempfail 451 4.7.1 "volume {header[List-Id]}"
rule "hold" at message
    when header["X-Hold"] == "yes"
    quarantine "held: {header[X-Hold]} {header[Subject]}"
rule "big" at message
    when message.size > 1M
    reject 552 5.3.4 "Too big: {message.size} {header[Subject]}"
rule "body" at message
    when body contains "lottery" or body matches /^(x+|y)$/i
    reject 554 5.7.1 "body {client.ip}"
rule "cmd" at unknown
    when command matches /^X/ or helo == "h"
    reject 500 5.5.1 "{command} {helo} {client.name}"
rule "cmd-bye" at unknown
    when command == "bye"
    tempfail 421 4.7.0 "{command}"
)rules";

// More than 64 globs: compiled into one set (a separate matching path).
std::string glob_rules() {
    std::string list = "list globs = [";
    for (int i = 0; i < 80; ++i) list += (i ? ", \"*g" : " \"*g") + std::to_string(i) + "*\"";
    list += " ]\n";
    list += "list aglobs = [";
    for (int i = 0; i < 80; ++i) list += (i ? ", \"*a" : " \"*a") + std::to_string(i) + "*@*\"";
    list += " ]\n";
    return list + R"(
rule "g-helo" at helo
    when helo in globs
    reject 550 5.7.1 "glob HELO {helo}"
rule "g-sender" at mail
    when sender in aglobs
    reject 550 5.7.1 "glob sender {sender}"
rule "g-subject" at message
    when header["Subject"] in globs or header["subject"] matches /g[0-9]+g/
    quarantine "glob {header[Subject]}"
)";
}

const std::vector<std::shared_ptr<const pm::Policy>>& policies() {
    static const std::vector<std::shared_ptr<const pm::Policy>> all = [] {
        std::vector<std::shared_ptr<const pm::Policy>> v;
        for (const std::string& text : {std::string(kRules), glob_rules()}) {
            pm::LoadResult r = pm::load_policy_text(text, "fuzz-facts.rules", "/nonexistent");
            if (!r.policy) {
                for (const auto& d : r.diagnostics.all())
                    std::fprintf(stderr, "%s\n", d.to_string().c_str());
                std::abort();
            }
            v.push_back(r.policy);
        }
        return v;
    }();
    return all;
}

void check(bool ok, const char* what, std::string_view text) {
    if (ok) return;
    std::fprintf(stderr, "fuzz_facts: %s: \"%.*s\"\n", what, static_cast<int>(text.size()),
                 text.data());
    std::abort();
}

bool printable_ascii(std::string_view s) {
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c >= 0x7F) return false;
    }
    return true;
}

void check_decision(const pm::Decision& d, const pm::LogEvent& event,
                    const pm::Conversation& conv) {
    if (d.reply) {
        check(printable_ascii(d.reply->text), "reply text not printable", d.reply->text);
        check(d.reply->line().size() + 2 <= pm::kMaxReplyLine, "reply over 512 octets",
              d.reply->line());
    }
    for (const auto& [name, value] : d.headers_to_add) {
        check(printable_ascii(value), "added header not printable", value);
        check(value.size() <= pm::kMaxHeaderValue, "added header too long", value);
    }
    check(printable_ascii(d.quarantine_reason), "quarantine reason not printable",
          d.quarantine_reason);
    check(d.quarantine_reason.size() <= pm::kMaxQuarantineReason, "quarantine reason too long",
          d.quarantine_reason);
    // What the adapter sends: every reply within libmilter's limit once '%' is doubled.
    pm::Decision sent = d;
    pm::fit_replies_for_milter(sent);
    if (sent.reply)
        check(pm::milter_reply_text(*sent.reply).size() <= pm::kMaxMilterReplyText,
              "reply over libmilter's limit", sent.reply->text);
    const pm::Facts& facts = conv.facts();
    std::string ip = facts.client_ip ? facts.client_ip->to_string() : "unknown";
    for (const auto& line : pm::decision_log_lines(sent, facts, event)) {
        check(printable_ascii(line.text), "log line with a control or non-ASCII byte", line.text);
        // Read back by --report (and so by the fail2ban filter's anchoring): the one client
        // and the envelope the facts hold, whatever the sender wrote (issue 14).
        auto parsed = pm::parse_decision_line(line.text);
        check(parsed.has_value(), "log line that does not parse back", line.text);
        check(parsed->client_name == facts.client_name && parsed->client_ip == ip,
              "log line whose client= is not the client's", line.text);
        check(parsed->helo.value_or("") == facts.helo, "log line whose helo= is not the HELO",
              line.text);
    }
    // At most one kept value per header name, each a name the policy reads.
    const auto& kept = conv.facts().headers;
    for (std::size_t i = 0; i < kept.size(); ++i) {
        check(conv.policy().uses_header(kept[i].name), "kept a header no rule reads", kept[i].name);
        for (std::size_t j = 0; j < i; ++j)
            check(kept[j].name != kept[i].name, "kept a header twice", kept[i].name);
    }
}

// Reads the NUL-terminated strings of one event.
class Reader {
  public:
    Reader(const std::uint8_t* data, std::size_t size)
        : text_(reinterpret_cast<const char*>(data), size) {}
    bool done() const { return pos_ >= text_.size(); }
    char op() { return text_[pos_++]; }
    std::string_view str() {
        std::size_t end = text_.find('\0', pos_);
        if (end == std::string_view::npos) end = text_.size();
        std::string_view s = text_.substr(pos_, end - pos_);
        pos_ = end < text_.size() ? end + 1 : end;
        return s;
    }
    std::uint64_t number() {
        std::uint64_t n = 0;
        for (char c : str()) {
            if (c < '0' || c > '9') break;
            n = n * 10 + static_cast<std::uint64_t>(c - '0');  // wraps: any value is fine
        }
        return n;
    }

  private:
    std::string_view text_;
    std::size_t pos_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const auto& all = policies();
    pm::ConversationOptions options;
    options.observe_all = data[0] & 1;
    options.soft_bounce = data[0] & 2;
    options.on_store_error = data[0] & 4 ? pm::StoreErrorMode::Pass : pm::StoreErrorMode::Tempfail;
    std::size_t current = (data[0] >> 3) % all.size();

    pm::MemoryCounterStore store;
    pm::Conversation conv(all[current], store, options);
    std::string queue_id;  // what the adapter keeps for the log
    Reader in(data + 1, size - 1);
    int events = 0;
    while (!in.done() && ++events < 4096) {
        pm::Decision d;
        bool decided = true;
        switch (in.op()) {
            case 'c': {
                std::string ip(in.str());
                std::string_view name = in.str();
                auto port = static_cast<std::uint32_t>(in.number());
                queue_id.clear();
                d = conv.connect(pm::parse_ip(ip), name, port);
                break;
            }
            case 'h': d = conv.helo(in.str()); break;
            case 'm': {
                std::string sender(in.str());
                std::string auth(in.str());
                std::uint64_t declared = in.number();
                bool tls = !in.str().empty();
                queue_id.clear();
                d = conv.mail(sender, auth, declared, tls);
                break;
            }
            case 'r': {
                std::string rcpt(in.str());
                d = conv.rcpt(rcpt);
                check_decision(d, pm::LogEvent{queue_id, pm::Address::unwrap(rcpt)}, conv);
                decided = false;
                break;
            }
            case 'd': d = conv.data(); break;
            case 'x': {
                std::string name(in.str());
                std::string value(in.str());
                conv.header(name, value);
                conv.body_bytes(name.size() + value.size() + 4);
                decided = false;
                break;
            }
            case 'b':
                conv.body_bytes(in.number() % (1u << 30));
                decided = false;
                break;
            case 'B': {  // a body chunk, scanned (body_scan.h)
                std::string chunk(in.str());
                conv.body_bytes(chunk.size());
                conv.scan_body(chunk);
                decided = false;
                break;
            }
            case 'u': d = conv.unknown(in.str()); break;
            case 'e': d = conv.message(); break;
            case 'a':
                conv.abort();
                queue_id.clear();
                decided = false;
                break;
            case 'q':
                queue_id = std::string(in.str());
                decided = false;
                break;
            case 'p':
                current = in.number() % all.size();
                conv.use_policy(all[current]);  // from the next connection or transaction on
                decided = false;
                break;
            default: decided = false; break;
        }
        if (decided) check_decision(d, pm::LogEvent{queue_id, {}}, conv);
    }
    return 0;
}
