// SPDX-License-Identifier: BSD-2-Clause
// The fields rules can test (policy-milter.rules(5), STAGES AND FIELDS): name, value type,
// and the stage that adds them.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "policy/stage.h"

namespace pm {

enum class FieldId {
    ClientIp,
    ClientName,
    ClientPort,
    Helo,
    Sender,
    SenderLocal,
    SenderDomain,
    AuthUser,
    MailSize,
    Tls,
    Recipient,
    RecipientLocal,
    RecipientDomain,
    RcptCount,
    Header,
    MessageSize,
    ClientPtr,
    ClientResolve,
    Command,  // the unknown stage's only own field
    Domain,   // the etrn stage's only own field
    Body,     // only in `body matches` and `body contains` (body_scan.h); the last:
              // kFieldCount counts on it
};
inline constexpr std::size_t kFieldCount = static_cast<std::size_t>(FieldId::Body) + 1;

// How a field's values compare and which list items fit it.
enum class ValueType { Ip, Host, Address, Text, Number, Bool };

struct FieldInfo {
    std::string_view name;
    FieldId id;
    ValueType type;
    Stage since;
    bool per_recipient;  // recipient, recipient.local, recipient.domain
};

namespace detail {
// Every field, indexed by FieldId: the table behind field_info and find_field.
inline constexpr std::array<FieldInfo, kFieldCount> kFields = {{
    {"client.ip", FieldId::ClientIp, ValueType::Ip, Stage::Connect, false},
    {"client.name", FieldId::ClientName, ValueType::Host, Stage::Connect, false},
    {"client.port", FieldId::ClientPort, ValueType::Number, Stage::Connect, false},
    {"helo", FieldId::Helo, ValueType::Host, Stage::Helo, false},
    {"sender", FieldId::Sender, ValueType::Address, Stage::Mail, false},
    {"sender.local", FieldId::SenderLocal, ValueType::Text, Stage::Mail, false},
    {"sender.domain", FieldId::SenderDomain, ValueType::Host, Stage::Mail, false},
    {"auth.user", FieldId::AuthUser, ValueType::Text, Stage::Mail, false},
    {"mail.size", FieldId::MailSize, ValueType::Number, Stage::Mail, false},
    {"tls", FieldId::Tls, ValueType::Bool, Stage::Mail, false},
    {"recipient", FieldId::Recipient, ValueType::Address, Stage::Rcpt, true},
    {"recipient.local", FieldId::RecipientLocal, ValueType::Text, Stage::Rcpt, true},
    {"recipient.domain", FieldId::RecipientDomain, ValueType::Host, Stage::Rcpt, true},
    {"rcpt.count", FieldId::RcptCount, ValueType::Number, Stage::Rcpt, false},
    {"header", FieldId::Header, ValueType::Text, Stage::Message, false},
    {"message.size", FieldId::MessageSize, ValueType::Number, Stage::Message, false},
    {"client.ptr", FieldId::ClientPtr, ValueType::Host, Stage::Connect, false},
    {"client.resolve", FieldId::ClientResolve, ValueType::Text, Stage::Connect, false},
    {"command", FieldId::Command, ValueType::Text, Stage::Unknown, false},
    {"domain", FieldId::Domain, ValueType::Host, Stage::Etrn, false},
    {"body", FieldId::Body, ValueType::Text, Stage::Message, false},
}};

constexpr bool fields_in_id_order() {
    for (std::size_t i = 0; i < kFields.size(); ++i)
        if (static_cast<std::size_t>(kFields[i].id) != i) return false;
    return true;
}
static_assert(fields_in_id_order(), "kFields is indexed by FieldId");
}  // namespace detail

const FieldInfo* find_field(std::string_view name);  // "header" is found as Header
// Inline: rule evaluation asks it for every condition it tests.
inline const FieldInfo& field_info(FieldId id) {
    return detail::kFields[static_cast<std::size_t>(id)];
}

std::string_view value_type_name(ValueType type);

// Whether a rule at `stage` may read the field. The conversation's stages see the fields
// of every stage up to their own. The other three stand outside the transaction and see
// the connect and helo fields plus their own: an unknown command may come at any point of
// a session (before HELO, helo is empty), so it sees command; vrfy sees the recipient (and
// its parts); etrn sees domain. No other stage sees command or domain.
constexpr bool field_available(const FieldInfo& f, Stage stage) {
    bool session_field = f.since == Stage::Connect || f.since == Stage::Helo;
    switch (stage) {
        case Stage::Unknown: return session_field || f.id == FieldId::Command;
        case Stage::Vrfy: return session_field || (f.since == Stage::Rcpt && f.per_recipient);
        case Stage::Etrn: return session_field || f.id == FieldId::Domain;
        default:
            return stage_index(f.since) <= stage_index(Stage::Message) &&
                   stage_index(f.since) <= stage_index(stage);
    }
}

// A field as used in a rule: header["Name"] carries the (lower-cased) header name.
struct FieldRef {
    FieldId id = FieldId::ClientIp;
    std::string header;  // for FieldId::Header, lower case

    const FieldInfo& info() const { return field_info(id); }
    std::string display() const;  // as written: header["Subject"] shows the name lower-cased
};

}  // namespace pm
