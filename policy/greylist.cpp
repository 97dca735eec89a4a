// SPDX-License-Identifier: BSD-2-Clause
#include "policy/greylist.h"

#include <algorithm>
#include <vector>

#include "policy/counter_store.h"

namespace pm {

namespace {

bool is_word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Splits `s` at each '=' into at most `n` parts, the last taking the rest.
std::vector<std::string_view> split_eq(std::string_view s, std::size_t n) {
    std::vector<std::string_view> parts;
    while (parts.size() + 1 < n) {
        auto eq = s.find('=');
        if (eq == std::string_view::npos) break;
        parts.push_back(s.substr(0, eq));
        s.remove_prefix(eq + 1);
    }
    parts.push_back(s);
    return parts;
}

// "HHH=TT=domain=local" of an SRS address: "local@domain", or nullopt if it is not one.
std::optional<std::string> srs0_tail(std::string_view tail) {
    auto p = split_eq(tail, 4);
    if (p.size() != 4 || p[0].empty() || p[1].size() != 2 || p[2].empty() || p[3].empty())
        return std::nullopt;
    if (p[2].find('@') != std::string_view::npos) return std::nullopt;
    return std::string(p[3]) + "@" + std::string(p[2]);
}

// The original sender of an SRS0 or SRS1 local part (RFC-less, but as libsrs2 writes it:
// SRS0=HHH=TT=domain=local, SRS1=HHH=forwarder==HHH=TT=domain=local), or nullopt.
std::optional<std::string> srs_original(std::string_view local) {
    if (local.size() < 5 || (local[4] != '=' && local[4] != '+' && local[4] != '-'))
        return std::nullopt;
    std::string_view kind = local.substr(0, 4);
    std::string_view rest = local.substr(5);
    if (kind == "srs0") return srs0_tail(rest);
    if (kind != "srs1") return std::nullopt;
    auto sep = rest.find("==");
    if (sep == std::string_view::npos) return std::nullopt;
    return srs0_tail(rest.substr(sep + 2));
}

// BATV (draft-levine-smtp-batv): prvs=TAG=local, and Microsoft's msprvs1=TAG=local.
std::string_view batv_local(std::string_view local) {
    for (std::string_view tag : {"prvs=", "msprvs1="}) {
        if (!local.starts_with(tag)) continue;
        std::string_view rest = local.substr(tag.size());
        auto eq = rest.find('=');
        if (eq == 0 || eq == std::string_view::npos || eq + 1 == rest.size()) return local;
        bool tag_ok = std::all_of(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(eq),
                                  [](char c) { return is_word_char(c); });
        return tag_ok ? rest.substr(eq + 1) : local;
    }
    return local;
}

// VERP as postgrey sees it: the +extension goes, each run of digits standing as a word
// of its own becomes '#'.
std::string verp_local(std::string_view local) {
    if (auto plus = local.find('+'); plus != std::string_view::npos && plus > 0)
        local = local.substr(0, plus);
    std::string out;
    out.reserve(local.size());
    for (std::size_t i = 0; i < local.size();) {
        bool starts_word = i == 0 || !is_word_char(local[i - 1]);
        std::size_t j = i;
        while (j < local.size() && is_digit(local[j])) ++j;
        bool ends_word = j == local.size() || !is_word_char(local[j]);
        if (j > i && starts_word && ends_word) {
            out += '#';
            i = j;
        } else if (j > i) {  // the whole run: no digit inside it starts a word
            out.append(local.substr(i, j - i));
            i = j;
        } else {
            out += local[i++];
        }
    }
    return out;
}

GreylistKey first_128_bits(const std::array<unsigned char, 32>& h) {
    GreylistKey k{};
    std::copy_n(h.begin(), k.size(), k.begin());
    return k;
}

void refresh_client(std::optional<GreylistClient>& client, const GreylistRequest& r,
                    std::uint64_t now, bool count) {
    if (r.auto_whitelist == 0) return;
    if (!client || client->dead_ms <= now) {
        if (!count) return;
        client = GreylistClient{};
    }
    if (count) client->count = saturating_add(client->count, 1);
    client->dead_ms = saturating_add(now, r.expire_ms);
}

}  // namespace

std::string greylist_key_hex(const GreylistKey& key) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(key.size() * 2);
    for (unsigned char b : key) {
        out += kHex[b >> 4];
        out += kHex[b & 15];
    }
    return out;
}

