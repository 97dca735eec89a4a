// SPDX-License-Identifier: BSD-2-Clause
// The rules-file parser and compiler: tokens -> checked statements -> Policy.
// Every error of a file is reported in one run: a syntax error skips to the next
// statement keyword, and semantic errors never stop parsing at all.
#include <re2/re2.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <set>
#include <utility>

#include "policy/lexer.h"
#include "policy/policy.h"
#include "policy/text_file.h"
#include "policy/units.h"

namespace pm {

namespace {

const std::set<std::string, std::less<>> kKeywords = {
    "list",   "rule",   "limit",    "at",      "when",       "key",        "max",     "per",
    "file",   "in",     "matches",  "and",     "or",         "not",        "observe", "pass",
    "accept", "reject", "tempfail", "discard", "quarantine", "add-header", "greylist"};

constexpr int kMaxNesting = 64;
// RE2's memory budget for one regex of a rule: a bigger one is refused as invalid.
constexpr std::int64_t kMaxRegexMemory = 8 << 20;
// Bad lines of one list file reported one by one; the rest are counted in one warning.
constexpr std::size_t kMaxListWarnings = 20;
// No item is this long; a longer line is a bad line, and is not kept whole in memory.
constexpr std::size_t kMaxListLineBytes = 64 << 10;

bool is_identifier(std::string_view s) {
    if (s.empty()) return false;
    char c0 = s[0];
    if (!((c0 >= 'A' && c0 <= 'Z') || (c0 >= 'a' && c0 <= 'z') || c0 == '_')) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

bool is_rule_id(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}

bool is_reply_code_word(std::string_view s) {
    return s.size() == 3 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string quote(std::string_view s) {
    return "'" + std::string(s) + "'";
}

// Names people reach for from other tools (Postfix, milter macros, Sieve), mapped to the
// field, stage or action this language calls it. closest_match catches the typos.
const std::map<std::string, std::string, std::less<>> kFieldAliases = {
    {"from", "sender"},
    {"mail.from", "sender"},
    {"envelope.from", "sender"},
    {"to", "recipient"},
    {"rcpt", "recipient"},
    {"rcpt.to", "recipient"},
    {"envelope.to", "recipient"},
    {"ip", "client.ip"},
    {"client", "client.ip"},
    {"client.address", "client.ip"},
    {"hostname", "client.name"},
    {"ehlo", "helo"},
    {"size", "message.size"},
    {"subject", "header[\"Subject\"]"},
    {"sasl.username", "auth.user"},
    {"sasl_username", "auth.user"},
    {"user", "auth.user"},
};
const std::map<std::string, std::string, std::less<>> kStageAliases = {
    {"ehlo", "helo"},      {"from", "mail"},       {"mail.from", "mail"}, {"envfrom", "mail"},
    {"to", "rcpt"},        {"rcpt.to", "rcpt"},    {"envrcpt", "rcpt"},   {"recipient", "rcpt"},
    {"header", "message"}, {"headers", "message"}, {"body", "message"},   {"eoh", "message"},
    {"eom", "message"},    {"end", "message"},
};
const std::map<std::string, std::string, std::less<>> kActionAliases = {
    {"deny", "reject"},
    {"block", "reject"},
    {"refuse", "reject"},
    {"defer", "tempfail"},
    {"defer_if_permit", "tempfail"},
    {"drop", "discard"},
    {"hold", "quarantine"},
    {"ok", "accept"},
    {"allow", "accept"},
    {"permit", "accept"},
    {"dunno", "pass"},
    {"continue", "pass"},
    {"prepend", "add-header"},
};
constexpr std::string_view kActionNames[] = {"pass",    "accept",     "reject",     "tempfail",
                                             "discard", "quarantine", "add-header", "greylist"};

// "; did you mean 'X'?" for `word` among `names`, or from `aliases`; else empty.
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& names,
                         const std::map<std::string, std::string, std::less<>>& aliases) {
    std::string lower(word);
    for (char& c : lower)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    std::string near;
    if (auto it = aliases.find(lower); it != aliases.end())
        near = it->second;
    else
        near = closest_match(word, names);
    return near.empty() ? std::string() : "; did you mean " + quote(near) + "?";
}

std::vector<std::string_view> field_names() {
    std::vector<std::string_view> out;
    for (const auto& f : detail::kFields) out.push_back(f.name);
    return out;
}

struct SyntaxError {};

// A list as written: items inline, or a file to read when it is compiled.
struct ListSource {
    std::string name;  // empty for an anonymous `in [ ... ]` / `in file "..."`
    SourceLocation where;
    std::vector<std::pair<std::string, SourceLocation>> items;
    std::optional<std::string> file;  // resolved path
    SourceLocation file_where;        // the path literal
    bool used = false;
    std::map<ValueType, std::shared_ptr<const ListMatcher>> compiled;
    std::shared_ptr<const DnsList> dns;  // `dnsbl "ZONE"` or `rhsbl "ZONE"`: no items
};

// A list reference inside a condition, resolved once every list is known.
struct PendingListRef {
    std::string name;           // named list, or
    std::size_t anonymous = 0;  // index into anonymous lists
    SourceLocation where;
};

}  // namespace

class PolicyBuilder {
  public:
    PolicyBuilder(std::string display_name, std::string base_dir, Diagnostics& diags)
        : file_(std::make_shared<const std::string>(std::move(display_name))),
          base_dir_(std::move(base_dir)),
          diags_(diags) {
        policy_ = std::shared_ptr<Policy>(new Policy());
        policy_->source_files_.push_back(*file_);
    }

    std::shared_ptr<const Policy> build(std::string_view text) {
        tokens_ = tokenize(text);
        while (peek().kind != TokenKind::End) {
            try {
                statement();
            } catch (const SyntaxError&) {
                recover();
            }
        }
        resolve_lists();
        warn_unused_lists();
        index_stages();
        if (!diags_.has_errors() && policy_->statements_.empty())
            diags_.file_warning(*file_, "no rules: every message is accepted");
        if (diags_.has_errors()) return nullptr;
        return policy_;
    }

  private:
    // ---- tokens -------------------------------------------------------------------

    const Token& peek(std::size_t ahead = 0) const {
        return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
    }
    const Token& next() {
        const Token& t = tokens_[pos_];
        if (pos_ + 1 < tokens_.size()) ++pos_;
        return t;
    }
    SourceLocation loc(const Token& t) const { return {file_, t.line, t.column}; }
    SourceLocation loc_in_string(const Token& t, std::size_t index) const {
        std::uint32_t col = index < t.char_columns.size() ? t.char_columns[index] : t.column;
        return {file_, t.line, col};
    }
    bool is_word(const Token& t, std::string_view w) const {
        return t.kind == TokenKind::Word && t.text == w;
    }
    bool at_statement_start(const Token& t) const {
        return is_word(t, "list") || is_word(t, "rule") || is_word(t, "limit");
    }

    std::string describe(const Token& t) const {
        switch (t.kind) {
            case TokenKind::End: return "end of file";
            case TokenKind::String: return "string \"" + t.text + "\"";
            case TokenKind::Regex: return "regex /" + t.text + "/";
            case TokenKind::Word:
            case TokenKind::LBracket:
            case TokenKind::RBracket:
            case TokenKind::LParen:
            case TokenKind::RParen:
            case TokenKind::Comma:
            case TokenKind::Assign:
            case TokenKind::Eq:
            case TokenKind::NotEq:
            case TokenKind::Less:
            case TokenKind::LessEq:
            case TokenKind::Greater:
            case TokenKind::GreaterEq:
            case TokenKind::Invalid: break;
        }
        return quote(t.text);
    }

