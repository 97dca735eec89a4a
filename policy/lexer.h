// SPDX-License-Identifier: BSD-2-Clause
// Tokens of the rules language (policy-milter.rules(5), LEXICAL CONVENTIONS): tokenize()
// splits a whole rules file into them. Newlines are not significant; the parser
// recognises keywords among words, so the lexer stays context-free except for regexes,
// which begin with '/' wherever a token begins.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/diagnostics.h"

namespace pm {

enum class TokenKind {
    Word,    // keywords, identifiers, field names, numbers, IP literals, codes
    String,  // "..." with \" and \\ decoded
    Regex,   // /.../flags: text holds the pattern, flags the letters after it
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Assign,  // =
    Eq,      // ==
    NotEq,   // !=
    Less,
    LessEq,
    Greater,
    GreaterEq,
    End,
    Invalid,  // a character the language does not use; reported by the parser
};

struct Token {
    TokenKind kind = TokenKind::End;
    std::string text;
    std::string flags;                   // regex flags
    std::uint32_t line = 0, column = 0;  // 1-based
    // For strings: the source column of each decoded character, so diagnostics inside a
    // reply template can point at the exact character.
    std::vector<std::uint32_t> char_columns;
    bool unterminated = false;  // string or regex ran to end of line
};

// Splits a whole rules file into tokens, ending with one End token.
std::vector<Token> tokenize(std::string_view source);

}  // namespace pm
