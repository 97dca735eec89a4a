// SPDX-License-Identifier: BSD-2-Clause
// What is known about one SMTP session so far. The milter adapter and --test fill it in
// stage by stage; the policy only reads it. Values are normalised once here (lower case,
// split addresses) so that evaluating many rules costs no repeated string work.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "policy/dns_lists.h"
#include "policy/ip.h"

namespace pm {

// A mail address as given in MAIL FROM or RCPT TO, brackets and source route removed.
class Address {
  public:
    Address() = default;
    // Accepts "<user@example.com>", "user@example.com", "<>", "<@a,@b:user@example.com>".
    static Address from_smtp(std::string_view text);
    // The part of `text` that from_smtp keeps as raw(), without building an Address.
    static std::string_view unwrap(std::string_view text);

    const std::string& raw() const { return raw_; }      // as the client wrote it
    const std::string& lower() const { return lower_; }  // ASCII lower case
    std::string_view local() const { return std::string_view(lower_).substr(0, at_); }
    std::string_view domain() const {
        return at_ < lower_.size() ? std::string_view(lower_).substr(at_ + 1) : std::string_view{};
    }
    std::string_view raw_local() const { return std::string_view(raw_).substr(0, at_); }
    std::string_view raw_domain() const {
        return at_ < raw_.size() ? std::string_view(raw_).substr(at_ + 1) : std::string_view{};
    }
    bool empty() const { return raw_.empty(); }

  private:
    std::string raw_;
    std::string lower_;
    std::size_t at_ = 0;  // position of the last '@', or size() if none
};

std::string ascii_lower(std::string_view s);
// Equal once both are ASCII lower-cased; `lower` is already lower case.
bool equals_lower(std::string_view s, std::string_view lower);
// Lower case, without a trailing dot: "Mail.Example.COM." -> "mail.example.com".
std::string normalize_host(std::string_view s);

// The longest command line RFC 5321 §4.5.3.1.4 allows, CRLF excluded: `command` keeps no
// more of a longer one.
inline constexpr std::size_t kMaxCommandBytes = 510;

// The MTA's reverse lookup of the client, as its macros give it (Facts::set_client_lookup).
struct ClientLookup {
    std::string_view ptr;      // {client_ptr}
    std::string_view resolve;  // {client_resolve}
};

struct Facts {
    // connect
    std::optional<IpAddress> client_ip;
    std::string client_name = "unknown";  // verified reverse name, or "unknown"
    std::string client_name_lower = "unknown";
    std::uint32_t client_port = 0;
    // The MTA's own reverse lookup: the unverified PTR name ({client_ptr}) and the result
    // of its check (Sendmail's {client_resolve}; derived for Postfix, see set_client_lookup).
    std::string client_ptr = "unknown", client_ptr_lower = "unknown";
    std::string client_resolve;  // ok, fail, forged, temp; empty if the MTA says nothing
    // helo
    std::string helo, helo_lower;
    // mail
    bool mail_seen = false;  // MAIL given in this transaction (`sender` is empty for <>)
    Address sender;
    std::string auth_user, auth_user_lower;
    std::uint64_t mail_size = 0;
    bool tls = false;
    // rcpt: the recipient being decided, and those accepted so far in this transaction
    Address recipient;
    std::vector<Address> accepted_recipients;
    std::uint32_t rcpt_count = 0;  // accepted so far, plus the current one during rcpt
    // message: the first value of each header the policy reads, by lower-case name. A later
    // copy of the same header is never read, so it is not kept: a sender repeating one
    // header 800,000 times would otherwise cost tens of MB per connection.
    struct Header {
        std::string name;         // lower case
        std::string value;        // as the message has it
        std::string value_lower;  // lower-cased once here, not at every rule that reads it
    };
    std::vector<Header> headers;
    std::uint64_t message_size = 0;
    // Of each `body matches` / `body contains` condition, by Condition::body_index: 1 if
    // the scanned part of the body matched (set at end of message, body_scan.h).
    std::vector<std::uint8_t> body_hits;
    // unknown: the command line as the MTA passed it, sanitised (set_command)
    std::string command, command_lower;
    // etrn (policy delegation only): the domain ETRN names, without a leading '@' or '#'
    std::string domain, domain_lower;
    // DNS list answers of the session, by query name (policy/dns_lists.h). A name is the
    // same under any policy, so a session keeps them across a reload.
    std::unordered_map<std::string, DnsAnswer> dns;

    // `name` as xxfi_connect gives it: empty or "[192.0.2.1]" when the MTA has no verified
    // name, which becomes "unknown" here and nowhere else.
    void set_client(std::optional<IpAddress> ip, std::string_view name, std::uint32_t port);
    // `ptr` as {client_ptr} gives it (empty or "unknown": none; "[addr]" too); `resolve` as
    // Sendmail's {client_resolve} (OK, FAIL, FORGED, TEMP). Without `resolve` (Postfix) it
    // is derived: no PTR name is fail, a PTR name equal to the verified client.name is ok,
    // a PTR name the MTA did not verify is forged. Postfix does not tell a temporary
    // failure apart, so temp comes only from Sendmail.
    void set_client_lookup(std::string_view ptr, std::string_view resolve);
    void set_helo(std::string_view name);
    void set_sender(std::string_view smtp_address, std::string_view auth, std::uint64_t size,
                    bool tls_on);
    // Keeps `value` unless a header of that name (in any case) is kept already.
    void add_header(std::string_view name, std::string_view value);
    // First value of a header, by lower-case name; empty if absent.
    std::string_view header(std::string_view lower_name) const;
    // The same value in lower case.
    std::string_view header_lower(std::string_view lower_name) const;
    // Control bytes (CR, LF, TAB, NUL's kin) become spaces, blanks at the end go, and the
    // line is cut to kMaxCommandBytes; 8-bit bytes are kept as they are.
    void set_command(std::string_view line);
    // Forget the transaction (MAIL, RSET, abort): keep connect and helo facts.
    void reset_transaction();
};

}  // namespace pm
