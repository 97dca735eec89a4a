// SPDX-License-Identifier: BSD-2-Clause
// IP addresses and prefix sets. A set is kept as sorted, merged address intervals per
// family: membership needs no per-prefix data, so an interval array is exact, costs
// 8 bytes per IPv4 entry (32 per IPv6) and answers with one binary search.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/large_alloc.h"

namespace pm {

__extension__ typedef unsigned __int128 Ipv6Bits;  // GCC and clang both have it

// Address lengths in bits: the longest prefix of each family.
inline constexpr unsigned kIpv4Bits = 32;
inline constexpr unsigned kIpv6Bits = 128;

struct IpAddress {
    bool v6 = false;
    std::uint32_t v4_bits = 0;  // host order
    Ipv6Bits v6_bits = 0;

    static IpAddress from_v4(std::uint32_t bits) { return {false, bits, 0}; }
    static IpAddress from_v6(Ipv6Bits bits);  // an IPv4-mapped address becomes IPv4

    std::string to_string() const;
    friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// Parses "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1". Rejects anything else,
// including zone indexes and leading zeros that inet_pton would read as octal.
std::optional<IpAddress> parse_ip(std::string_view text);

struct IpPrefix {
    IpAddress address;
    unsigned length = 0;         // 0..32 or 0..128
    bool host_bits_set = false;  // "10.1.2.3/8": masked; the rules file calls it an error
};

// Parses an address or "address/length".
std::optional<IpPrefix> parse_ip_prefix(std::string_view text);

// Why `text`, which parse_ip_prefix refused, is not an address or prefix, when it looks
// meant as one ("leading zeros ...", "an IPv4 prefix length is at most 32"); else empty.
std::string ip_prefix_problem(std::string_view text);

// The address with all but the first `length` bits cleared (for grouping keys).
IpAddress mask_ip(const IpAddress& ip, unsigned length);

class IpSet {
  public:
    void add(const IpPrefix& prefix);
    // Sorts and merges; call once after the last add and before contains.
    void finish();
    bool contains(const IpAddress& ip) const;
    std::size_t interval_count() const { return v4_.size() + v6_.size(); }
    bool empty() const { return v4_.empty() && v6_.empty(); }

  private:
    template <class T>
    struct Interval {
        T first, last;
    };
    template <class T>
    using Intervals = std::vector<Interval<T>, LargeAllocator<Interval<T>>>;
    Intervals<std::uint32_t> v4_;
    Intervals<Ipv6Bits> v6_;
};

}  // namespace pm
