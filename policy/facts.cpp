// SPDX-License-Identifier: BSD-2-Clause
#include "policy/facts.h"

namespace pm {

namespace {
char lower_char(char c) {
    // Branch-free, so that the loops over every address and header name vectorise.
    return static_cast<char>(c + (static_cast<unsigned>(c - 'A') < 26u ? 'a' - 'A' : 0));
}
}  // namespace

std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = lower_char(c);
    return out;
}

bool equals_lower(std::string_view s, std::string_view lower) {
    if (s.size() != lower.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (lower_char(s[i]) != lower[i]) return false;
    return true;
}

std::string normalize_host(std::string_view s) {
    while (!s.empty() && s.back() == '.') s.remove_suffix(1);
    return ascii_lower(s);
}

std::string_view Address::unwrap(std::string_view text) {
    auto trim = [](std::string_view& v) {
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    };
    trim(text);
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>') {
        text = text.substr(1, text.size() - 2);
        trim(text);
    }
    // An obsolete source route "@a,@b:user@domain" (RFC 5321 §4.1.2) routes nowhere now.
    if (!text.empty() && text.front() == '@') {
        auto colon = text.find(':');
        if (colon != std::string_view::npos) text = text.substr(colon + 1);
    }
    return text;
}

Address Address::from_smtp(std::string_view text) {
    text = unwrap(text);
    Address a;
    a.raw_ = std::string(text);
    // "user@example.org." is the same domain as "user@example.org", as for host names.
    std::string_view compare = text;
    if (compare.find('@') != std::string_view::npos)
        while (!compare.empty() && compare.back() == '.') compare.remove_suffix(1);
    a.lower_ = ascii_lower(compare);
    auto at = a.raw_.rfind('@');
    a.at_ = at == std::string::npos ? a.raw_.size() : at;
    return a;
}

void Facts::set_client(std::optional<IpAddress> ip, std::string_view name, std::uint32_t port) {
    client_ip = ip;
    // xxfi_connect may pass "[192.0.2.1]" when there is no verified name.
    if (name.empty() || name.front() == '[') name = "unknown";
    client_name = std::string(name);
    client_name_lower = normalize_host(name);
    client_port = port;
}

void Facts::set_client_lookup(std::string_view ptr, std::string_view resolve) {
    if (ptr.empty() || ptr.front() == '[') ptr = "unknown";
    client_ptr = std::string(ptr);
    client_ptr_lower = normalize_host(ptr);
    if (!resolve.empty()) {
        client_resolve = ascii_lower(resolve);
    } else if (client_ptr_lower == "unknown") {
        client_resolve = "fail";
    } else {
        client_resolve = client_ptr_lower == client_name_lower ? "ok" : "forged";
    }
}

void Facts::set_helo(std::string_view name) {
    helo = std::string(name);
    helo_lower = normalize_host(name);
}

void Facts::set_sender(std::string_view smtp_address, std::string_view auth, std::uint64_t size,
                       bool tls_on) {
    mail_seen = true;
    sender = Address::from_smtp(smtp_address);
    auth_user = std::string(auth);
    auth_user_lower = ascii_lower(auth);
    mail_size = size;
    tls = tls_on;
}

void Facts::add_header(std::string_view name, std::string_view value) {
    // header() answers with the first value: only that one is kept. The scan is over the
    // names the policy reads, a handful, not over the message's headers.
    for (const auto& kept : headers)
        if (equals_lower(name, kept.name)) return;
    headers.push_back({ascii_lower(name), std::string(value), ascii_lower(value)});
}

std::string_view Facts::header(std::string_view lower_name) const {
    for (const auto& h : headers)
        if (h.name == lower_name) return h.value;
    return {};
}

std::string_view Facts::header_lower(std::string_view lower_name) const {
    for (const auto& h : headers)
        if (h.name == lower_name) return h.value_lower;
    return {};
}

void Facts::set_command(std::string_view line) {
    line = line.substr(0, kMaxCommandBytes);
    command.assign(line);
    for (char& c : command) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) c = ' ';
    }
    while (!command.empty() && command.back() == ' ') command.pop_back();
    command_lower = ascii_lower(command);
}

void Facts::reset_transaction() {
    mail_seen = false;
    sender = Address{};
    auth_user.clear();
    auth_user_lower.clear();
    mail_size = 0;
    tls = false;
    recipient = Address{};
    accepted_recipients.clear();
    rcpt_count = 0;
    headers.clear();
    message_size = 0;
    body_hits.clear();
}

}  // namespace pm
