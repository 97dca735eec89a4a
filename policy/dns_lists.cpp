// SPDX-License-Identifier: BSD-2-Clause
#include "policy/dns_lists.h"

#include <algorithm>

#include "policy/facts.h"
#include "policy/field_value.h"

namespace pm {

namespace {

bool is_ldh(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

// Labels of `name` that pass `byte_ok`, 1 to 63 octets each; the number of labels, or 0.
template <typename ByteOk>
std::size_t count_labels(std::string_view name, ByteOk byte_ok) {
    std::size_t labels = 0, start = 0;
    for (;;) {
        std::size_t dot = name.find('.', start);
        std::string_view label =
            name.substr(start, dot == std::string_view::npos ? dot : dot - start);
        if (label.empty() || label.size() > kMaxDnsLabel) return 0;
        if (!std::all_of(label.begin(), label.end(), byte_ok)) return 0;
        ++labels;
        if (dot == std::string_view::npos) return labels;
        start = dot + 1;
    }
}

// A zone leaves room for the longest query under it: 32 nibbles of an IPv6 address.
constexpr std::size_t kMaxZone = kMaxDnsName - 64;

}  // namespace

std::string check_dns_zone(std::string_view zone) {
    if (zone.empty()) return "empty DNS zone";
    if (zone.size() > kMaxZone)
        return "DNS zone is longer than " + std::to_string(kMaxZone) + " octets";
    // '_' is allowed in a zone an administrator writes (never in a name from a client).
    auto ok = [](char c) { return is_ldh(c) || c == '_'; };
    std::size_t labels = count_labels(zone, ok);
    if (labels == 0)
        return "DNS zone must be labels of letters, digits, '-' and '_' of 1 to 63 octets, "
               "separated by single dots";
    if (labels < 2) return "DNS zone needs at least two labels, such as zen.example.org";
    return {};
}

std::optional<std::string> dns_query_name(const DnsList& list, const IpAddress& ip) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string name;
    if (list.kind != DnsListKind::Dnsbl) return std::nullopt;
    if (!ip.v6) {
        for (int shift = 0; shift < 32; shift += 8)
            name += std::to_string((ip.v4_bits >> shift) & 0xff) + '.';
    } else {
        for (int shift = 0; shift < 128; shift += 4) {
            name += kHex[static_cast<unsigned>(ip.v6_bits >> shift) & 0xf];
            name += '.';
        }
    }
    name += list.zone;
    if (name.size() > kMaxDnsName) return std::nullopt;
    return name;
}

std::optional<std::string> dns_query_name(const DnsList& list, std::string_view lower_domain) {
    if (list.kind != DnsListKind::Rhsbl || lower_domain == "unknown") return std::nullopt;
    if (lower_domain.empty() || lower_domain.size() + 1 + list.zone.size() > kMaxDnsName)
        return std::nullopt;
    if (count_labels(lower_domain, is_ldh) == 0) return std::nullopt;
    std::string name(lower_domain);
    name += '.';
    name += list.zone;
    return name;
}

bool dns_list_matches(const DnsList& list, const DnsAnswer& answer, bool& refused) {
    refused = false;
    if (answer.status != DnsAnswer::Status::Found) return false;
    bool match = false;
    for (std::uint32_t a : answer.addresses) {
        if (list.returns.empty()) {
            if ((a >> 8) == 0x7fffffu) {
                refused = true;  // 127.255.255.x: "query refused", quota spent
                continue;
            }
            if ((a >> 24) == 127) match = true;
            continue;
        }
        for (const auto& r : list.returns)
            if (a >= r.first && a <= r.last) match = true;
    }
    return match;
}

void dns_use_names(const DnsUse& use, const Facts& facts, Stage stage,
                   std::vector<std::string>& out) {
    const DnsList& list = *use.list;
    auto add = [&](std::optional<std::string> name) {
        if (name && std::find(out.begin(), out.end(), *name) == out.end())
            out.push_back(std::move(*name));
    };
    if (use.field.id == FieldId::ClientIp) {
        if (facts.client_ip) add(dns_query_name(list, *facts.client_ip));
        return;
    }
    // As condition_holds() reads them: every accepted recipient at data and message; the
    // current one at rcpt and vrfy (which comes after rcpt in the stage order).
    if (use.field.info().per_recipient && (stage == Stage::Data || stage == Stage::Message)) {
        for (const auto& r : facts.accepted_recipients)
            add(dns_query_name(list, lower_value(use.field, facts, &r)));
        return;
    }
    std::string_view value = lower_value(use.field, facts, &facts.recipient);
    if (!value.empty()) add(dns_query_name(list, value));
}

std::vector<std::string> dns_queries(std::span<const DnsUse> uses,
                                     const std::array<bool, kStageCount>& stages,
                                     const Facts& facts) {
    std::vector<std::string> out;
    for (const auto& use : uses) {
        if (!stages[stage_index(use.stage)]) continue;
        // A use at a later stage reads what is known now (the current recipient for a
        // later per-recipient use is that of rcpt, where it will be read too).
        dns_use_names(use, facts, use.stage, out);
    }
    return out;
}

}  // namespace pm
