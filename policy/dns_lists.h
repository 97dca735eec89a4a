// SPDX-License-Identifier: BSD-2-Clause
// DNS LISTS
//   DnsList                    a `dnsbl` or `rhsbl` list: zone, `returns` filter, on-error
//   check_dns_zone(zone)       why a zone name cannot be used (empty if it can)
//   dns_query_name(list, v)    the name to look up for one value, or nullopt (hostile)
//   DnsAnswer, DnsSource       an answer, and the interface the core gets answers through
//   dns_list_matches(...)      whether an answer lists the value (`returns` or 127/8)
//   dns_queries(...)           the lookups a policy needs for the facts known so far
//
// The language side of DNS lists (policy-milter.rules(5), DNS LISTS), pure: nothing here
// opens a socket. The resolver behind DnsSource lives in dns/ (c-ares), as the counter
// stores behind CounterStore live in store/. Answers are kept in the session's Facts by
// query name, so a rule reads them without waiting; Conversation starts the lookups as
// soon as their facts are known and waits, at most dns-timeout per stage, only for those
// the stage's own rules read.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/fields.h"
#include "policy/ip.h"

namespace pm {

struct Facts;
class Policy;

enum class DnsListKind { Dnsbl, Rhsbl };

// One `returns` item: a single address is a range of one.
struct DnsReturnRange {
    std::uint32_t first = 0, last = 0;  // host order, inclusive
};

struct DnsList {
    std::string name;  // as declared: `list zen = ...`
    DnsListKind kind = DnsListKind::Dnsbl;
    std::string zone;                     // lower case, no trailing dot
    std::vector<DnsReturnRange> returns;  // empty: any 127.0.0.0/8 but 127.255.255.0/24
    bool on_error_tempfail = false;
};

// Why `zone` cannot be a DNS list's zone (labels of letters, digits, '-' and '_', at most
// 63 octets each, 200 in all, two labels at least), or empty if it can.
std::string check_dns_zone(std::string_view zone);

// Longest label and name the resolver is ever asked for (RFC 1035).
inline constexpr std::size_t kMaxDnsLabel = 63;
inline constexpr std::size_t kMaxDnsName = 253;

// The name to query for a client address (dnsbl: reversed octets, or reversed nibbles for
// IPv6) or a domain (rhsbl) under the list's zone. nullopt for a value never sent to DNS:
// a domain with a byte other than a letter, digit or '-' (an address literal, '_', '*'),
// an empty label, a label over 63 octets, a name over 253, or "unknown".
std::optional<std::string> dns_query_name(const DnsList& list, const IpAddress& ip);
std::optional<std::string> dns_query_name(const DnsList& list, std::string_view lower_domain);

// What the resolver found for one name.
struct DnsAnswer {
    enum class Status {
        Found,     // A records (and the TXT, if asked for)
        NotFound,  // NXDOMAIN or no A record: not listed
        Failed,    // timeout, SERVFAIL, REFUSED, an answer that would not parse
    };
    Status status = Status::Failed;
    std::vector<std::uint32_t> addresses;  // A records, host order
    std::string txt;                       // the TXT strings joined, at most kMaxDnsTxt
    std::string error;                     // Failed: why ("timeout", "SERVFAIL", ...)
};
inline constexpr std::size_t kMaxDnsTxt = 512;

// The resolver as the core sees it; shared by every session, thread-safe. The daemon's
// and --test's is dns/resolver.h.
class DnsSource {
  public:
    virtual ~DnsSource() = default;
    // Starts a lookup of the A records (and of the TXT record, if `txt`) unless one is
    // cached or in flight. Never waits.
    virtual void start(const std::string& name, bool txt) = 0;
    // The answers for `names`, in order, waiting until `deadline` at most: one not
    // answered by then is Failed with "timeout".
    virtual std::vector<DnsAnswer> wait(std::span<const std::string> names, bool txt,
                                        std::chrono::steady_clock::time_point deadline) = 0;
};

// True if `answer` lists the value for `list`: an A record in its `returns`, or without
// `returns` in 127.0.0.0/8 except 127.255.255.0/24. `refused` is set when an answer of
// 127.255.255.x was ignored (the list refused the query or its quota is spent).
bool dns_list_matches(const DnsList& list, const DnsAnswer& answer, bool& refused);

// A DNS list read by a condition: what the lookups of a stage are built from.
struct DnsUse {
    Stage stage;
    FieldRef field;
    std::shared_ptr<const DnsList> list;
};

// The names to look up for the uses of `stages` (true by stage index) given the facts
// known so far, each once. A per-recipient field reads the current recipient up to rcpt (and at
// vrfy), every accepted one at data and message.
std::vector<std::string> dns_queries(std::span<const DnsUse> uses,
                                     const std::array<bool, kStageCount>& stages,
                                     const Facts& facts);

// The query names of one use for the facts (none if the field has no value yet).
void dns_use_names(const DnsUse& use, const Facts& facts, Stage stage,
                   std::vector<std::string>& out);

}  // namespace pm
