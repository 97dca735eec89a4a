// SPDX-License-Identifier: BSD-2-Clause
#include "policy/lexer.h"

namespace pm {

namespace {

bool is_word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == ':' || c == '@' || c == '*' || c == '+';
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

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
        auto two = [&](char next) { return pos_ + 1 < src_.size() && src_[pos_ + 1] == next; };
        switch (c) {
            case '[': return single(t, TokenKind::LBracket);
            case ']': return single(t, TokenKind::RBracket);
            case '(': return single(t, TokenKind::LParen);
            case ')': return single(t, TokenKind::RParen);
            case ',': return single(t, TokenKind::Comma);
            case '=': return two('=') ? pair(t, TokenKind::Eq) : single(t, TokenKind::Assign);
            case '!': return two('=') ? pair(t, TokenKind::NotEq) : single(t, TokenKind::Invalid);
            case '<': return two('=') ? pair(t, TokenKind::LessEq) : single(t, TokenKind::Less);
            case '>':
                return two('=') ? pair(t, TokenKind::GreaterEq) : single(t, TokenKind::Greater);
            // Not operators of the language; kept whole so the parser can say 'and'/'or'.
            case '&': return two('&') ? pair(t, TokenKind::Invalid) : single(t, TokenKind::Invalid);
            case '|': return two('|') ? pair(t, TokenKind::Invalid) : single(t, TokenKind::Invalid);
            case '"': return string(t);
            case '/': return regex(t);
            default: break;
        }
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

std::string_view token_kind_name(TokenKind kind) {
    switch (kind) {
        case TokenKind::Word: return "word";
        case TokenKind::String: return "string";
        case TokenKind::Regex: return "regex";
        case TokenKind::LBracket: return "'['";
        case TokenKind::RBracket: return "']'";
        case TokenKind::LParen: return "'('";
        case TokenKind::RParen: return "')'";
        case TokenKind::Comma: return "','";
        case TokenKind::Assign: return "'='";
        case TokenKind::Eq: return "'=='";
        case TokenKind::NotEq: return "'!='";
        case TokenKind::Less: return "'<'";
        case TokenKind::LessEq: return "'<='";
        case TokenKind::Greater: return "'>'";
        case TokenKind::GreaterEq: return "'>='";
        case TokenKind::End: return "end of file";
        case TokenKind::Invalid: return "invalid character";
    }
    return "token";
}

std::vector<Token> tokenize(std::string_view source) {
    return Lexer(source).run();
}

}  // namespace pm
