// The fields rules can test (spec §4): name, value type, and the stage that adds them.
#pragma once

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
};

// How a field's values compare and which list items fit it.
enum class ValueType { Ip, Host, Address, Text, Number, Bool };

struct FieldInfo {
    std::string_view name;
    FieldId id;
    ValueType type;
    Stage since;
    bool per_recipient;  // recipient, recipient.local, recipient.domain
};

const FieldInfo* find_field(std::string_view name);  // "header" is found as Header
const FieldInfo& field_info(FieldId id);
std::string_view value_type_name(ValueType type);

// A field as used in a rule: header["Name"] carries the (lower-cased) header name.
struct FieldRef {
    FieldId id = FieldId::ClientIp;
    std::string header;  // for FieldId::Header, lower case

    const FieldInfo& info() const { return field_info(id); }
    std::string display() const;  // as written: header["Subject"] shows the name lower-cased
};

}  // namespace pm
