// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	reply_encoding - a reply as libmilter can send it
// SYNOPSIS
//	#include "milter/reply_encoding.h"
//
//	void fit_replies_for_milter(Decision& d);
//	std::string milter_reply_text(const Reply& reply);
// DESCRIPTION
//	smfi_setreply() takes the reply text as a format string, so each '%' must be
//	doubled, and refuses a text over MAXREPLYLEN (980 octets) counted that way: the MTA
//	would then send its own default reply instead of the rule's. The policy cuts a reply
//	to RFC 5321's 512-octet line (policy/decision.h); these are libmilter's own limits,
//	applied by the adapter before it logs and sends a decision, and by --test, which
//	prints what the daemon would send (policy-milter.rules(5), "Templates").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "policy/decision.h"

namespace pm {

// libmilter's MAXREPLYLEN, counted with each '%' doubled (tests/protocol finds the edge).
inline constexpr std::size_t kMaxMilterReplyText = 980;

// The longest start of `text` that fits kMaxMilterReplyText once each '%' is doubled.
std::string_view milter_fitting_prefix(std::string_view text);

// Cuts the text of every reply in `d` (the decision's and those of the rules it logs) to
// what libmilter sends, so that the log shows the reply the client gets.
void fit_replies_for_milter(Decision& d);

// The text for smfi_setreply: each '%' doubled. The reply fits (fit_replies_for_milter).
std::string milter_reply_text(const Reply& reply);

}  // namespace pm