    [[noreturn]] void fail(const Token& t, const std::string& message) {
        diags_.error(loc(t), message);
        throw SyntaxError{};
    }

    [[noreturn]] void expected(const std::string& what) {
        const Token& t = peek();
        if (t.kind == TokenKind::Invalid && !is_plain_ascii_char(t)) fail(t, invalid_message(t));
        std::string message = "expected " + what + ", found " + describe(t);
        // WHEN, Reject: the keywords are lower case, and saying so beats "expected ...".
        if (t.kind == TokenKind::Word) {
            std::string lower = ascii_lower(t.text);
            if (lower != t.text && kKeywords.count(lower))
                message += "; keywords are lower case: " + quote(lower);
        }
        fail(t, message);
    }

    static bool is_plain_ascii_char(const Token& t) {
        return t.text.size() == 1 && t.text[0] > 0x20 && t.text[0] < 0x7F && t.text[0] != '!' &&
               t.text[0] != '&' && t.text[0] != '|';
    }

    // A character the language does not use, named so an invisible one can be found.
    static std::string invalid_message(const Token& t) {
        if (t.text == "&&") return "'&&' is written 'and'";
        if (t.text == "||") return "'||' is written 'or'";
        if (t.text == "!") return "'!' alone is not an operator: write 'not', or '!=' to compare";
        auto [cp, n] = decode_utf8(t.text);
        if (cp >= 0x21 && cp < 0x7F) return "unexpected character " + quote(t.text);
        if (cp < 0) return "unexpected byte " + visible_text(t.text) + " (not UTF-8)";
        std::string named = code_point_name(cp);
        if (visible_text(t.text) == t.text) named = quote(t.text) + " (" + named + ")";
        if (cp == 0x201C || cp == 0x201D || cp == 0x2018 || cp == 0x2019 || cp == 0x201E)
            named += "; strings are written in straight double quotes: \"...\"";
        return "unexpected character " + named;
    }

    const Token& expect_word(std::string_view w) {
        if (!is_word(peek(), w)) expected(quote(w));
        return next();
    }

    const Token& expect(TokenKind kind, const std::string& what) {
        // A statement keyword is never a name, stage, field or number: stopping there
        // leaves the next statement to be parsed (and checked) on its own.
        if (peek().kind != kind || at_statement_start(peek())) expected(what);
        return next();
    }

    const Token& expect_string(const std::string& what) {
        const Token& t = expect(TokenKind::String, what);
        if (t.unterminated) fail(t, "unterminated string");
        return t;
    }

    void recover() {
        // Skip at least the offending token, then to the next statement keyword.
        if (peek().kind != TokenKind::End && !at_statement_start(peek())) next();
        while (peek().kind != TokenKind::End && !at_statement_start(peek())) next();
    }

    // ---- statements ----------------------------------------------------------------

    void statement() {
        const Token& t = peek();
        if (is_word(t, "list")) return list_statement();
        if (is_word(t, "rule")) return rule_statement(false);
        if (is_word(t, "limit")) return rule_statement(true);
        if (t.kind == TokenKind::Invalid) fail(t, invalid_message(t));
        expected("'list', 'rule' or 'limit'");
    }

    void list_statement() {
        next();  // list
        const Token& name = expect(TokenKind::Word, "a list name");
        if (kKeywords.count(name.text))
            fail(name, "list name " + quote(name.text) + " is a reserved keyword");
        if (!is_identifier(name.text))
            fail(name, "list name " + quote(name.text) +
                           " is not an identifier (letters, digits, '_' and '-')");
        expect(TokenKind::Assign, "'='");
        bool dns = is_word(peek(), "dnsbl") || is_word(peek(), "rhsbl");
        ListSource src = dns ? dns_list_body(name.text) : list_body();
        src.name = name.text;
        src.where = loc(name);
        if (named_lists_.count(name.text)) {
            const ListSource& first = named_lists_.at(name.text);
            diags_.error(loc(name), "list " + quote(name.text) + " is already defined at line " +
                                        std::to_string(first.where.line));
            return;
        }
        list_order_.push_back(name.text);
        named_lists_.emplace(name.text, std::move(src));
    }

    // `[ item, ... ]` or `file "PATH"`.
    ListSource list_body() {
        ListSource src;
        if (is_word(peek(), "file")) {
            next();
            const Token& path = expect_string("a quoted file path after 'file'");
            src.file = resolve_path(path.text);
            src.file_where = {file_, path.line, path.column};
            return src;
        }
        src.where = loc(expect(TokenKind::LBracket, "'[' or 'file'"));
        while (peek().kind != TokenKind::RBracket) {
            const Token& item = peek();
            if (item.kind == TokenKind::String) {
                if (item.unterminated) fail(item, "unterminated string");
            } else if (item.kind != TokenKind::Word || at_statement_start(item)) {
                expected("a list item or ']'");
            }
            next();
            src.items.emplace_back(item.text, loc(item));
            if (peek().kind == TokenKind::Comma)
                next();
            else if (peek().kind != TokenKind::RBracket)
                expected("',' or ']'");
        }
        next();  // ]
        return src;
    }

    // `dnsbl "ZONE" [returns [ ADDR, ADDR-ADDR, ... ]] [on-error tempfail|pass]`.
    ListSource dns_list_body(const std::string& name) {
        const Token& kind = next();
        auto list = std::make_shared<DnsList>();
        list->name = name;
        list->kind = kind.text == "dnsbl" ? DnsListKind::Dnsbl : DnsListKind::Rhsbl;
        const Token& zone = expect_string("a quoted DNS zone after " + quote(kind.text));
        list->zone = normalize_host(zone.text);
        std::string why = check_dns_zone(list->zone);
        if (!why.empty()) diags_.error(loc(zone), why + ": \"" + zone.text + "\"");
        if (is_word(peek(), "returns")) {
            next();
            dns_returns(*list);
        }
        if (is_word(peek(), "on-error")) {
            next();
            const Token& mode = expect(TokenKind::Word, "'tempfail' or 'pass' after 'on-error'");
            if (mode.text != "tempfail" && mode.text != "pass")
                fail(mode,
                     "expected 'tempfail' or 'pass' after 'on-error', found " + describe(mode));
            list->on_error_tempfail = mode.text == "tempfail";
        }
        ListSource src;
        src.dns = std::move(list);
        return src;
    }

    // `[ 127.0.0.2, 127.0.0.10-127.0.0.11 ]`: the A answers that list a value.
    void dns_returns(DnsList& list) {
        expect(TokenKind::LBracket, "'[' after 'returns'");
        while (peek().kind != TokenKind::RBracket) {
            const Token& item = expect(TokenKind::Word, "an IPv4 address or range, or ']'");
            if (auto range = dns_return_range(item.text))
                list.returns.push_back(*range);
            else
                diags_.error(loc(item),
                             "expected an IPv4 address or a range such as "
                             "127.0.0.10-127.0.0.11, found " +
                                 quote(item.text));
            if (peek().kind == TokenKind::Comma)
                next();
            else if (peek().kind != TokenKind::RBracket)
                expected("',' or ']'");
        }
        next();  // ]
    }

    static std::optional<DnsReturnRange> dns_return_range(std::string_view text) {
        std::size_t dash = text.find('-');
        auto first = parse_ip(text.substr(0, dash));
        auto last = dash == std::string_view::npos ? first : parse_ip(text.substr(dash + 1));
        if (!first || !last || first->v6 || last->v6 || first->v4_bits > last->v4_bits)
            return std::nullopt;
        return DnsReturnRange{first->v4_bits, last->v4_bits};
    }

