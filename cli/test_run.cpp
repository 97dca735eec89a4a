// SPDX-License-Identifier: BSD-2-Clause
#include "cli/test_run.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "config/dns_settings.h"
#include "dns/resolver.h"
#include "milter/reply_encoding.h"
#include "store/greylist_store.h"
#include "store/memory_counter_store.h"

namespace pm {

namespace {

std::string hit_line(Stage stage, const RuleHit& hit, bool observed) {
    std::string line = std::string(stage_name(stage)) + ": rule=" + hit.rule_id +
                       " action=" + (observed ? "would-" : "") +
                       std::string(action_name(hit.action));
    if (hit.reply) line += " reply=\"" + hit.reply->line() + "\"";
    if (hit.action == ActionKind::AddHeader) line += " header=\"" + hit.detail + "\"";
    if (hit.action == ActionKind::Quarantine) line += " reason=\"" + hit.detail + "\"";
    return line;
}

// Splits a message file into headers (unfolded) and a body to scan, and counts its bytes.
bool read_message(const std::string& path, Conversation& conv, std::ostream& errors) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        errors << "policy-milter: cannot read message file \"" << path << "\"\n";
        return false;
    }
    std::string line, name, value;
    std::uint64_t size = 0;
    bool in_headers = true;
    auto flush = [&] {
        if (!name.empty()) conv.header(name, value);
        name.clear();
        value.clear();
    };
    while (std::getline(in, line)) {
        size += line.size() + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!in_headers) {
            conv.scan_body(line + "\r\n");  // as SMTP carries it
            continue;
        }
        if (line.empty()) {
            flush();
            in_headers = false;
        } else if ((line[0] == ' ' || line[0] == '\t') && !name.empty()) {
            value += line;  // folded continuation
        } else if (auto colon = line.find(':'); colon != std::string::npos) {
            flush();
            name = line.substr(0, colon);
            value = line.substr(colon + 1);
            auto start = value.find_first_not_of(" \t");
            value = start == std::string::npos ? "" : value.substr(start);
        }
    }
    flush();
    conv.body_bytes(size);
    return true;
}

}  // namespace

std::string format_decision(const Decision& d) {
    std::ostringstream out;
    for (const auto& hit : d.observed) out << hit_line(d.stage, hit, true) << '\n';
    for (const auto& hit : d.added) out << hit_line(d.stage, hit, false) << '\n';
    if (!d.error.empty()) out << stage_name(d.stage) << ": note: " << d.error << '\n';
    for (const auto& w : d.dns_warnings) out << stage_name(d.stage) << ": warning: " << w << '\n';
    for (const auto& e : d.dns_errors) out << stage_name(d.stage) << ": error: " << e << '\n';
    if (d.verdict == Verdict::Continue) {
        out << stage_name(d.stage) << ": no rule\n";
        return out.str();
    }
    out << stage_name(d.stage) << ": rule=" << d.rule_id << " action=" << verdict_name(d.verdict);
    if (d.reply) out << " reply=\"" << d.reply->line() << '"';
    if (d.verdict == Verdict::Quarantine) out << " reason=\"" << d.quarantine_reason << '"';
    out << '\n';
    return out.str();
}

