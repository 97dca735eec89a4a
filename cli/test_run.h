// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	test_run - policy-milter --test
// SYNOPSIS
//	#include "cli/test_run.h"
//
//	int run_test_transaction(std::shared_ptr<const Policy> policy,
//		const TestTransaction& tx, const ConversationOptions& options,
//		std::ostream& out, std::ostream& errors);
//	std::string format_decision(const Decision& d);
// DESCRIPTION
//	One transaction through the rules without an MTA, printed stage by stage as the
//	milter would answer (policy-milter.rules(5), CHECKING AND TESTING): the replies are
//	those the daemon sends, cut to libmilter's limits (milter/reply_encoding.h).
#pragma once

#include <memory>
#include <ostream>
#include <string>

#include "config/test_transaction.h"
#include "policy/conversation.h"
#include "policy/policy.h"

namespace pm {

// Prints one line per event (and one per observed rule); returns 0, or 2 with a message
// on stderr-style `errors` when the transaction itself is malformed (bad --client).
// The lookups of DNS lists are real, through `dns_servers` (dns-servers; empty: those of
// resolv.conf), and a "dns:" line per lookup says which list answered what.
int run_test_transaction(std::shared_ptr<const Policy> policy, const TestTransaction& tx,
                         const ConversationOptions& options, std::ostream& out,
                         std::ostream& errors, const std::string& dns_servers = {});

// One event's lines, as --test prints them and the golden tests compare them.
std::string format_decision(const Decision& d);

}  // namespace pm
