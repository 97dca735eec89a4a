// SPDX-License-Identifier: BSD-2-Clause
#include "policy/ip.h"

#include <arpa/inet.h>
#include <algorithm>
#include <charconv>
#include <cstring>
#include <vector>

namespace pm {

namespace {

constexpr Ipv6Bits kV4MappedPrefix = static_cast<Ipv6Bits>(0xFFFF) << 32;
constexpr Ipv6Bits kV4MappedMask = ~static_cast<Ipv6Bits>(0xFFFFFFFFu);
constexpr std::size_t kIpv6Bytes = kIpv6Bits / 8;  // as inet_pton writes them

bool parse_v4(std::string_view text, std::uint32_t& out) {
    std::uint32_t bits = 0;
    for (int i = 0; i < 4; ++i) {
        if (i > 0) {
            if (text.empty() || text[0] != '.') return false;
            text.remove_prefix(1);
        }
        std::size_t n = 0;
        while (n < text.size() && n < 4 && text[n] >= '0' && text[n] <= '9') ++n;
        if (n == 0 || n > 3 || (n > 1 && text[0] == '0')) return false;
        unsigned octet = 0;
        std::from_chars(text.data(), text.data() + n, octet);
        if (octet > 255) return false;
        bits = (bits << 8) | octet;
        text.remove_prefix(n);
    }
    if (!text.empty()) return false;
    out = bits;
    return true;
}

bool parse_v6(std::string_view text, Ipv6Bits& out) {
    if (text.size() > INET6_ADDRSTRLEN || text.find('%') != std::string_view::npos) return false;
    char buf[INET6_ADDRSTRLEN + 1];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    unsigned char bytes[kIpv6Bytes];
    if (inet_pton(AF_INET6, buf, bytes) != 1) return false;
    Ipv6Bits bits = 0;
    for (unsigned char b : bytes) bits = (bits << 8) | b;
    out = bits;
    return true;
}

}  // namespace

IpAddress IpAddress::from_v6(Ipv6Bits bits) {
    if ((bits & kV4MappedMask) == kV4MappedPrefix)
        return from_v4(static_cast<std::uint32_t>(bits & 0xFFFFFFFFu));
    return {true, 0, bits};
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN];
    if (!v6) {
        std::uint32_t be = htonl(v4_bits);
        inet_ntop(AF_INET, &be, buf, sizeof buf);
        return buf;
    }
    unsigned char bytes[kIpv6Bytes];
    Ipv6Bits bits = v6_bits;
    for (std::size_t i = kIpv6Bytes; i-- > 0;) {
        bytes[i] = static_cast<unsigned char>(bits & 0xFF);
        bits >>= 8;
    }
    inet_ntop(AF_INET6, bytes, buf, sizeof buf);
    return buf;
}

std::optional<IpAddress> parse_ip(std::string_view text) {
    std::uint32_t v4;
    if (parse_v4(text, v4)) return IpAddress::from_v4(v4);
    Ipv6Bits v6;
    if (text.find(':') != std::string_view::npos && parse_v6(text, v6))
        return IpAddress::from_v6(v6);
    return std::nullopt;
}

IpAddress mask_ip(const IpAddress& ip, unsigned length) {
    IpAddress out = ip;
    if (!ip.v6) {
        out.v4_bits = length == 0    ? 0
                      : length >= 32 ? ip.v4_bits
                                     : ip.v4_bits & ~((1u << (32 - length)) - 1);
    } else {
        Ipv6Bits all = ~static_cast<Ipv6Bits>(0);
        out.v6_bits = length == 0     ? 0
                      : length >= 128 ? ip.v6_bits
                                      : ip.v6_bits & ~((all >> length));
    }
    return out;
}

std::optional<IpPrefix> parse_ip_prefix(std::string_view text) {
    auto slash = text.find('/');
    std::string_view addr_text = text.substr(0, slash);
    // An IPv4-mapped IPv6 prefix keeps IPv6 semantics for its length: parse it raw.
    IpPrefix p;
    std::uint32_t v4;
    Ipv6Bits v6;
    unsigned max_len;
    if (parse_v4(addr_text, v4)) {
        p.address = IpAddress::from_v4(v4);
        max_len = kIpv4Bits;
    } else if (addr_text.find(':') != std::string_view::npos && parse_v6(addr_text, v6)) {
        p.address = IpAddress{true, 0, v6};
        max_len = kIpv6Bits;
    } else {
        return std::nullopt;
    }
    p.length = max_len;
    if (slash != std::string_view::npos) {
        std::string_view len_text = text.substr(slash + 1);
        unsigned len = 0;
        auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
        if (len_text.empty() || ec != std::errc{} || ptr != len_text.data() + len_text.size() ||
            len > max_len || (len_text.size() > 1 && len_text[0] == '0'))
            return std::nullopt;
        p.length = len;
    }
    IpAddress masked = mask_ip(p.address, p.length);
    p.host_bits_set = !(masked == p.address);
    p.address = masked;
    // ::ffff:a.b.c.d/len with len >= 96 is the IPv4 prefix a.b.c.d/(len-96).
    if (p.address.v6 && p.length >= 96 && (p.address.v6_bits & kV4MappedMask) == kV4MappedPrefix) {
        p.address = IpAddress::from_v4(static_cast<std::uint32_t>(p.address.v6_bits));
        p.length -= 96;
    }
    return p;
}

