// SPDX-License-Identifier: BSD-2-Clause
#include "policy/template.h"

#include "policy/field_value.h"

namespace pm {

std::string Template::expand(const Facts& facts, Stage stage, std::string_view dnsbl_txt,
                             std::uint64_t greylist_remaining_s) const {
    std::string out;
    for (const auto& part : parts) {
        if (part.greylist_remaining) {
            out += std::to_string(greylist_remaining_s);
            continue;
        }
        if (part.dnsbl_txt) {
            out += dnsbl_txt;
            continue;
        }
        if (!part.field) {
            out += part.literal;
            continue;
        }
        const FieldRef& f = *part.field;
        bool many = f.info().per_recipient && (stage == Stage::Data || stage == Stage::Message);
        std::string scratch;
        if (!many) {
            out += raw_value(f, facts, &facts.recipient, scratch);
            continue;
        }
        for (std::size_t i = 0; i < facts.accepted_recipients.size(); ++i) {
            if (i > 0) out += ", ";
            out += raw_value(f, facts, &facts.accepted_recipients[i], scratch);
        }
    }
    return out;
}

}  // namespace pm