    std::string resolve_path(const std::string& path) const {
        std::filesystem::path p(path);
        if (p.is_absolute()) return path;
        return (std::filesystem::path(base_dir_) / p).lexically_normal().string();
    }

    void rule_statement(bool is_limit) {
        const Token& keyword = next();
        const char* what = is_limit ? "limit" : "rule";
        const Token& id = expect(TokenKind::String, std::string("a quoted ") + what + " ID");
        if (id.unterminated) fail(id, "unterminated string");
        Statement st;
        st.id = id.text;
        st.where = loc(keyword);
        if (!is_rule_id(id.text))
            diags_.error(loc(id), std::string(what) + " ID \"" + id.text +
                                      "\" must be made of letters, digits, '.', '_' and '-'");
        else if (auto it = ids_.find(id.text); it != ids_.end())
            diags_.error(loc(id), "duplicate ID \"" + id.text + "\": already used at line " +
                                      std::to_string(it->second));
        else
            ids_.emplace(id.text, id.line);

        expect_word("at");
        const Token& stage_tok = expect(TokenKind::Word, "a stage");
        auto stage = stage_from_name(stage_tok.text);
        if (!stage) unknown_stage(stage_tok);
        st.stage = *stage;
        if (is_limit) no_limit_at_unknown(stage_tok, *stage);
        current_stage_ = *stage;

        if (is_limit) {
            st.limit.emplace();
            expect_word("key");
            for (;;) {
                st.limit->key.push_back(key_field(*stage));
                if (peek().kind != TokenKind::Comma) break;
                next();
            }
        }
        if (is_word(peek(), "when")) {
            next();
            st.when = condition(0);
        }
        if (is_limit) limit_amount(st);
        st.action = action(st.stage, is_limit);
        if (is_word(peek(), "observe")) {
            next();
            st.observe = true;
        }
        if (peek().kind != TokenKind::End && !at_statement_start(peek()))
            expected("'observe' or the next 'list', 'rule' or 'limit'");

        note_unreachable(st);
        if (st.is_limit()) policy_->has_limits_ = true;
        policy_->used_actions_[static_cast<std::size_t>(st.action.kind)] = true;
        policy_->statements_.push_back(std::move(st));
    }

    [[noreturn]] void unknown_stage(const Token& t) {
        std::vector<std::string_view> names;
        std::string all;
        for (Stage s : kAllStages) {
            names.push_back(stage_name(s));
            all += (all.empty() ? "" : ", ") + std::string(stage_name(s));
        }
        std::string hint = did_you_mean(t.text, names, kStageAliases);
        fail(t, "unknown stage " + quote(t.text) + (hint.empty() ? "; stages are " + all : hint));
    }

    // An unknown command is not part of a transaction, whose end commits a limit's counts.
    void no_limit_at_unknown(const Token& stage_tok, Stage stage) {
        if (stage == Stage::Unknown)
            diags_.error(loc(stage_tok), "a limit cannot count at the unknown stage; use a rule");
    }

    LimitKeyField key_field(Stage stage) {
        const Token& t = expect(TokenKind::Word, "a key field");
        std::string name = t.text;
        std::optional<unsigned> prefix;
        if (auto slash = name.find('/'); slash != std::string::npos) {
            unsigned len = 0;
            std::string_view digits = std::string_view(name).substr(slash + 1);
            auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
            name.resize(slash);
            if (name != "client.ip")
                fail(t, "only client.ip can be grouped by prefix, not " + quote(name));
            if (ec != std::errc{} || p != digits.data() + digits.size() || len == 0 ||
                len > kIpv6Bits)
                fail(t, "prefix length in " + quote(t.text) + " must be 1 to 128");
            prefix = len;
        }
        LimitKeyField key;
        key.field = field_ref(t, name, stage);
        key.prefix_length = prefix;
        if (key.field.id == FieldId::Header) header_index(key.field);
        if (key.field.id == FieldId::Body)
            diags_.error(loc(t),
                         "the body is no key; it is only tested with 'matches' or "
                         "'contains'");
        else if (key.field.info().type == ValueType::Bool)
            diags_.error(loc(t), "key field " + quote(name) + " is a boolean; key on a value");
        else if (key.field.info().per_recipient && stage != Stage::Rcpt && stage != Stage::Vrfy &&
                 field_available(key.field.info(), stage))
            diags_.error(loc(t), "key field " + quote(name) + " has one value per recipient; " +
                                     "a limit keyed on it belongs at the rcpt stage");
        return key;
    }

    void limit_amount(Statement& st) {
        expect_word("max");
        const Token& n = expect(TokenKind::Word, "a number after 'max'");
        Limit& lim = *st.limit;
        bool has_size_unit = limit_max(n, lim);
        const Token& unit_tok = peek();
        if (std::optional<LimitUnit> named = limit_unit_word(unit_tok)) {
            next();
            if (has_size_unit && *named != LimitUnit::Bytes)
                diags_.error(loc(unit_tok), "a size such as " + quote(n.text) +
                                                " counts bytes, not " + unit_tok.text);
            lim.unit = *named;
        }
        check_limit_unit(st, unit_tok, n);
        expect_word("per");
        const Token& d = expect(TokenKind::Word, "a duration such as 1h after 'per'");
        if (!parse_duration(d.text, lim.window_seconds)) {
            std::string why = duration_problem(d.text);
            fail(d, "expected a duration such as 30s, 10m, 1h or 1d, found " + quote(d.text) +
                        (why.empty() ? "" : ": " + why));
        }
    }

    // The number after 'max'. True if it has a size unit (20M): the limit counts bytes.
    bool limit_max(const Token& n, Limit& lim) {
        char last = n.text.empty() ? '\0' : n.text.back();
        bool has_size_unit = last == 'K' || last == 'M' || last == 'G' || last == 'B';
        if (!parse_size(n.text, lim.max)) {
            std::string why = size_problem(n.text);
            fail(n, "expected a number after 'max', found " + quote(n.text) +
                        (why.empty() ? "" : ": " + why));
        }
        lim.unit = has_size_unit ? LimitUnit::Bytes : LimitUnit::Messages;
        return has_size_unit;
    }

    static std::optional<LimitUnit> limit_unit_word(const Token& t) {
        if (t.kind != TokenKind::Word) return std::nullopt;
        if (t.text == "messages") return LimitUnit::Messages;
        if (t.text == "recipients") return LimitUnit::Recipients;
        if (t.text == "bytes") return LimitUnit::Bytes;
        return std::nullopt;
    }

    // What the limit counts must be known at its stage; the milter must ask the MTA for
    // it, as for a field a condition reads.
    void check_limit_unit(const Statement& st, const Token& unit_tok, const Token& n) {
        const Limit& lim = *st.limit;
        FieldId counted = lim.unit == LimitUnit::Recipients ? FieldId::RcptCount
                          : st.stage == Stage::Message      ? FieldId::MessageSize
                                                            : FieldId::MailSize;
        if (lim.unit != LimitUnit::Messages)
            policy_->used_fields_[static_cast<std::size_t>(counted)] = true;
        if (lim.unit == LimitUnit::Recipients && st.stage != Stage::Rcpt &&
            st.stage != Stage::Data && st.stage != Stage::Message)
            diags_.error(loc(unit_tok.kind == TokenKind::Word ? unit_tok : n),
                         "a limit on recipients counts at rcpt, data or message, not at " +
                             std::string(stage_name(st.stage)));
        if (lim.unit == LimitUnit::Bytes && st.stage != Stage::Mail && st.stage != Stage::Message)
            diags_.error(loc(n),
                         "a limit on bytes counts at mail (mail.size) or message "
                         "(message.size), not at " +
                             std::string(stage_name(st.stage)));
    }

    // ---- conditions ------------------------------------------------------------------

