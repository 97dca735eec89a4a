// SPDX-License-Identifier: BSD-2-Clause
// TEMPLATES
//   Template::expand(facts, stage)   the text with each {field} replaced by its value
//
// Reply texts, quarantine reasons and added header values may name fields in braces
// (policy-milter.rules(5), REPLY CODES, Templates). A field is expanded as the client wrote it; a
// per-recipient field after rcpt lists every accepted recipient, separated by ", ".
// The result is raw: the caller sanitises it for where it goes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/facts.h"
#include "policy/fields.h"
#include "policy/stage.h"

namespace pm {

struct Template {
    struct Part {
        std::string literal;
        std::optional<FieldRef> field;
        bool greylist_remaining = false;  // {greylist.remaining}: a greylist reply only
        bool dnsbl_txt = false;           // {dnsbl.txt}: the TXT of the DNS list that matched
    };
    std::vector<Part> parts;

    // `dnsbl_txt`: the TXT record of the DNS list that matched in the rule's condition;
    // `greylist_remaining_s`: the seconds {greylist.remaining} stands for.
    std::string expand(const Facts& facts, Stage stage, std::string_view dnsbl_txt = {},
                       std::uint64_t greylist_remaining_s = 0) const;
    bool empty() const { return parts.empty(); }
};

}  // namespace pm
