// SPDX-License-Identifier: BSD-2-Clause
// SMTP stages at which rules run: the conversation's in protocol order, then `unknown`
// (an unrecognised command) and the policy-delegation front end's `vrfy` and `etrn`.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace pm {

// Unknown may come at any point of a session (fields.h says which fields it sees). Vrfy
// and Etrn exist only in the policy-delegation front end (milter/policy_delegation.h): a
// milter never sees those commands. The three stand outside the transaction's order: a
// field is available there only as field_available() (policy/fields.h) says.
enum class Stage { Connect, Helo, Mail, Rcpt, Data, Message, Unknown, Vrfy, Etrn };

inline constexpr std::array<Stage, 9> kAllStages = {Stage::Connect, Stage::Helo, Stage::Mail,
                                                    Stage::Rcpt,    Stage::Data, Stage::Message,
                                                    Stage::Unknown, Stage::Vrfy, Stage::Etrn};
inline constexpr std::size_t kStageCount = kAllStages.size();

constexpr std::size_t stage_index(Stage s) {
    return static_cast<std::size_t>(s);
}

constexpr std::string_view stage_name(Stage s) {
    constexpr std::array<std::string_view, kStageCount> names = {
        "connect", "helo", "mail", "rcpt", "data", "message", "unknown", "vrfy", "etrn"};
    return names[stage_index(s)];
}

inline std::optional<Stage> stage_from_name(std::string_view name) {
    for (Stage s : kAllStages)
        if (stage_name(s) == name) return s;
    return std::nullopt;
}

}  // namespace pm
