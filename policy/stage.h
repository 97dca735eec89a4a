// SPDX-License-Identifier: BSD-2-Clause
// SMTP stages at which rules run: the conversation's in protocol order, then `unknown`
// (an unrecognised command, which may come at any point of a session; fields.h says
// which fields it sees).
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace pm {

enum class Stage { Connect, Helo, Mail, Rcpt, Data, Message, Unknown };

inline constexpr std::array<Stage, 7> kAllStages = {Stage::Connect, Stage::Helo, Stage::Mail,
                                                    Stage::Rcpt,    Stage::Data, Stage::Message,
                                                    Stage::Unknown};
inline constexpr std::size_t kStageCount = kAllStages.size();

constexpr std::size_t stage_index(Stage s) {
    return static_cast<std::size_t>(s);
}

constexpr std::string_view stage_name(Stage s) {
    constexpr std::array<std::string_view, kStageCount> names = {
        "connect", "helo", "mail", "rcpt", "data", "message", "unknown"};
    return names[stage_index(s)];
}

inline std::optional<Stage> stage_from_name(std::string_view name) {
    for (Stage s : kAllStages)
        if (stage_name(s) == name) return s;
    return std::nullopt;
}

}  // namespace pm