    Condition condition(int depth) {
        if (depth > kMaxNesting) fail(peek(), "condition nested too deeply");
        return chain(depth, "or", Condition::Kind::Or, &PolicyBuilder::and_condition);
    }

    Condition and_condition(int depth) {
        return chain(depth, "and", Condition::Kind::And, &PolicyBuilder::not_condition);
    }

    // One operand, or a flat node of `kind` over operands joined by `word` ("a or b or c"
    // is one Or node with three children, not a nested pair).
    Condition chain(int depth, std::string_view word, Condition::Kind kind,
                    Condition (PolicyBuilder::*operand)(int)) {
        Condition left = (this->*operand)(depth);
        if (!is_word(peek(), word)) return left;
        Condition node;
        node.kind = kind;
        node.children.push_back(std::move(left));
        while (is_word(peek(), word)) {
            next();
            node.children.push_back((this->*operand)(depth));
        }
        return node;
    }

    Condition not_condition(int depth) {
        if (is_word(peek(), "not")) {
            next();
            if (depth > kMaxNesting) fail(peek(), "condition nested too deeply");
            Condition node;
            node.kind = Condition::Kind::Not;
            node.children.push_back(not_condition(depth + 1));
            return node;
        }
        return primary(depth);
    }

    Condition primary(int depth) {
        if (peek().kind == TokenKind::LParen) {
            next();
            Condition inner = condition(depth + 1);
            expect(TokenKind::RParen, "')'");
            return inner;
        }
        const Token& ftok = peek();
        if (ftok.kind != TokenKind::Word || kKeywords.count(ftok.text))
            expected("a field, 'not' or '('");
        next();
        Condition c;
        c.field = field_ref(ftok, ftok.text, current_stage_);
        if (c.field.id == FieldId::Header) header_index(c.field);
        const FieldInfo& info = c.field.info();
        const Token& op = peek();
        if (c.field.id == FieldId::Body) return body_condition(std::move(c));
        if (is_word(op, "contains"))
            fail(op, "'contains' tests the body only; for " + quote(c.field.display()) +
                         " write 'matches' with a regex");
        if (info.type == ValueType::Bool) {
            if (op.kind == TokenKind::Eq || op.kind == TokenKind::NotEq || is_word(op, "in") ||
                is_word(op, "matches"))
                fail(op, quote(info.name) + " is a boolean: write 'when " + std::string(info.name) +
                             "' or 'when not " + std::string(info.name) + "'");
            c.kind = Condition::Kind::Truth;
            return c;
        }
        if (is_word(op, "in")) {
            next();
            c.kind = Condition::Kind::InList;
            list_reference(c);
            return c;
        }
        if (is_word(op, "matches")) {
            next();
            c.kind = Condition::Kind::Matches;
            compile_regex(c, false);
            return c;
        }
        std::optional<CompareOp> compare = compare_op(op.kind);
        if (!compare)
            expected("'==', '!=', '<', '<=', '>', '>=', 'in' or 'matches' after " +
                     quote(c.field.display()));
        c.op = *compare;
        next();
        c.kind = Condition::Kind::Compare;
        literal(c, op);
        return c;
    }

    // `body matches /re/` or `body contains "text"`: a pattern the body is scanned for.
    Condition body_condition(Condition c) {
        const Token& op = peek();
        BodyPattern pattern;
        if (is_word(op, "matches")) {
            next();
            pattern.kind = BodyPattern::Kind::Matches;
            compile_regex(c, true);
            pattern.regex = std::move(c.regex);
        } else if (is_word(op, "contains")) {
            next();
            const Token& v = expect_string("a quoted text after 'contains'");
            pattern.text = ascii_lower(v.text);
            if (v.text.empty()) diags_.error(loc(v), "empty text: it is in every body");
            if (v.text.size() > kMaxBodyTextBytes)
                diags_.error(loc(v), "text longer than " + std::to_string(kMaxBodyTextBytes) +
                                         " bytes; write a regex with 'matches'");
        } else {
            expected("'matches' or 'contains' after 'body'");
        }
        c.kind = Condition::Kind::Body;
        c.body_index = static_cast<std::uint32_t>(policy_->body_patterns_.size());
        policy_->body_patterns_.push_back(std::move(pattern));
        return c;
    }

    // A table, not a switch: the comparison tokens are six of the lexer's kinds, and a
    // switch over all of them would list the other kinds for nothing.
    static std::optional<CompareOp> compare_op(TokenKind kind) {
        static constexpr std::pair<TokenKind, CompareOp> kOperators[] = {
            {TokenKind::Eq, CompareOp::Eq},           {TokenKind::NotEq, CompareOp::NotEq},
            {TokenKind::Less, CompareOp::Less},       {TokenKind::LessEq, CompareOp::LessEq},
            {TokenKind::Greater, CompareOp::Greater}, {TokenKind::GreaterEq, CompareOp::GreaterEq},
        };
        for (const auto& [token, op] : kOperators)
            if (token == kind) return op;
        return std::nullopt;
    }

    FieldRef field_ref(const Token& t, const std::string& name, Stage stage) {
        const FieldInfo* info = find_field(name);
        if (!info) fail(t, "unknown field " + quote(name) + field_hint(name));
        FieldRef ref;
        ref.id = info->id;
        if (!field_available(*info, stage)) diags_.error(loc(t), unavailable(*info, stage));
        policy_->used_fields_[static_cast<std::size_t>(info->id)] = true;
        return ref;
    }

    static std::string unavailable(const FieldInfo& info, Stage stage) {
        std::string out = "field " + quote(info.name) + " is not available at the " +
                          std::string(stage_name(stage)) + " stage";
        if (info.since == Stage::Unknown) return out + " (only at unknown)";
        if (info.since == Stage::Etrn) return out + " (it is known only at etrn)";
        if (stage == Stage::Unknown) return out + " (only command and the connect and helo fields)";
        return out + " (it is known from " + std::string(stage_name(info.since)) + " on" +
               (info.per_recipient && stage == Stage::Etrn ? " and at vrfy" : "") + ")";
    }

    static std::string field_hint(std::string_view name) {
        return did_you_mean(name, field_names(), kFieldAliases);
    }

    // The ["Name"] after `header`, in a condition or a limit key.
    void header_index(FieldRef& field) {
        expect(TokenKind::LBracket, "'[' after header");
        const Token& name = expect_string("a quoted header name");
        if (name.text.empty()) diags_.error(loc(name), "empty header name");
        field.header = ascii_lower(name.text);
        note_header(field.header);
        expect(TokenKind::RBracket, "']'");
    }

    void note_header(const std::string& lower_name) {
        auto& used = policy_->used_headers_;
        if (std::find(used.begin(), used.end(), lower_name) == used.end())
            used.push_back(lower_name);
    }

    void literal(Condition& c, const Token& op) {
        const FieldInfo& info = c.field.info();
        bool ordering = c.op != CompareOp::Eq && c.op != CompareOp::NotEq;
        if (ordering && info.type != ValueType::Number)
            fail(op, quote(op.text) + " compares numbers, but " + quote(c.field.display()) +
                         " is " + std::string(value_type_name(info.type)));
        switch (info.type) {
            case ValueType::Number: return number_literal(c, op);
            case ValueType::Ip: return ip_literal(c, op);
            case ValueType::Host:
            case ValueType::Address:
            case ValueType::Text:
            case ValueType::Bool: return text_literal(c, op);
        }
    }

    void number_literal(Condition& c, const Token& op) {
        const Token& v = peek();
        if (v.kind != TokenKind::Word || !parse_size(v.text, c.number)) {
            std::string why = v.kind == TokenKind::Word ? size_problem(v.text) : "";
            if (!why.empty())
                fail(v, "expected a number after " + quote(op.text) + ", found " + quote(v.text) +
                            ": " + why);
            expected("a number after " + quote(op.text));
        }
        next();
    }

