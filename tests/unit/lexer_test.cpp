// SPDX-License-Identifier: BSD-2-Clause
// Tokens of the rules language: punctuation, operators and the characters it does not use.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/lexer.h"

namespace pm {
namespace {

std::vector<TokenKind> kinds(std::string_view source) {
    std::vector<TokenKind> out;
    for (const Token& t : tokenize(source)) out.push_back(t.kind);
    return out;
}

std::vector<std::string> texts(std::string_view source) {
    std::vector<std::string> out;
    for (const Token& t : tokenize(source)) out.push_back(t.text);
    return out;
}

TEST(Lexer, PunctuationAndOperators) {
    using K = TokenKind;
    EXPECT_EQ(
        kinds("[](),= == != < <= > >="),
        (std::vector<K>{K::LBracket, K::RBracket, K::LParen, K::RParen, K::Comma, K::Assign, K::Eq,
                        K::NotEq, K::Less, K::LessEq, K::Greater, K::GreaterEq, K::End}));
    EXPECT_EQ(texts("<=>=!==="), (std::vector<std::string>{"<=", ">=", "!=", "==", ""}));
    // '=' then '=' is one token; "[[" is two.
    EXPECT_EQ(kinds("[["), (std::vector<K>{K::LBracket, K::LBracket, K::End}));
}

TEST(Lexer, CharactersTheLanguageDoesNotUseAreKeptWhole) {
    using K = TokenKind;
    EXPECT_EQ(texts("&& || ! & |"), (std::vector<std::string>{"&&", "||", "!", "&", "|", ""}));
    EXPECT_EQ(kinds("&& ||"), (std::vector<K>{K::Invalid, K::Invalid, K::End}));
    // A NUL byte is never the second character of a pair.
    std::string nul("[\0=\0", 4);
    EXPECT_EQ(kinds(nul), (std::vector<K>{K::LBracket, K::Invalid, K::Assign, K::Invalid, K::End}));
    // One whole UTF-8 sequence, so a message can quote it.
    EXPECT_EQ(texts("\xC2\xA0x"), (std::vector<std::string>{"\xC2\xA0", "x", ""}));
}

TEST(Lexer, PositionsAreOneBased) {
    auto tokens = tokenize("rule\n  \"a\" == 5");
    ASSERT_EQ(tokens.size(), 5u);
    EXPECT_EQ(tokens[1].line, 2u);
    EXPECT_EQ(tokens[1].column, 3u);
    EXPECT_EQ(tokens[2].column, 7u);
}

}  // namespace
}  // namespace pm