namespace {

bool looks_like_v4(std::string_view addr) {
    return !addr.empty() && addr.find_first_not_of("0123456789.") == std::string_view::npos;
}

bool looks_like_v6(std::string_view addr) {
    return addr.find(':') != std::string_view::npos &&
           addr.find_first_not_of("0123456789abcdefABCDEF:.%") == std::string_view::npos &&
           addr.find_first_not_of(":") != std::string_view::npos;
}

// What is wrong with the first bad part of `addr`, digits and dots that parse_v4
// refused; `length` ("/24" or empty) is kept in the corrected address.
std::string v4_problem(std::string_view addr, std::string_view length) {
    std::vector<std::string_view> parts;
    for (std::size_t from = 0;;) {
        auto dot = addr.find('.', from);
        parts.push_back(addr.substr(from, dot - from));
        if (dot == std::string_view::npos) break;
        from = dot + 1;
    }
    if (parts.size() != 4)
        return "an IPv4 address has four parts, not " + std::to_string(parts.size());
    std::string fixed;
    bool leading_zero = false;
    for (auto part : parts) {
        if (part.empty()) return "an IPv4 address has no empty parts";
        std::size_t nz = part.find_first_not_of('0');
        std::string_view digits = nz == std::string_view::npos ? "0" : part.substr(nz);
        if (digits.size() > 3 || (digits.size() == 3 && digits > "255"))
            return "part '" + std::string(part) + "' is more than 255";
        if (part.size() > 1 && part[0] == '0') leading_zero = true;
        if (!fixed.empty()) fixed += '.';
        fixed += digits;
    }
    if (leading_zero)
        return "leading zeros are not allowed (some software reads 010 as octal 8): write " +
               fixed + std::string(length);
    return {};
}

std::string prefix_length_problem(std::string_view len, bool v4) {
    unsigned max_len = v4 ? kIpv4Bits : kIpv6Bits;
    if (len.empty()) return "no prefix length after '/'";
    if (len.find_first_not_of("0123456789") != std::string_view::npos)
        return "prefix length '" + std::string(len) + "' is not a number";
    if (len.size() > 1 && len[0] == '0')
        return "prefix length '" + std::string(len) + "' has a leading zero";
    if (len.size() > 3 || std::stoul(std::string(len)) > max_len)
        return std::string("an ") + (v4 ? "IPv4" : "IPv6") + " prefix length is at most " +
               std::to_string(max_len) + ", not " + std::string(len);
    return {};
}

}  // namespace

std::string ip_prefix_problem(std::string_view text) {
    auto slash = text.find('/');
    std::string_view addr = text.substr(0, slash);
    bool v4_like = looks_like_v4(addr);
    bool zoned = addr.find('%') != std::string_view::npos;
    if (!v4_like && !looks_like_v6(addr) && !zoned) return {};
    std::uint32_t v4;
    Ipv6Bits v6;
    if (v4_like && !parse_v4(addr, v4))
        return v4_problem(addr, slash == std::string_view::npos ? "" : text.substr(slash));
    if (zoned) return "zone indexes ('%' and what follows) are not allowed";
    if (!v4_like && !parse_v6(addr, v6)) return {};
    if (slash == std::string_view::npos) return {};
    return prefix_length_problem(text.substr(slash + 1), v4_like);
}

void IpSet::add(const IpPrefix& prefix) {
    const IpAddress& a = prefix.address;
    if (!a.v6) {
        std::uint32_t span = prefix.length == 0    ? ~0u
                             : prefix.length >= 32 ? 0u
                                                   : (1u << (32 - prefix.length)) - 1;
        v4_.push_back({a.v4_bits, a.v4_bits | span});
    } else {
        Ipv6Bits all = ~static_cast<Ipv6Bits>(0);
        Ipv6Bits span = prefix.length == 0 ? all : prefix.length >= 128 ? 0 : all >> prefix.length;
        v6_.push_back({a.v6_bits, a.v6_bits | span});
    }
}

namespace {
template <class V>
void sort_and_merge(V& intervals) {
    std::sort(intervals.begin(), intervals.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    std::size_t out = 0;
    for (std::size_t i = 0; i < intervals.size(); ++i) {
        if (out > 0) {
            auto& prev = intervals[out - 1];
            // Overlapping or adjacent (careful with wrap-around at the top of the space).
            if (intervals[i].first <= prev.last ||
                (prev.last + 1 != 0 && intervals[i].first == prev.last + 1)) {
                if (intervals[i].last > prev.last) prev.last = intervals[i].last;
                continue;
            }
        }
        intervals[out++] = intervals[i];
    }
    intervals.resize(out);
    intervals.shrink_to_fit();
}

template <class V, class T>
bool find_in(const V& intervals, T value) {
    // First interval that starts after value; the one before it may hold value.
    auto it = std::upper_bound(intervals.begin(), intervals.end(), value,
                               [](T v, const auto& iv) { return v < iv.first; });
    if (it == intervals.begin()) return false;
    return value <= std::prev(it)->last;
}
}  // namespace

void IpSet::finish() {
    sort_and_merge(v4_);
    sort_and_merge(v6_);
}

bool IpSet::contains(const IpAddress& ip) const {
    return ip.v6 ? find_in(v6_, ip.v6_bits) : find_in(v4_, ip.v4_bits);
}

}  // namespace pm
