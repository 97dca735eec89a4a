// SPDX-License-Identifier: BSD-2-Clause
// FIELD VALUES
//   raw_value(field, facts, rcpt, scratch)   as the client wrote it: regexes, templates
//   lower_value(field, facts, rcpt)          lower case: ==, lists, limit keys, the rule index
//   number_value(field, facts)               numeric fields
//
// The value of a rule's field in the facts of a session, read the same way by the
// evaluator, the templates and the limit keys (policy-milter.rules(5), STAGES AND
// FIELDS). `rcpt` is the recipient a per-recipient field reads, never null: the one
// being decided (empty before rcpt), or one accepted recipient after rcpt. Inline:
// evaluation reads a field for every condition it tests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "policy/facts.h"
#include "policy/fields.h"

namespace pm {

inline std::uint64_t number_value(const FieldRef& f, const Facts& facts) {
    switch (f.id) {
        case FieldId::ClientPort: return facts.client_port;
        case FieldId::MailSize: return facts.mail_size;
        case FieldId::RcptCount: return facts.rcpt_count;
        case FieldId::MessageSize: return facts.message_size;
        default: return 0;  // not a number
    }
}

// The envelope's addresses and their parts, lower case; empty for any other field.
inline std::string_view address_lower(FieldId id, const Facts& facts, const Address* rcpt) {
    switch (id) {
        case FieldId::Sender: return facts.sender.lower();
        case FieldId::SenderLocal: return facts.sender.local();
        case FieldId::SenderDomain: return facts.sender.domain();
        case FieldId::Recipient: return rcpt->lower();
        case FieldId::RecipientLocal: return rcpt->local();
        case FieldId::RecipientDomain: return rcpt->domain();
        default: return {};
    }
}

// Lower case, as the policy's literals and list items are; empty for numbers, tls and
// client.ip, which are compared as what they are, and for body, which is scanned as it
// streams (body_scan.h), never held as a value.
inline std::string_view lower_value(const FieldRef& f, const Facts& facts, const Address* rcpt) {
    switch (f.id) {
        case FieldId::ClientName: return facts.client_name_lower;
        case FieldId::Helo: return facts.helo_lower;
        case FieldId::AuthUser: return facts.auth_user_lower;
        case FieldId::Header: return facts.header_lower(f.header);
        case FieldId::ClientPtr: return facts.client_ptr_lower;
        case FieldId::ClientResolve: return facts.client_resolve;
        case FieldId::Command: return facts.command_lower;
        case FieldId::Domain: return facts.domain_lower;
        default: return address_lower(f.id, facts, rcpt);
    }
}

// The envelope's addresses and their parts as sent; empty for any other field.
inline std::string_view address_raw(FieldId id, const Facts& facts, const Address* rcpt) {
    switch (id) {
        case FieldId::Sender: return facts.sender.raw();
        case FieldId::SenderLocal: return facts.sender.raw_local();
        case FieldId::SenderDomain: return facts.sender.raw_domain();
        case FieldId::Recipient: return rcpt->raw();
        case FieldId::RecipientLocal: return rcpt->raw_local();
        case FieldId::RecipientDomain: return rcpt->raw_domain();
        default: return {};
    }
}

// Numbers and the client's address are formatted into `scratch`; everything else is a
// view of the facts (body, which the parser never lets be read here, is empty).
inline std::string_view raw_value(const FieldRef& f, const Facts& facts, const Address* rcpt,
                                  std::string& scratch) {
    if (f.info().type == ValueType::Number) {
        scratch = std::to_string(number_value(f, facts));
        return scratch;
    }
    switch (f.id) {
        case FieldId::ClientIp:
            scratch = facts.client_ip ? facts.client_ip->to_string() : "";
            return scratch;
        case FieldId::ClientName: return facts.client_name;
        case FieldId::Helo: return facts.helo;
        case FieldId::AuthUser: return facts.auth_user;
        case FieldId::Tls: return facts.tls ? "yes" : "no";
        case FieldId::Header: return facts.header(f.header);
        case FieldId::ClientPtr: return facts.client_ptr;
        case FieldId::ClientResolve: return facts.client_resolve;
        case FieldId::Command: return facts.command;
        case FieldId::Domain: return facts.domain;
        default: return address_raw(f.id, facts, rcpt);
    }
}

}  // namespace pm
