// SPDX-License-Identifier: BSD-2-Clause
// Sizes and durations as the rules language writes them (policy-milter.rules(5),
// "Numbers and sizes" and "Durations"): "20MB", "1536K", "30s", "1h". The parse
// functions read one such word; the *_problem functions say why a word was refused, for
// a diagnostic. Used by the rules parser, list items of numeric fields and --test --size.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pm {

// Parses a number with an optional size unit (K, KB, M, MB, G, GB: powers of 1024).
bool parse_size(std::string_view text, std::uint64_t& out);
// Parses a duration: a number with s, m, h or d. Returns seconds.
bool parse_duration(std::string_view text, std::uint64_t& seconds);
// Why parse_size or parse_duration refused `text`, as a hint such as "units are upper
// case: 20MB"; empty when there is nothing more to say than that it is not one.
std::string size_problem(std::string_view text);
std::string duration_problem(std::string_view text);

}  // namespace pm