    void ip_literal(Condition& c, const Token& op) {
        const Token& v = peek();
        std::optional<IpPrefix> p;
        if (v.kind == TokenKind::Word) p = parse_ip_prefix(v.text);
        if (!p) {
            std::string why = v.kind == TokenKind::Word ? ip_prefix_problem(v.text) : "";
            if (!why.empty())
                fail(v, "expected an IP address or prefix after " + quote(op.text) + ", found " +
                            quote(v.text) + ": " + why);
            expected("an IP address or prefix after " + quote(op.text));
        }
        // An error, not a silent widening: a typo in the address or the length is
        // likelier than a wish for the wider network (Postfix refuses it too).
        if (p->host_bits_set)
            diags_.error(loc(v), "prefix " + quote(v.text) + " has host bits set; did you mean '" +
                                     p->address.to_string() + "/" + std::to_string(p->length) +
                                     "'?");
        c.prefix = p;
        next();
    }

    void text_literal(Condition& c, const Token& op) {
        const Token& v = peek();
        if (v.kind != TokenKind::String) {
            if (v.kind == TokenKind::Word && !kKeywords.count(v.text))
                fail(v, "expected a quoted string after " + quote(op.text) + ": write \"" + v.text +
                            "\"");
            expected("a quoted string after " + quote(op.text));
        }
        if (v.unterminated) fail(v, "unterminated string");
        ValueType type = c.field.info().type;
        c.text = type == ValueType::Host ? normalize_host(v.text) : ascii_lower(v.text);
        if (type == ValueType::Address && c.text == "<>") c.text.clear();
        next();
    }

    void list_reference(Condition& c) {
        PendingListRef ref;
        const Token& t = peek();
        ref.where = loc(t);
        if (t.kind == TokenKind::Word && !is_word(t, "file")) {
            if (kKeywords.count(t.text)) expected("a list name, '[' or 'file'");
            next();
            ref.name = t.text;
            referenced_lists_.insert(t.text);
        } else if (t.kind == TokenKind::LBracket || is_word(t, "file")) {
            ListSource src = list_body();
            src.where = ref.where;
            anonymous_lists_.push_back(std::move(src));
            ref.anonymous = anonymous_lists_.size() - 1;
        } else {
            expected("a list name, '[' or 'file'");
        }
        // The condition objects move while the tree is built, so the reference is found
        // again by its index, not by address.
        c.list_index = static_cast<std::uint32_t>(pending_.size());
        pending_.push_back(std::move(ref));
    }

    // A body regex never matches a newline, has ^ and $ match at every line and matches
    // bytes, not UTF-8 characters (body_scan.h); it is checked as written first, so that
    // an error quotes the pattern.
    void compile_regex(Condition& c, bool body) {
        const Token& t = peek();
        if (t.kind != TokenKind::Regex) expected("a regex /.../ after 'matches'");
        next();
        if (t.unterminated) fail(t, "unterminated regex: missing closing '/'");
        bool icase = false;
        for (char f : t.flags) {
            if (f == 'i')
                icase = true;
            else
                diags_.error(loc(t), "unknown regex flag " + quote(std::string(1, f)) +
                                         " (only 'i' is supported)");
        }
        RE2::Options options;
        options.set_case_sensitive(!icase);
        options.set_log_errors(false);
        options.set_max_mem(kMaxRegexMemory);
        auto re = std::make_shared<RE2>(t.text, options);
        if (!re->ok()) {
            diags_.error(loc(t), "invalid regex /" + t.text + "/: " + re->error());
            return;
        }
        if (body) {
            options.set_never_nl(true);
            options.set_encoding(RE2::Options::EncodingLatin1);
            re = std::make_shared<RE2>("(?m)" + t.text, options);
            if (!re->ok()) {
                diags_.error(loc(t), "invalid regex /" + t.text + "/: " + re->error());
                return;
            }
        }
        c.regex = std::move(re);
    }

    // ---- actions -------------------------------------------------------------------

    Action action(Stage stage, bool is_limit) {
        const Token& t = peek();
        Action a;
        if (t.kind != TokenKind::Word || at_statement_start(t))
            expected(
                "an action (pass, accept, reject, tempfail, discard, quarantine, add-header, "
                "greylist)");
        next();
        if (t.text == "pass") {
            a.kind = ActionKind::Pass;
        } else if (t.text == "accept") {
            a.kind = ActionKind::Accept;
        } else if (t.text == "reject" || t.text == "tempfail") {
            a.kind = t.text == "reject" ? ActionKind::Reject : ActionKind::Tempfail;
            refusal(a, t, stage);
        } else if (t.text == "discard") {
            a.kind = ActionKind::Discard;
            if (stage_index(stage) < stage_index(Stage::Mail) || stage == Stage::Vrfy ||
                stage == Stage::Etrn)
                diags_.error(loc(t), "action 'discard' is not allowed at the " +
                                         std::string(stage_name(stage)) +
                                         " stage (mail, rcpt, data or message only)");
        } else if (t.text == "quarantine") {
            a.kind = ActionKind::Quarantine;
            message_only(t, stage);
            const Token& reason = expect_string("a quoted reason after 'quarantine'");
            a.text = parse_template(reason, stage, "quarantine reason");
        } else if (t.text == "add-header") {
            a.kind = ActionKind::AddHeader;
            message_only(t, stage);
            const Token& name = expect_string("a quoted header name after 'add-header'");
            check_header_name(name);
            a.header_name = name.text;
            const Token& value = expect_string("a quoted header value");
            a.text = parse_template(value, stage, "header value");
        } else if (t.text == "greylist") {
            greylist(a, t, stage, is_limit);
        } else {
            std::vector<std::string_view> names(std::begin(kActionNames), std::end(kActionNames));
            std::string hint = did_you_mean(t.text, names, kActionAliases);
            if (hint.empty() && kKeywords.count(ascii_lower(t.text)))
                hint = "; keywords are lower case: " + quote(ascii_lower(t.text));
            fail(t, "unknown action " + quote(t.text) +
                        (hint.empty() ? "; actions are pass, accept, reject, tempfail, discard, "
                                        "quarantine, add-header, greylist"
                                      : hint));
        }
        (void)is_limit;
        unknown_stage_action(t, stage, a.kind);
        return a;
    }

    // An unknown command has no message to accept or discard.
    void unknown_stage_action(const Token& t, Stage stage, ActionKind kind) {
        if (stage == Stage::Unknown && (kind == ActionKind::Accept || kind == ActionKind::Discard))
            diags_.error(loc(t), "action " + quote(t.text) +
                                     " is not allowed at the unknown stage (pass, reject or "
                                     "tempfail only)");
    }

