// SPDX-License-Identifier: BSD-2-Clause
// Review findings (a fresh-eyed review of issue 17 and of the merge that made the stages
// connect..message, unknown, vrfy, etrn): each test keeps one finding fixed.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/body_scan.h"
#include "policy/conversation.h"
#include "policy/dns_lists.h"
#include "test_util.h"

namespace pm {
namespace {

using testing::must_load;

// Review finding: dns_use_names took every stage after rcpt in the enum for one that
// reads the accepted recipients, vrfy included (the merge put it after message): a vrfy
// rule on an rhsbl of recipient.domain queried nothing, so it never matched (and with
// `on-error tempfail` every VRFY was refused 450).
TEST(ReviewFindings, VrfyRhsblQueriesTheVrfyRecipient) {
    auto p = must_load(
        "list dbl = rhsbl \"dbl.example.org\"\n"
        "rule \"v\" at vrfy when recipient.domain in dbl reject\n");
    Facts f;
    f.set_client(parse_ip("192.0.2.9"), "", 25);
    f.recipient = Address::from_smtp("<bob@spam.example>");
    std::array<bool, kStageCount> only{};
    only[stage_index(Stage::Vrfy)] = true;
    EXPECT_EQ(dns_queries(p->dns_uses(), only, f),
              (std::vector<std::string>{"spam.example.dbl.example.org"}));
}

}  // namespace
}  // namespace pm
