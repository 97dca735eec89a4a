// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	test_transaction - the transaction --test runs
// SYNOPSIS
//	#include "config/test_transaction.h"
// DESCRIPTION
//	What --client, --helo, --from, --rcpt, --header, --message and the other --test
//	options describe (policy-milter(8), "Transaction for --test"): filled in by the command line
//	(config/options.h), run by cli/test_run.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pm {

struct TestTransaction {
    std::string client_ip;
    std::string client_name = "unknown";
    std::uint32_t client_port = 0;
    std::optional<std::string> helo;
    std::optional<std::string> from;  // without --from (and with --rcpt) the null sender
    std::string auth_user;
    bool tls = false;
    std::vector<std::string> rcpts;
    std::uint64_t size = 0;            // ESMTP SIZE=
    std::vector<std::string> headers;  // "Name: value"
    std::optional<std::string> message_file;
};

}  // namespace pm