    // greylist [delay D] [window D] [expire D] [CODE [ENH]] ["TEXT"]
    void greylist(Action& a, const Token& verb, Stage stage, bool is_limit) {
        a.kind = ActionKind::Greylist;
        if (is_limit)
            diags_.error(loc(verb), "action 'greylist' is not a limit's action; write a rule");
        else if (stage != Stage::Rcpt && stage != Stage::Data)
            diags_.error(loc(verb), "action 'greylist' is not allowed at the " +
                                        std::string(stage_name(stage)) +
                                        " stage (rcpt, or data for the whole message)");
        greylist_times(a.greylist);
        a.code = 451;
        a.enhanced = {4, 7, 1};
        const Token& t = peek();
        if (t.kind == TokenKind::Word && is_reply_code_word(t.text)) {
            next();
            a.code = std::stoi(t.text);
            if (!greylist_code_allowed(stage, a.code))
                diags_.error(loc(t), "reply code " + t.text +
                                         " is not allowed for 'greylist' at the " +
                                         std::string(stage_name(stage)) +
                                         " stage; allowed: " + greylist_codes_text(stage));
            if (starts_with_digit(peek())) enhanced_code(a, next(), stage, 4);
        } else if (starts_with_digit(t)) {
            fail(t, "invalid reply code " + quote(t.text) + "; allowed for 'greylist' at " +
                        std::string(stage_name(stage)) + ": " + greylist_codes_text(stage));
        }
        if (peek().kind != TokenKind::String) return;
        const Token& text = next();
        if (text.unterminated) fail(text, "unterminated string");
        greylist_text_ = true;
        a.text = parse_template(text, stage, "reply text");
        greylist_text_ = false;
    }

    // delay, window and expire, each at most once, in any order.
    void greylist_times(GreylistTimes& g) {
        std::set<std::string> seen;
        while (is_word(peek(), "delay") || is_word(peek(), "window") || is_word(peek(), "expire")) {
            const Token& word = next();
            if (!seen.insert(word.text).second)
                diags_.error(loc(word), quote(word.text) + " is given twice");
            const Token& d = expect(TokenKind::Word, "a duration such as 5m");
            std::uint64_t seconds = 0;
            if (!parse_duration(d.text, seconds) || seconds == 0) {
                std::string why = duration_problem(d.text);
                fail(d, "expected a duration such as 30s, 5m, 24h or 35d after " +
                            quote(word.text) + ", found " + quote(d.text) +
                            (why.empty() ? "" : ": " + why));
            }
            (word.text == "delay"    ? g.delay
             : word.text == "window" ? g.window
                                     : g.expire) = seconds;
        }
        if (g.window <= g.delay)
            diags_.error(loc(peek()), "greylist window (" + std::to_string(g.window) +
                                          "s) must be longer than its delay (" +
                                          std::to_string(g.delay) + "s): no retry could pass");
    }

    void message_only(const Token& t, Stage stage) {
        if (stage != Stage::Message)
            diags_.error(loc(t), "action " + quote(t.text) + " is not allowed at the " +
                                     std::string(stage_name(stage)) + " stage (message only)");
    }

    void check_header_name(const Token& name) {
        // RFC 5322 field name: printable ASCII except ':'.
        bool ok = !name.text.empty() && std::all_of(name.text.begin(), name.text.end(), [](char c) {
            return c > 32 && c < 127 && c != ':';
        });
        if (!ok) diags_.error(loc(name), "invalid header name \"" + name.text + "\"");
    }

    void refusal(Action& a, const Token& verb, Stage stage) {
        Refusal kind = a.kind == ActionKind::Reject ? Refusal::Reject : Refusal::Tempfail;
        int want_class = refusal_class(kind);
        a.code = default_code(stage, kind);
        bool code_given = reply_code(a, verb, stage, kind);
        a.enhanced = default_enhanced_code(a.code);
        if (a.code / 100 != want_class) a.enhanced.klass = want_class;
        if (code_given && starts_with_digit(peek())) enhanced_code(a, next(), stage, want_class);
        if (peek().kind == TokenKind::String) {
            const Token& text = next();
            if (text.unterminated) fail(text, "unterminated string");
            warn_code_in_text(a, text, code_given);
            a.text = parse_template(text, stage, "reply text");
        }
    }

    static int refusal_class(Refusal kind) { return kind == Refusal::Reject ? 5 : 4; }

    static bool starts_with_digit(const Token& t) {
        return t.kind == TokenKind::Word && !t.text.empty() && t.text[0] >= '0' && t.text[0] <= '9';
    }

    // The reply code after 'reject' or 'tempfail', if one is written (true then).
    bool reply_code(Action& a, const Token& verb, Stage stage, Refusal kind) {
        const Token& t = peek();
        if (t.kind == TokenKind::Word && is_reply_code_word(t.text)) {
            next();
            a.code = std::stoi(t.text);
            check_reply_code(t, a.code, verb, stage, kind);
            return true;
        }
        if (starts_with_digit(t)) {
            if (parse_enhanced_code(t.text))
                fail(t, "enhanced status code " + quote(t.text) +
                            " needs a reply code before it, e.g. '" + std::to_string(a.code) + " " +
                            t.text + "'");
            fail(t, "invalid reply code " + quote(t.text) + "; allowed at " +
                        std::string(stage_name(stage)) + ": " + allowed_codes_text(stage, kind));
        }
        return false;
    }

    void check_reply_code(const Token& t, int code, const Token& verb, Stage stage, Refusal kind) {
        int want_class = refusal_class(kind);
        int klass = code / 100;
        if (klass != want_class) {
            diags_.error(loc(t), "reply code " + t.text + " is " +
                                     (klass == 4   ? "temporary (4xx)"
                                      : klass == 5 ? "permanent (5xx)"
                                                   : "not a refusal") +
                                     ", but " + quote(verb.text) + " needs a " +
                                     std::to_string(want_class) + "xx code; allowed at " +
                                     std::string(stage_name(stage)) + ": " +
                                     allowed_codes_text(stage, kind));
        } else if (!code_allowed(stage, kind, code)) {
            std::string msg = "reply code " + t.text + " is not allowed for " + quote(verb.text) +
                              " at the " + std::string(stage_name(stage)) +
                              " stage; allowed: " + allowed_codes_text(stage, kind);
            if (stage == Stage::Rcpt && code == 554)
                msg += " (RFC 5321 has no 554 for RCPT: use 550)";
            diags_.error(loc(t), msg);
        }
    }

    // The enhanced status code after a reply code: kept if valid, else reported.
    void enhanced_code(Action& a, const Token& x, Stage stage, int want_class) {
        auto enhanced = parse_enhanced_code(x.text);
        if (!enhanced) {
            diags_.error(loc(x), "invalid enhanced status code " + quote(x.text) +
                                     " (RFC 3463: CLASS.SUBJECT.DETAIL, e.g. " +
                                     std::to_string(want_class) + ".7.1)");
            return;
        }
        if (enhanced->klass != a.code / 100) {
            diags_.error(loc(x), "enhanced status code " + quote(x.text) + " has class " +
                                     std::to_string(enhanced->klass) + " but reply code " +
                                     std::to_string(a.code) + " has class " +
                                     std::to_string(a.code / 100) +
                                     "; the MTA would drop the reply");
            return;
        }
        a.enhanced = *enhanced;
        if (!enhanced_code_registered(*enhanced))
            diags_.warning(
                loc(x), "enhanced status code " + quote(x.text) + " is not in the IANA registry");
        std::string mismatch = enhanced_code_stage_mismatch(*enhanced, stage);
        if (!mismatch.empty())
            diags_.warning(loc(x), "enhanced status code " + quote(x.text) + " " + mismatch);
    }

