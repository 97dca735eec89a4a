// SPDX-License-Identifier: BSD-2-Clause
// `limit-show RULE KEY…` and `limit-reset RULE KEY…` of the control socket
// (policy-milter(8), CONTROL SOCKET): one limit's counter under one key, looked up in the
// running policy, its key built by limit_key_of_values() (policy/evaluator.h), the same
// code as the ledger's keys, and read or reset in the counter store.
#pragma once

#include <string>
#include <vector>

#include "milter/control_protocol.h"
#include "policy/counter_store.h"
#include "policy/policy.h"

namespace pm {

// words: the command ("limit-show" or "limit-reset"), the limit's ID, one value per key
// field. Never throws: a store error is a failed reply.
ControlReply limit_command(const Policy& policy, CounterStore& store,
                           const std::vector<std::string>& words);

}  // namespace pm
