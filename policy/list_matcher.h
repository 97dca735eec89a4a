// SPDX-License-Identifier: BSD-2-Clause
// A list compiled for the type of field it is matched against (policy-milter.rules(5),
// "List items by field type"): IP prefixes, addresses (exact, @domain, .domain, globs),
// host names (exact, .name, globs), text (exact, globs) or numbers. All text matching is
// ASCII case-insensitive. ListMatcher::add_item checks and adds one item as written,
// finish() compiles, the contains_* functions answer; GlobSet is the glob part.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "policy/diagnostics.h"
#include "policy/facts.h"
#include "policy/fields.h"
#include "policy/ip.h"
#include "policy/string_set.h"

namespace pm {

// Globs and regexes see at most the first kMaxMatchBytes bytes of a value: 102,400, the
// default header_size_limit of Postfix, which keeps no more of one header itself. This
// bounds the time one value can cost; a glob's suffix (and a regex's '$') applies to the
// cut. Exact and list lookups of whole values are not cut.
inline constexpr std::size_t kMaxMatchBytes = 102'400;
inline std::string_view match_window(std::string_view value) {
    return value.substr(0, kMaxMatchBytes);
}

// Globs where '*' matches any run of characters, over the whole value (cut to
// kMaxMatchBytes). A few dozen are tried one by one on a short value (a length check and a
// memcmp reject most); otherwise one pass of an Aho-Corasick automaton over the globs'
// literal pieces decides, and stops at the first glob that matches: the cost grows with
// the value's length, not with the number of globs or how many of them match, and the
// memory is that of the list's own text (no regex automaton that could run out).
class GlobSet {
  public:
    GlobSet();
    ~GlobSet();
    GlobSet(GlobSet&&) noexcept;
    GlobSet& operator=(GlobSet&&) noexcept;

    void add(std::string_view lower_glob);
    // Returns an error message if the set cannot be built (none yet).
    std::string finish();
    bool matches(std::string_view lower_value) const;
    bool empty() const { return count_ == 0; }

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::size_t count_ = 0;
};

class ListMatcher {
  public:
    explicit ListMatcher(ValueType type) : type_(type) {}

    ValueType type() const { return type_; }
    std::size_t size() const { return entries_; }

    // Adds one item as written; on a bad item reports at `where` and returns false.
    bool add_item(std::string_view item, const SourceLocation& where, std::string_view field_name,
                  Diagnostics& diags);
    void finish(const SourceLocation& where, Diagnostics& diags);
    void reserve(std::size_t entries);

    bool contains_ip(const IpAddress& ip) const { return ips_.contains(ip); }
    bool contains_address(const Address& a) const;
    bool contains_host(std::string_view lower_host) const;
    bool contains_text(std::string_view lower_text) const;
    bool contains_number(std::uint64_t n) const { return numbers_.count(n) > 0; }

  private:
    std::string add_ip(std::string_view item, std::string_view field_name);
    std::string add_address(std::string_view item, std::string_view field_name);
    std::string add_host(std::string_view item, std::string_view field_name);
    std::string add_text(std::string_view item);
    std::string add_number(std::string_view item, std::string_view field_name);
    bool subdomain_match(std::string_view lower_host) const;

    ValueType type_;
    std::size_t entries_ = 0;
    IpSet ips_;
    StringSet exact_;       // addresses, host names, text
    StringSet domains_;     // "@domain" items, stored without '@'
    StringSet subdomains_;  // ".domain" items, stored without the leading dot
    GlobSet globs_;
    std::unordered_set<std::uint64_t> numbers_;
    bool null_sender_ = false;
};

}  // namespace pm