    // reject "550 5.7.1 no" replies "550 5.7.1 550 5.7.1 no": the code and the enhanced
    // code come before the text, unquoted.
    void warn_code_in_text(const Action& a, const Token& text, bool code_given) {
        std::string_view s = text.text;
        std::size_t i = 0;
        while (i < s.size() && s[i] == ' ') ++i;
        auto word_end = [&](std::size_t from) {
            std::size_t e = s.find(' ', from);
            return e == std::string_view::npos ? s.size() : e;
        };
        std::size_t e1 = word_end(i);
        std::string_view first = s.substr(i, e1 - i);
        std::string_view code, enhanced;
        std::size_t rest = i;
        if (is_reply_code_word(first) && first[0] >= '2' && first[0] <= '5') {
            code = first;
            rest = e1;
            while (rest < s.size() && s[rest] == ' ') ++rest;
            std::size_t e2 = word_end(rest);
            if (parse_enhanced_code(s.substr(rest, e2 - rest))) {
                enhanced = s.substr(rest, e2 - rest);
                rest = e2;
            }
        } else if (parse_enhanced_code(first)) {
            enhanced = first;
            rest = e1;
        } else {
            return;
        }
        while (rest < s.size() && s[rest] == ' ') ++rest;
        std::string sent =
            std::to_string(a.code) + " " + a.enhanced.to_string() + " " + std::string(s);
        std::string verb = a.kind == ActionKind::Reject ? "reject" : "tempfail";
        std::string fix = verb + " " + (code.empty() ? std::to_string(a.code) : std::string(code));
        if (!enhanced.empty())
            fix += " " + std::string(enhanced);
        else if (code_given)
            fix += " " + a.enhanced.to_string();
        if (rest < s.size()) fix += " \"" + std::string(s.substr(rest)) + "\"";
        diags_.warning(loc(text), "the text starts with a " +
                                      std::string(code.empty() ? "status code" : "reply code") +
                                      ", so the reply would be '" + sent + "'; write " + fix);
    }

    Template parse_template(const Token& t, Stage stage, std::string_view what) {
        warn_non_ascii(t, what);
        Template out;
        const std::string& s = t.text;
        std::string literal;
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (s[i] != '{' || (i + 1 < s.size() && s[i + 1] == '{')) {
                literal += s[i];
                if (s[i] == '{') ++i;  // "{{" is a literal '{'
                continue;
            }
            auto close = s.find('}', i + 1);
            if (close == std::string::npos) {
                diags_.error(loc_in_string(t, i),
                             "unclosed '{' in text; write '{{' for a literal '{'");
                break;
            }
            if (s.compare(i + 1, close - i - 1, "greylist.remaining") == 0) {
                if (!greylist_text_)
                    diags_.error(loc_in_string(t, i + 1),
                                 "{greylist.remaining} is known only in the reply text of a "
                                 "'greylist' action");
                if (!literal.empty()) out.parts.push_back({std::move(literal), std::nullopt});
                literal.clear();
                out.parts.push_back({{}, std::nullopt, true, false});
            } else if (s.compare(i + 1, close - i - 1, "dnsbl.txt") == 0) {
                if (!literal.empty()) out.parts.push_back({std::move(literal), std::nullopt});
                literal.clear();
                out.parts.push_back({{}, std::nullopt, false, true});
                policy_->uses_dnsbl_txt_ = true;
            } else if (std::optional<FieldRef> ref = template_field(t, i, close, stage)) {
                if (!literal.empty()) out.parts.push_back({std::move(literal), std::nullopt});
                literal.clear();
                out.parts.push_back({{}, std::move(*ref)});
            }
            i = close;
        }
        if (!literal.empty()) out.parts.push_back({std::move(literal), std::nullopt});
        return out;
    }