std::optional<GreylistKey> greylist_key_from_hex(std::string_view hex) {
    GreylistKey key{};
    if (hex.size() != key.size() * 2) return std::nullopt;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < key.size(); ++i) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        key[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return key;
}

std::string_view greylist_why_name(GreylistAnswer::Why why) {
    switch (why) {
        case GreylistAnswer::Why::New: return "new";
        case GreylistAnswer::Why::Early: return "early";
        case GreylistAnswer::Why::Retried: return "retried";
        case GreylistAnswer::Why::Passed: return "passed";
        case GreylistAnswer::Why::Whitelisted: return "whitelisted";
    }
    return "new";
}

GreylistAnswer greylist_step(std::optional<GreylistEntry>& entry,
                             std::optional<GreylistClient>& client, const GreylistRequest& r,
                             std::uint64_t now) {
    GreylistAnswer a;
    if (r.auto_whitelist > 0 && client && client->dead_ms > now &&
        client->count >= r.auto_whitelist) {
        refresh_client(client, r, now, false);
        a.pass = true;
        a.why = GreylistAnswer::Why::Whitelisted;
        return a;
    }
    if (entry && entry->dead_ms <= now) entry.reset();  // past its window, or expired
    // First seen "later" than now: the wall clock stepped back (NTP, a wrong RTC at boot,
    // a state file from a clock ahead). It starts over: now - first_ms would wrap, and a
    // retry could pass at once.
    if (entry && !entry->passed && entry->first_ms > now) entry.reset();
    if (!entry) {
        entry = GreylistEntry{now, now, saturating_add(now, r.window_ms), false};
        a.remaining_ms = r.delay_ms;
        return a;
    }
    entry->last_ms = now;
    if (entry->passed) {
        entry->dead_ms = saturating_add(now, r.expire_ms);
        refresh_client(client, r, now, false);
        a.pass = true;
        a.why = GreylistAnswer::Why::Passed;
        return a;
    }
    std::uint64_t waited = now - entry->first_ms;
    if (waited < r.delay_ms) {
        a.why = GreylistAnswer::Why::Early;
        a.remaining_ms = r.delay_ms - waited;
        return a;
    }
    entry->passed = true;
    entry->dead_ms = saturating_add(now, r.expire_ms);
    refresh_client(client, r, now, true);
    a.pass = true;
    a.why = GreylistAnswer::Why::Retried;
    return a;
}

std::string normalise_greylist_sender(std::string_view sender) {
    std::string lower = ascii_lower(sender);
    auto at = lower.rfind('@');
    std::string_view local = std::string_view(lower).substr(0, at);
    std::string domain = at == std::string::npos ? std::string() : lower.substr(at);
    // A forwarder may sign its SRS address with BATV (prvs=TAG=SRS0=...): the tag first,
    // or the SRS hash and timestamp, new each day, would stay in the triplet.
    local = batv_local(local);
    if (auto original = srs_original(local)) {
        auto oat = original->rfind('@');
        domain = original->substr(oat);
        lower = original->substr(0, oat);  // `local` points into `lower` no more
        local = lower;
    }
    return verp_local(batv_local(local)) + domain;
}

std::string greylist_client_network(const std::optional<IpAddress>& ip,
                                    const GreylistSettings& settings) {
    if (!ip) return {};
    unsigned len =
        ip->v6 ? std::min(settings.ipv6_prefix, 128u) : std::min(settings.ipv4_prefix, 32u);
    return mask_ip(*ip, len).to_string() + "/" + std::to_string(len);
}

GreylistKey greylist_triplet_key(const std::string& network, std::string_view sender,
                                 std::string_view recipient) {
    // Lengths first: a sender holding the separator cannot pose as another split.
    std::string lengths =
        std::to_string(network.size()) + ":" + std::to_string(sender.size()) + ":";
    return first_128_bits(sha256({"t\x1f", lengths, network, sender, recipient}));
}

GreylistKey greylist_client_key(const std::string& network) {
    return first_128_bits(sha256({"c\x1f", network}));
}

}  // namespace pm
