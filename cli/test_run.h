// SPDX-License-Identifier: BSD-2-Clause
// `policy-milter --test`: one transaction through the rules without an MTA, printed
// stage by stage as the milter would answer.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "policy/conversation.h"
#include "policy/policy.h"

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

// Prints one line per event (and one per observed rule); returns 0, or 2 with a message
// on stderr-style `errors` when the transaction itself is malformed (bad --client).
int run_test_transaction(std::shared_ptr<const Policy> policy, const TestTransaction& tx,
                         const ConversationOptions& options, std::ostream& out,
                         std::ostream& errors);

// One event's lines, as --test prints them and the golden tests compare them.
std::string format_decision(const Decision& d);

}  // namespace pm
