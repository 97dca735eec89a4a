// SPDX-License-Identifier: BSD-2-Clause
// What the policy decided for one event, in terms the milter adapter and --test print.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "policy/reply_codes.h"
#include "policy/stage.h"

namespace pm {

// The longest reply line RFC 5321 §4.5.3.1.5 allows, CRLF included.
inline constexpr std::size_t kMaxReplyLine = 512;
// An added header's value: one line of RFC 5322 §2.1.1 at most.
inline constexpr std::size_t kMaxHeaderValue = 998;
// A quarantine reason, which the MTA logs and keeps with the message: a reply line's worth.
inline constexpr std::size_t kMaxQuarantineReason = kMaxReplyLine - 2;

// A reply as the SMTP client will see it: safe text, within the line limit.
struct Reply {
    int code = 0;
    EnhancedCode enhanced;
    std::string text;  // already sanitised: printable ASCII only

    // "550 5.1.1 text", exactly as the client sees it.
    std::string line() const;
};

// Makes expanded text safe for a reply: control characters (CR, LF, NUL...) become
// spaces, non-ASCII bytes become '?', and the whole line is cut to 512 octets. (The
// milter cuts it further for libmilter: milter/reply_encoding.h.)
std::string sanitize_reply_text(std::string_view text, std::size_t prefix_length);
// The same for an added header's value or a quarantine reason, cut to `max_octets`.
std::string sanitize_text(std::string_view text, std::size_t max_octets);

// What one event comes to: Continue when no statement decided it, else the action of the
// one that did. The values are ActionKind's, so a deciding action is its own verdict and
// prints as the same word; add-header never decides (it adds and the stage goes on).
enum class Verdict {
    Continue = -1,
    Pass = static_cast<int>(ActionKind::Pass),
    Accept = static_cast<int>(ActionKind::Accept),
    Reject = static_cast<int>(ActionKind::Reject),
    Tempfail = static_cast<int>(ActionKind::Tempfail),
    Discard = static_cast<int>(ActionKind::Discard),
    Quarantine = static_cast<int>(ActionKind::Quarantine),
};
// The verdict of a deciding action (action_is_terminal: not add-header).
constexpr Verdict verdict_of(ActionKind kind) {
    return static_cast<Verdict>(kind);
}

struct RuleHit {
    std::string rule_id;
    ActionKind action;
    std::optional<Reply> reply;
    std::string detail;  // quarantine reason, "Name: value" of an added header
};

struct Decision {
    Stage stage = Stage::Connect;
    Verdict verdict = Verdict::Continue;  // Continue: no rule decided
    std::string rule_id;                  // the deciding rule or limit
    std::optional<Reply> reply;           // for Reject and Tempfail
    std::string quarantine_reason;
    std::vector<std::pair<std::string, std::string>> headers_to_add;
    std::vector<RuleHit> observed;  // rules that would have acted ("would-reject")
    std::vector<RuleHit> added;     // add-header rules that matched, for the log
    std::string error;              // why a store failure decided this event, if it did
    bool store_error = false;       // the counter store failed (for the statistics)
    // DNS lists (policy/dns_lists.h): a lookup that failed, naming the zone (logged as a
    // warning; `in` was false), and a list's 127.255.255.x answer (logged as an error).
    std::vector<std::string> dns_warnings, dns_errors;

    bool refused() const { return verdict == Verdict::Reject || verdict == Verdict::Tempfail; }
    bool closes_connection() const { return reply && reply->code == 421; }
};

std::string_view verdict_name(Verdict v);

}  // namespace pm
