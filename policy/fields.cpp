#include "policy/fields.h"

#include <array>

namespace pm {

namespace {

constexpr std::array<FieldInfo, 16> kFields = {{
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
}};

}  // namespace

const FieldInfo* find_field(std::string_view name) {
    for (const auto& f : kFields)
        if (f.name == name) return &f;
    return nullptr;
}

const FieldInfo& field_info(FieldId id) {
    return kFields[static_cast<std::size_t>(id)];
}

std::string_view value_type_name(ValueType type) {
    switch (type) {
        case ValueType::Ip: return "an IP address";
        case ValueType::Host: return "a host or domain name";
        case ValueType::Address: return "a mail address";
        case ValueType::Text: return "text";
        case ValueType::Number: return "a number";
        case ValueType::Bool: return "a boolean";
    }
    return "a value";
}

std::string FieldRef::display() const {
    if (id == FieldId::Header) return "header[\"" + header + "\"]";
    return std::string(info().name);
}

}  // namespace pm
