// SPDX-License-Identifier: BSD-2-Clause
#include "policy/lexer.h"

#include <algorithm>
#include <iterator>

namespace pm {

namespace {

bool is_word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == ':' || c == '@' || c == '*' || c == '+';
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// A character that is a token of its own, or the first of a two-character one.
struct Punctuation {
    char first;
    TokenKind single;  // the token it is alone
    char second;       // '\0': none
    TokenKind pair;    // the token of first and second together
};
constexpr Punctuation kPunctuation[] = {
    {'[', TokenKind::LBracket, '\0', TokenKind::LBracket},
    {']', TokenKind::RBracket, '\0', TokenKind::RBracket},
    {'(', TokenKind::LParen, '\0', TokenKind::LParen},
    {')', TokenKind::RParen, '\0', TokenKind::RParen},
    {',', TokenKind::Comma, '\0', TokenKind::Comma},
    {'=', TokenKind::Assign, '=', TokenKind::Eq},
    {'!', TokenKind::Invalid, '=', TokenKind::NotEq},
    {'<', TokenKind::Less, '=', TokenKind::LessEq},
    {'>', TokenKind::Greater, '=', TokenKind::GreaterEq},
    // Not operators of the language; kept whole so the parser can say 'and'/'or'.
    {'&', TokenKind::Invalid, '&', TokenKind::Invalid},
    {'|', TokenKind::Invalid, '|', TokenKind::Invalid},
};

class Lexer {
  public:
    explicit Lexer(std::string_view src) : src_(src) {}

    std::vector<Token> run() {
        std::vector<Token> out;
        for (;;) {
            skip_space_and_comments();
            Token t;
            t.line = line_;
            t.column = column();
            if (pos_ >= src_.size()) {
                t.kind = TokenKind::End;
                out.push_back(std::move(t));
                return out;
            }
            lex_one(t);
            out.push_back(std::move(t));
        }
    }

  private:
    std::uint32_t column() const { return static_cast<std::uint32_t>(pos_ - line_start_ + 1); }

    void newline() {
        ++line_;
        line_start_ = pos_;
    }

    void skip_space_and_comments() {
        while (pos_ < src_.size()) {
            char c = src_[pos_];
            if (c == '\n') {
                ++pos_;
                newline();
            } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
                ++pos_;
            } else if (c == '#') {
                while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
            } else {
                return;
            }
        }
    }

    void lex_one(Token& t) {
        char c = src_[pos_];
        if (c == '"') return string(t);
        if (c == '/') return regex(t);
        if (punctuation(t, c)) return;
        if (is_word_char(c)) return word(t);
        // One whole UTF-8 sequence, so the message can quote it.
        std::size_t n = 1;
        while (pos_ + n < src_.size() &&
               (static_cast<unsigned char>(src_[pos_ + n]) & 0xC0) == 0x80 &&
               (static_cast<unsigned char>(c) & 0x80))
            ++n;
        t.kind = TokenKind::Invalid;
        t.text = std::string(src_.substr(pos_, n));
        pos_ += n;
    }

    // Brackets, commas and operators, one or two characters: false for any other.
    bool punctuation(Token& t, char c) {
        auto p = std::find_if(std::begin(kPunctuation), std::end(kPunctuation),
                              [c](const Punctuation& x) { return x.first == c; });
        if (p == std::end(kPunctuation)) return false;
        if (p->second != '\0' && pos_ + 1 < src_.size() && src_[pos_ + 1] == p->second)
            pair(t, p->pair);
        else
            single(t, p->single);
        return true;
    }

    void single(Token& t, TokenKind kind) {
        t.kind = kind;
        t.text = std::string(1, src_[pos_]);
        ++pos_;
    }

    void pair(Token& t, TokenKind kind) {
        t.kind = kind;
        t.text = std::string(src_.substr(pos_, 2));
        pos_ += 2;
    }

    void word(Token& t) {
        t.kind = TokenKind::Word;
        std::size_t start = pos_;
        while (pos_ < src_.size()) {
            char c = src_[pos_];
            // '/' belongs to a word only as a prefix length: 10.0.0.0/8, client.ip/64.
            if (c == '/' && pos_ + 1 < src_.size() && is_digit(src_[pos_ + 1])) {
                ++pos_;
                continue;
            }
            if (!is_word_char(c)) break;
            ++pos_;
        }
        t.text = std::string(src_.substr(start, pos_ - start));
    }

    void string(Token& t) {
        t.kind = TokenKind::String;
        ++pos_;  // opening quote
        while (pos_ < src_.size() && src_[pos_] != '"' && src_[pos_] != '\n') {
            std::uint32_t col = column();
            char c = src_[pos_];
            if (c == '\\' && pos_ + 1 < src_.size() &&
                (src_[pos_ + 1] == '"' || src_[pos_ + 1] == '\\')) {
                c = src_[pos_ + 1];
                ++pos_;
            }
            t.text += c;
            t.char_columns.push_back(col);
            ++pos_;
        }
        if (pos_ < src_.size() && src_[pos_] == '"')
            ++pos_;
        else
            t.unterminated = true;
    }

    void regex(Token& t) {
        t.kind = TokenKind::Regex;
        ++pos_;  // opening slash
        while (pos_ < src_.size() && src_[pos_] != '/' && src_[pos_] != '\n') {
            if (src_[pos_] == '\\' && pos_ + 1 < src_.size() && src_[pos_ + 1] == '/') {
                t.text += '/';
                pos_ += 2;
                continue;
            }
            if (src_[pos_] == '\\' && pos_ + 1 < src_.size() && src_[pos_ + 1] != '\n') {
                t.text += src_.substr(pos_, 2);
                pos_ += 2;
                continue;
            }
            t.text += src_[pos_++];
        }
        if (pos_ < src_.size() && src_[pos_] == '/') {
            ++pos_;
            while (pos_ < src_.size() && ((src_[pos_] >= 'a' && src_[pos_] <= 'z') ||
                                          (src_[pos_] >= 'A' && src_[pos_] <= 'Z')))
                t.flags += src_[pos_++];
        } else {
            t.unterminated = true;
        }
    }

    std::string_view src_;
    std::size_t pos_ = 0;
    std::size_t line_start_ = 0;
    std::uint32_t line_ = 1;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
    return Lexer(source).run();
}

}  // namespace pm