namespace {

// Prints `d` as the daemon would send it; true when the session goes on to its next
// event (not closed, nor accepted or discarded as a whole).
bool shown(std::ostream& out, Decision d) {
    fit_replies_for_milter(d);
    out << format_decision(d);
    return !d.closes_connection() && d.verdict != Verdict::Accept && d.verdict != Verdict::Discard;
}

// The same, and true only if the event was not refused either.
bool passed(std::ostream& out, Decision d) {
    bool refused = d.refused();
    return shown(out, std::move(d)) && !refused;
}

// MAIL, each RCPT (a refused one does not end the transaction) and DATA; true when the
// message goes on to its headers.
bool run_envelope(Conversation& conv, const TestTransaction& tx, std::ostream& out) {
    if (!passed(out, conv.mail(tx.from.value_or(""), tx.auth_user, tx.size, tx.tls))) return false;
    for (const auto& rcpt : tx.rcpts)
        if (!shown(out, conv.rcpt(rcpt))) return false;
    if (conv.facts().accepted_recipients.empty()) return false;
    return passed(out, conv.data());
}

// Each --header "Name: value", counted in the message's size as its line would be.
void add_headers(Conversation& conv, const std::vector<std::string>& headers) {
    for (const auto& h : headers) {
        auto colon = h.find(':');
        std::string name = h.substr(0, colon);
        std::string value = colon == std::string::npos ? "" : h.substr(colon + 1);
        auto start = value.find_first_not_of(" \t");
        value = start == std::string::npos ? "" : value.substr(start);
        conv.header(name, value);
        conv.body_bytes(h.size() + 2);
    }
}

// What one DNS list answered for one name: "listed 127.0.0.2 \"TXT\"", "not listed" or
// "failed: timeout".
std::string dns_result(const DnsList& list, const DnsAnswer& a) {
    if (a.status == DnsAnswer::Status::Failed) return "failed: " + a.error;
    if (a.status == DnsAnswer::Status::NotFound) return "not listed";
    bool refused = false;
    std::string out = dns_list_matches(list, a, refused) ? "listed" : "not listed";
    for (std::uint32_t addr : a.addresses) out += " " + IpAddress::from_v4(addr).to_string();
    if (refused) out += " (127.255.255.x: query refused or quota spent)";
    if (!a.txt.empty()) out += " \"" + sanitize_text(a.txt, kMaxDnsTxt) + "\"";
    return out;
}

// Which DNS list answered what, for each lookup the session made.
void print_dns(const Policy& policy, const Facts& facts, std::ostream& out) {
    for (const DnsUse& use : policy.dns_uses()) {
        std::vector<std::string> names;
        dns_use_names(use, facts, use.stage, names);
        for (const auto& name : names) {
            auto it = facts.dns.find(name);
            if (it == facts.dns.end()) continue;
            out << "dns: " << use.list->name << " (" << use.list->zone << ") " << name << ": "
                << dns_result(*use.list, it->second) << '\n';
        }
    }
}

int run_stages(Conversation& conv, const IpAddress& ip, const TestTransaction& tx,
               std::ostream& out, std::ostream& errors) {
    if (!passed(out, conv.connect(ip, tx.client_name, tx.client_port))) return 0;
    if (tx.helo && !passed(out, conv.helo(*tx.helo))) return 0;
    if (!tx.from && tx.rcpts.empty()) return 0;
    if (!run_envelope(conv, tx, out)) return 0;
    add_headers(conv, tx.headers);
    if (tx.message_file && !read_message(*tx.message_file, conv, errors)) return 2;
    shown(out, conv.message());
    return 0;
}

}  // namespace

int run_test_transaction(std::shared_ptr<const Policy> policy, const TestTransaction& tx,
                         const ConversationOptions& options, std::ostream& out,
                         std::ostream& errors, const std::string& dns_servers) {
    auto ip = parse_ip(tx.client_ip);
    if (!ip) {
        errors << "policy-milter: --client \"" << tx.client_ip << "\" is not an IP address\n";
        return 2;
    }
    // The real lookups, with the configured servers, as the daemon would make them.
    std::unique_ptr<Resolver> resolver;
    ConversationOptions o = options;
    if (!policy->dns_uses().empty()) {
        ResolverSettings settings;
        std::string why;
        if (!dns_servers.empty())
            settings.servers = parse_dns_servers(dns_servers, why).value_or("");
        settings.timeout = options.dns_timeout;
        try {
            resolver = std::make_unique<Resolver>(settings);
            o.dns = resolver.get();
        } catch (const std::exception& e) {
            errors << "policy-milter: DNS resolver: " << e.what() << '\n';
        }
    }
    MemoryCounterStore store;
    MemoryGreylistStore greylist;  // empty: every triplet is new
    Conversation conv(policy, store, o, &greylist);
    int code = run_stages(conv, *ip, tx, out, errors);
    print_dns(*policy, conv.facts(), out);
    return code;
}

}  // namespace pm
