// SPDX-License-Identifier: BSD-2-Clause
// A compiled, immutable policy. It is shared as std::shared_ptr<const Policy> so a
// reload can swap it atomically while transactions in flight finish on the old one.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/body_scan.h"
#include "policy/diagnostics.h"
#include "policy/dns_lists.h"
#include "policy/facts.h"
#include "policy/fields.h"
#include "policy/ip.h"
#include "policy/list_matcher.h"
#include "policy/reply_codes.h"
#include "policy/stage.h"
#include "policy/template.h"

namespace re2 {
class RE2;
}

namespace pm {

enum class CompareOp { Eq, NotEq, Less, LessEq, Greater, GreaterEq };

struct Condition {
    // Body: `body matches` or `body contains`, decided by the body scan (body_scan.h).
    enum class Kind { And, Or, Not, Compare, InList, Matches, Truth, Body };
    Kind kind = Kind::Truth;
    std::vector<Condition> children;  // And, Or (two or more), Not (one)
    FieldRef field;
    CompareOp op = CompareOp::Eq;
    std::string text;          // lower-case literal (text, host, address)
    std::uint64_t number = 0;  // numeric literal
    std::optional<IpPrefix> prefix;
    std::shared_ptr<const ListMatcher> list;
    std::shared_ptr<const re2::RE2> regex;
    std::uint32_t list_index = 0;        // InList: the file's list reference, resolved into `list`
    std::uint32_t body_index = 0;        // Body: the pattern in Policy::body_patterns()
    std::shared_ptr<const DnsList> dns;  // InList on a dnsbl or rhsbl list (then no `list`)
};

// Greylist is the last: kActionKindCount counts on it. A greylist decision's verdict is
// Tempfail (it refuses with a 4xx like tempfail); Greylist is the statement's action.
enum class ActionKind { Pass, Accept, Reject, Tempfail, Discard, Quarantine, AddHeader, Greylist };
inline constexpr std::size_t kActionKindCount = static_cast<std::size_t>(ActionKind::Greylist) + 1;
std::string_view action_name(ActionKind kind);
// All but add-header and greylist end the stage (greylist ends it only when it refuses).
bool action_is_terminal(ActionKind kind);

// greylist [delay D] [window D] [expire D], in seconds (policy-milter.rules(5), GREYLISTING).
struct GreylistTimes {
    std::uint64_t delay = 5 * 60;
    std::uint64_t window = 24 * 3600;
    std::uint64_t expire = 35 * 24 * 3600;
};

struct Action {
    ActionKind kind = ActionKind::Pass;
    int code = 0;             // reject/tempfail: always set (default filled in)
    EnhancedCode enhanced;    // reject/tempfail: always set
    Template text;            // reject/tempfail text; quarantine reason; header value
    std::string header_name;  // add-header
    GreylistTimes greylist;   // greylist
};

enum class LimitUnit { Messages, Recipients, Bytes };
std::string_view limit_unit_name(LimitUnit unit);

struct LimitKeyField {
    FieldRef field;
    std::optional<unsigned> prefix_length;  // client.ip/64
};

struct Limit {
    std::vector<LimitKeyField> key;
    std::uint64_t max = 0;
    LimitUnit unit = LimitUnit::Messages;
    std::uint64_t window_seconds = 0;
};

// A rule or a limit: both run in file order within their stage.
struct Statement {
    std::string id;
    Stage stage = Stage::Connect;
    SourceLocation where;
    std::optional<Condition> when;
    Action action;
    bool observe = false;
    std::optional<Limit> limit;

    bool is_limit() const { return limit.has_value(); }
};

// Rules of one stage. Those whose condition requires `field == "literal"` are also
// indexed by that literal, so a policy of a thousand per-address rules costs a hash
// lookup instead of a thousand comparisons.
// Lets the rule index be searched with a string_view, without building a string.
struct TransparentStringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct StagePolicy {
    std::vector<std::uint32_t> unindexed;  // statement indices, file order
    struct EqualityIndex {
        FieldRef field;
        std::unordered_map<std::string, std::vector<std::uint32_t>, TransparentStringHash,
                           std::equal_to<>>
            by_value;
    };
    std::vector<EqualityIndex> indexes;
    bool empty() const { return unindexed.empty() && indexes.empty(); }
};

class Policy {
  public:
    const std::vector<Statement>& statements() const { return statements_; }
    const StagePolicy& stage(Stage s) const { return stages_[stage_index(s)]; }
    bool stage_used(Stage s) const { return !stage(s).empty(); }
    bool uses_field(FieldId id) const { return used_fields_[static_cast<std::size_t>(id)]; }
    bool has_limits() const { return has_limits_; }
    // True if a condition, a limit key or a text reads header[name] (in any case): the
    // message's other headers need not be kept.
    bool uses_header(std::string_view name) const {
        for (const auto& h : used_headers_)
            if (equals_lower(name, h)) return true;
        return false;
    }
    // True if any statement, observed or not, has this action (the milter negotiates for
    // it at every connection: a flag, not a walk over the statements).
    bool uses_action(ActionKind kind) const {
        return used_actions_[static_cast<std::size_t>(kind)];
    }
    std::size_t rule_count() const { return statements_.size(); }
    // Every `body matches` / `body contains` of the rules, by Condition::body_index: what
    // the body of each message is scanned for. Empty: the body need not be read.
    const std::vector<BodyPattern>& body_patterns() const { return body_patterns_; }
    const std::vector<std::string>& source_files() const { return source_files_; }
    // Every condition on a DNS list, by stage (policy/dns_lists.h), each (stage, field,
    // list) once; and whether a text reads {dnsbl.txt} (the TXT records are looked up).
    const std::vector<DnsUse>& dns_uses() const { return dns_uses_; }
    bool uses_dnsbl_txt() const { return uses_dnsbl_txt_; }

  private:
    friend class PolicyBuilder;
    std::vector<Statement> statements_;
    std::array<StagePolicy, kStageCount> stages_;
    std::array<bool, kFieldCount> used_fields_{};
    std::array<bool, kActionKindCount> used_actions_{};  // by ActionKind
    std::vector<std::string> used_headers_;              // lower case, each once
    std::vector<BodyPattern> body_patterns_;
    bool has_limits_ = false;
    std::vector<std::string> source_files_;  // the rules file, then each list file
    std::vector<DnsUse> dns_uses_;
    bool uses_dnsbl_txt_ = false;
};

struct LoadResult {
    std::shared_ptr<const Policy> policy;  // null when there was any error
    Diagnostics diagnostics;
};

// Parses, checks and compiles a rules file and the list files it names. This is the one
// entry point that start-up, reload and --check all use.
LoadResult load_policy_file(const std::string& path);
// The same for rules held in memory (tests, fuzzing); relative list paths are taken
// from base_dir.
LoadResult load_policy_text(std::string_view text, const std::string& display_name,
                            const std::string& base_dir = ".");

}  // namespace pm