    // The MTA gets ASCII: every other byte goes out as '?'. Said once, at the first.
    void warn_non_ascii(const Token& t, std::string_view what) {
        const std::string& s = t.text;
        auto at = std::find_if(s.begin(), s.end(),
                               [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
        if (at == s.end()) return;
        auto i = static_cast<std::size_t>(at - s.begin());
        auto [cp, n] = decode_utf8(std::string_view(s).substr(i));
        std::string shown = cp < 0 ? visible_text(s.substr(i, 1))
                            : visible_text(s.substr(i, n)) == s.substr(i, n)
                                ? quote(s.substr(i, n)) + " (" + code_point_name(cp) + ")"
                                : code_point_name(cp);
        diags_.warning(loc_in_string(t, i), "non-ASCII character " + shown + " in the " +
                                                std::string(what) + " is sent as '" +
                                                std::string(cp < 0 ? 1 : n, '?') + "'");
    }

    // The field of "{name}" at t.text[open..close], or nullopt after reporting why not.
    std::optional<FieldRef> template_field(const Token& t, std::size_t open, std::size_t close,
                                           Stage stage) {
        std::string written = t.text.substr(open + 1, close - open - 1);
        std::string name = written;
        std::string header = header_of_template_field(name);
        const FieldInfo* info = find_field(name);
        if (!info || (info->id == FieldId::Header && header.empty())) {
            diags_.error(loc_in_string(t, open + 1), "unknown field " + quote(written) +
                                                         " in text" +
                                                         (info ? std::string() : field_hint(name)));
            return std::nullopt;
        }
        if (info->id == FieldId::Body) {
            diags_.error(loc_in_string(t, open + 1),
                         "the body is not shown in a text; it is only tested with 'matches' or "
                         "'contains'");
            return std::nullopt;
        }
        if (!field_available(*info, stage)) {
            diags_.error(loc_in_string(t, open + 1), unavailable(*info, stage));
            return std::nullopt;
        }
        FieldRef ref;
        ref.id = info->id;
        ref.header = ascii_lower(header);
        if (info->id == FieldId::Header) note_header(ref.header);
        policy_->used_fields_[static_cast<std::size_t>(info->id)] = true;
        return ref;
    }

    // {header["Name"]} or {header[Name]}: turns `name` into "header" and returns Name.
    static std::string header_of_template_field(std::string& name) {
        constexpr std::string_view kOpen = "header[";
        if (!name.starts_with(kOpen) || !name.ends_with(']')) return {};
        std::string header = name.substr(kOpen.size(), name.size() - kOpen.size() - 1);
        if (header.size() >= 2 && header.front() == '"' && header.back() == '"')
            header = header.substr(1, header.size() - 2);
        name = "header";
        return header;
    }

    // ---- whole-file checks -----------------------------------------------------------

    void note_unreachable(const Statement& st) {
        auto& decider = unconditional_[stage_index(st.stage)];
        if (decider) {
            diags_.warning(st.where, std::string(st.is_limit() ? "limit" : "rule") + " \"" + st.id +
                                         "\" can never be reached: rule \"" + decider->first +
                                         "\" at line " + std::to_string(decider->second) +
                                         " always decides the " +
                                         std::string(stage_name(st.stage)) + " stage");
            return;
        }
        if (!st.when && !st.observe && !st.is_limit() && action_is_terminal(st.action.kind))
            decider = std::make_pair(st.id, st.where.line);
    }

    void resolve_lists() {
        for (std::size_t si = 0; si < policy_->statements_.size(); ++si) {
            auto& st = policy_->statements_[si];
            if (st.when) resolve_in(*st.when, st.stage);
        }
    }

    void resolve_in(Condition& c, Stage stage) {
        for (auto& child : c.children) resolve_in(child, stage);
        if (c.kind != Condition::Kind::InList) return;
        PendingListRef& ref = pending_.at(c.list_index);
        ListSource* src = nullptr;
        if (!ref.name.empty()) {
            auto it = named_lists_.find(ref.name);
            if (it == named_lists_.end()) {
                diags_.error(ref.where, "unknown list " + quote(ref.name));
                return;
            }
            src = &it->second;
        } else {
            src = &anonymous_lists_[ref.anonymous];
        }
        src->used = true;
        if (src->dns) return attach_dns_list(c, src->dns, ref.where, stage);
        c.list = compile_list(*src, c.field);
    }

    // A dnsbl list takes client.ip; an rhsbl list a domain (the host-name fields).
    void attach_dns_list(Condition& c, const std::shared_ptr<const DnsList>& list,
                         const SourceLocation& where, Stage stage) {
        bool dnsbl = list->kind == DnsListKind::Dnsbl;
        ValueType type = c.field.info().type;
        if (dnsbl ? c.field.id != FieldId::ClientIp : type != ValueType::Host) {
            diags_.error(where, "list " + quote(list->name) + " is " +
                                    (dnsbl ? "a dnsbl list: it takes client.ip"
                                           : "an rhsbl list: it takes a domain (sender.domain, "
                                             "helo, client.name, client.ptr, recipient.domain)") +
                                    ", not " + quote(c.field.display()));
            return;
        }
        c.dns = list;
        auto& uses = policy_->dns_uses_;
        bool known = std::any_of(uses.begin(), uses.end(), [&](const DnsUse& u) {
            return u.stage == stage && u.field.id == c.field.id && u.list == list;
        });
        if (!known) uses.push_back({stage, c.field, list});
    }

    std::shared_ptr<const ListMatcher> compile_list(ListSource& src, const FieldRef& field) {
        ValueType type = field.info().type;
        if (auto it = src.compiled.find(type); it != src.compiled.end()) return it->second;
        auto matcher = std::make_shared<ListMatcher>(type);
        std::string field_name = field.display();
        if (src.file) {
            read_list_file(src, *matcher, field_name);
        } else {
            for (const auto& [item, where] : src.items)
                matcher->add_item(item, where, field_name, diags_);
        }
        matcher->finish(src.file ? src.file_where : src.where, diags_);
        src.compiled.emplace(type, matcher);
        return matcher;
    }

    // A list file is often a machine-generated feed: as Postfix does with a cidr table,
    // a bad line is a warning and is skipped, and the rest of the list is loaded. Only a
    // file that cannot be read at all is an error.
    void read_list_file(ListSource& src, ListMatcher& matcher, const std::string& field_name) {
        const std::string& path = *src.file;
        TextFile in(path, kMaxListFileBytes);
        if (!in.ok()) {
            diags_.error(src.file_where, "cannot read list file \"" + path + "\": " + in.error());
            return;
        }
        if (std::find(policy_->source_files_.begin(), policy_->source_files_.end(), path) ==
            policy_->source_files_.end())
            policy_->source_files_.push_back(path);
        // A rough guess of the entry count from the size keeps the table from rehashing.
        matcher.reserve(static_cast<std::size_t>(in.size() / 24));
        in.set_max_line(kMaxListLineBytes);
        auto file_name = std::make_shared<const std::string>(path);
        std::string line;
        std::uint32_t line_no = 0;
        std::size_t bad = 0;
        SourceLocation last_bad;
        Diagnostics item_diags;
        while (in.next_line(line)) {
            ++line_no;
            std::string_view item(line);
            if (auto hash = item.find('#'); hash != std::string_view::npos)
                item = item.substr(0, hash);
            std::size_t lead = 0;
            while (lead < item.size() && (item[lead] == ' ' || item[lead] == '\t')) ++lead;
            item.remove_prefix(lead);
            while (!item.empty() &&
                   (item.back() == ' ' || item.back() == '\t' || item.back() == '\r'))
                item.remove_suffix(1);
            if (item.empty()) continue;
            SourceLocation where{file_name, line_no, static_cast<std::uint32_t>(lead + 1)};
            if (item == "\"\"") item = {};  // the null sender, written as inline
            if (in.truncated())
                item_diags.error(where,
                                 "line is longer than " + format_byte_limit(kMaxListLineBytes));
            else if (matcher.add_item(item, where, field_name, item_diags))
                continue;
            // A feed that went wrong (an HTML error page) must not flood the log: the
            // first few lines are named, the rest counted.
            if (++bad <= kMaxListWarnings)
                for (const auto& d : item_diags.all())
                    diags_.warning(d.where, d.message + " (line skipped)");
            item_diags = Diagnostics();
            last_bad = where;
        }
        if (!in.ok()) {
            diags_.error(src.file_where, "cannot read list file \"" + path + "\": " + in.error());
            return;
        }
        if (bad > kMaxListWarnings)
            diags_.warning(last_bad, std::to_string(bad - kMaxListWarnings) +
                                         " more bad lines skipped in list file \"" + path + "\" (" +
                                         std::to_string(bad) + " in all)");
    }

    void warn_unused_lists() {
        for (const auto& name : list_order_) {
            const ListSource& src = named_lists_.at(name);
            if (src.used || referenced_lists_.count(name)) continue;
            diags_.warning(src.where, "list " + quote(name) + " is never used");
            // Still read its file, so a reload cannot trip over it later; as text, every
            // item fits, so only an unreadable file is reported.
            if (src.file) {
                ListSource copy = src;
                FieldRef as_text;
                as_text.id = FieldId::AuthUser;
                compile_list(copy, as_text);
            }
        }
    }

    // Statement indexing: a statement whose condition requires `field == "literal"` on a
    // text-like field of a single value is filed under that literal.
    static const Condition* equality_guard(const Condition& c, Stage stage) {
        if (c.kind == Condition::Kind::Compare && c.op == CompareOp::Eq) {
            const FieldInfo& info = c.field.info();
            bool text_like = info.type == ValueType::Host || info.type == ValueType::Address ||
                             info.type == ValueType::Text;
            bool single_value = !info.per_recipient || stage == Stage::Rcpt;
            if (text_like && single_value) return &c;
        }
        if (c.kind == Condition::Kind::And)
            for (const auto& child : c.children)
                if (auto g = equality_guard(child, stage)) return g;
        return nullptr;
    }

    void index_stages() {
        for (std::uint32_t i = 0; i < policy_->statements_.size(); ++i) {
            const Statement& st = policy_->statements_[i];
            StagePolicy& sp = policy_->stages_[stage_index(st.stage)];
            const Condition* guard = st.when ? equality_guard(*st.when, st.stage) : nullptr;
            if (!guard) {
                sp.unindexed.push_back(i);
                continue;
            }
            auto idx = std::find_if(sp.indexes.begin(), sp.indexes.end(), [&](const auto& x) {
                return x.field.id == guard->field.id && x.field.header == guard->field.header;
            });
            if (idx == sp.indexes.end()) {
                sp.indexes.push_back({guard->field, {}});
                idx = std::prev(sp.indexes.end());
            }
            idx->by_value[guard->text].push_back(i);
        }
    }

    std::shared_ptr<const std::string> file_;
    std::string base_dir_;
    Diagnostics& diags_;
    std::shared_ptr<Policy> policy_;
    std::vector<Token> tokens_;
    std::size_t pos_ = 0;
    Stage current_stage_ = Stage::Connect;
    std::set<std::string> referenced_lists_;
    std::map<std::string, std::uint32_t> ids_;
    std::map<std::string, ListSource> named_lists_;
    std::vector<std::string> list_order_;
    std::vector<ListSource> anonymous_lists_;
    std::vector<PendingListRef> pending_;  // by Condition::list_index
    std::array<std::optional<std::pair<std::string, std::uint32_t>>, kStageCount> unconditional_;
    bool greylist_text_ = false;  // parsing a greylist's reply: {greylist.remaining} is known
};

LoadResult load_policy_text(std::string_view text, const std::string& display_name,
                            const std::string& base_dir) {
    LoadResult result;
    PolicyBuilder builder(display_name, base_dir, result.diagnostics);
    result.policy = builder.build(text);
    return result;
}

LoadResult load_policy_file(const std::string& path) {
    TextFile file(path, kMaxRulesFileBytes);
    std::string text;
    if (!file.read_all(text)) {
        LoadResult result;
        result.diagnostics.file_error(path, "cannot read rules file: " + file.error());
        return result;
    }
    std::string base = std::filesystem::path(path).parent_path().string();
    return load_policy_text(text, path, base.empty() ? "." : base);
}

}  // namespace pm
