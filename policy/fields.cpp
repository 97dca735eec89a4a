// SPDX-License-Identifier: BSD-2-Clause
#include "policy/fields.h"

namespace pm {

const FieldInfo* find_field(std::string_view name) {
    for (const auto& f : detail::kFields)
        if (f.name == name) return &f;
    return nullptr;
}

bool field_available(const FieldInfo& field, Stage stage) {
    bool session_field = stage_index(field.since) <= stage_index(Stage::Helo);
    switch (stage) {
        case Stage::Vrfy:
            return session_field || (field.since == Stage::Rcpt && field.per_recipient);
        case Stage::Etrn: return session_field || field.id == FieldId::Domain;
        default:
            return field.since != Stage::Vrfy && field.since != Stage::Etrn &&
                   stage_index(field.since) <= stage_index(stage);
    }
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
