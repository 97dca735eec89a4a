// SPDX-License-Identifier: BSD-2-Clause
// EVALUATOR
//   evaluate(policy, stage, facts, ledger, options)   one event's Decision
//   condition_holds(condition, facts, stage)           one `when` condition
//   limit_key(limit, facts)                            the counter a limit counts under
//   limit_key_of_values(limit, values, why)            the same, for values an admin names
//   refuse_full_limit(...), refuse_store_failure(...)  the refusals of a failed commit
//
// The rules of a compiled policy applied to the facts of one event
// (policy-milter.rules(5), CONDITIONS, ACTIONS, LIMITS): the statements of the stage run
// in file order until one decides. A limit whose condition holds stages its count in the
// ledger, which answers whether the count goes over the limit's max. Nothing here keeps
// state between events: the session's is in the facts and the ledger passed in.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "policy/decision.h"
#include "policy/facts.h"
#include "policy/greylist.h"
#include "policy/ledger.h"
#include "policy/policy.h"
#include "policy/stage.h"

namespace pm {

struct EvaluationOptions {
    bool observe_all = false;   // every rule only logs what it would do
    bool soft_bounce = false;   // every 5xx becomes the stage's default 4xx
    GreylistSettings greylist;  // the client network of a triplet, the auto-whitelist
};

// The decision for `stage`. The limits whose condition holds are staged in `ledger` for
// this event; the caller ends the event there (LimitLedger::end_event).
Decision evaluate(const Policy& policy, Stage stage, const Facts& facts, LimitLedger& ledger,
                  const EvaluationOptions& options);

// After rcpt, a condition on a recipient field holds when it holds for any accepted
// recipient; up to rcpt, it reads the recipient being decided.
bool condition_holds(const Condition& c, const Facts& facts, Stage stage);

// The limit's ID, then each key value, separated by \x1f: lower case, client.ip/N masked.
std::string limit_key(const Statement& limit, const Facts& facts);

// The key limit_key() builds for a session whose key fields have these values, one per
// key field in key order, as an administrator writes them (policy-milter --ctl
// limit-show): each normalised as the session's value would be (lower case, host names
// without a trailing dot, numbers in decimal, client.ip/N masked). nullopt, with the
// reason in `why`, for a wrong number of values or a value the field cannot have.
std::optional<std::string> limit_key_of_values(const Statement& limit,
                                               std::span<const std::string> values,
                                               std::string& why);
// The limit's key fields as written in its `key` clause: "sender, client.ip/64".
std::string limit_key_fields(const Limit& limit);

// `d` becomes the refusal of `limit`, which concurrent transactions filled up between this
// one's check and its commit at `stage`: the limit's action in a code `stage` allows.
void refuse_full_limit(Decision& d, const Statement& limit, Stage stage, const Facts& facts,
                       const EvaluationOptions& options);
// `d` becomes the tempfail of a store that could not answer for limit `id` (421 up to
// helo, 451 after: "Local error in processing").
void refuse_store_failure(Decision& d, Stage stage, const std::string& id, std::string_view error);

}  // namespace pm
