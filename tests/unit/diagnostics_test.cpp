// SPDX-License-Identifier: BSD-2-Clause
// Load-time diagnostics of the rules language (policy-milter.rules(5), DIAGNOSTICS): every broken
// file below is checked for the complete list of diagnostics it produces, in order, with the exact
// FILE:LINE:COL, severity and text. A policy is returned exactly when there is no error.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "policy/text_file.h"

namespace {

namespace fs = std::filesystem;

std::vector<std::string> diagnostic_lines(const pm::LoadResult& result) {
    std::vector<std::string> out;
    for (const auto& d : result.diagnostics.all()) out.push_back(d.to_string());
    return out;
}

bool any_error(const std::vector<std::string>& lines) {
    for (const auto& l : lines)
        if (l.find(": error: ") != std::string::npos) return true;
    return false;
}

// Loads `text` as "t.rules" and compares every diagnostic; the policy must be null
// exactly when one of them is an error.
void expect_diagnostics(std::string_view text, const std::vector<std::string>& expected,
                        const std::string& base_dir = ".") {
    pm::LoadResult result = pm::load_policy_text(text, "t.rules", base_dir);
    EXPECT_EQ(diagnostic_lines(result), expected) << "rules:\n" << text;
    EXPECT_EQ(result.policy == nullptr, any_error(expected)) << "rules:\n" << text;
    EXPECT_EQ(result.diagnostics.has_errors(), any_error(expected));
}

// A fresh directory for list files, removed afterwards.
class DiagnosticsFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::temp_directory_path() /
               ("pm-diagnostics-" + std::to_string(::getpid()) + "-" + info->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    void write(const std::string& name, std::string_view content) {
        std::ofstream out(dir_ / name, std::ios::binary);
        out << content;
    }
    std::string path(const std::string& name) const { return (dir_ / name).string(); }
    std::string base() const { return dir_.string(); }

    fs::path dir_;
};

// ---- clean files ------------------------------------------------------------------------

TEST(Diagnostics, CleanFileHasNoDiagnosticsAndAPolicy) {
    const char* text =
        "# every statement form, every stage, every action\n"
        "list vip = [ \"ceo@example.com\", \"@partner.example\", \".sub.example\", \"*-list@*\" ]\n"
        "list nets = [ 192.0.2.0/24, 2001:db8::/32, ::ffff:198.51.100.0/120 ]\n"
        "rule \"c1\" at connect when client.ip in nets and client.name in [ \".example\" ] accept\n"
        "rule \"h1\" at helo when helo matches /^localhost$/i or helo == \"evil\" reject 550 5.7.1 "
        "\"Bad {helo}\"\n"
        "rule \"m1\" at mail when sender in vip pass\n"
        "rule \"m2\" at mail when not tls and auth.user == \"\" and mail.size >= 10MB tempfail\n"
        "rule \"r1\" at rcpt when recipient.domain == \"example.com\" and rcpt.count > 50 tempfail "
        "452 4.5.3\n"
        "rule \"r2\" at rcpt when (recipient.local == \"x\") reject 550 5.1.1 \"<{recipient}> "
        "unknown\"\n"
        "rule \"d1\" at data when recipient in [ \"trap@example.com\" ] discard\n"
        "rule \"g1\" at message when header[\"Subject\"] matches /win/ quarantine \"spam "
        "{sender}\"\n"
        "rule \"g2\" at message add-header \"X-Policy\" \"checked {{ok}\"\n"
        "rule \"g3\" at message when message.size > 1M reject 552 5.3.4 observe\n"
        "limit \"l1\" at mail key sender, client.ip/64 when not sender in vip max 500 per 1h "
        "tempfail\n"
        "limit \"l2\" at rcpt key recipient max 10 recipients per 1d tempfail 452 4.5.3\n"
        "limit \"l3\" at message key sender max 50MB per 1d reject 552 5.3.4\n";
    expect_diagnostics(text, {});
    auto result = pm::load_policy_text(text, "t.rules");
    ASSERT_NE(result.policy, nullptr);
    EXPECT_EQ(result.policy->rule_count(), 13u);
    EXPECT_TRUE(result.policy->has_limits());
}

TEST(Diagnostics, WarningsAloneStillGiveAPolicy) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"x@y\" reject 550 5.9.9\n",
        {"t.rules:1:50: warning: enhanced status code '5.9.9' is not in the IANA registry"});
}

// ---- fields -----------------------------------------------------------------------------

TEST(Diagnostics, UnknownField) {
    expect_diagnostics(
        "rule \"a\" at mail when sendr == \"x@y\" reject\n"
        "rule \"b\" at mail when client.address == 1.2.3.4 reject\n"
        "rule \"c\" at mail reject 550 5.7.1 \"from {sendr} {header}\"\n",
        {"t.rules:1:23: error: unknown field 'sendr'; did you mean 'sender'?",
         "t.rules:2:23: error: unknown field 'client.address'; did you mean 'client.ip'?",
         "t.rules:3:42: error: unknown field 'sendr' in text; did you mean 'sender'?",
         "t.rules:3:50: error: unknown field 'header' in text"});
}

TEST(Diagnostics, FieldNotYetAvailableInCondition) {
    expect_diagnostics(
        "rule \"a\" at connect when sender == \"x@y\" reject\n"
        "rule \"b\" at helo when recipient.domain == \"example.com\" reject\n"
        "rule \"c\" at rcpt when header[\"Subject\"] == \"x\" reject\n"
        "rule \"d\" at data when message.size > 10 reject\n"
        "rule \"e\" at connect when tls reject\n",
        {"t.rules:1:26: error: field 'sender' is not available at the connect stage (it is "
         "known from mail on)",
         "t.rules:2:23: error: field 'recipient.domain' is not available at the helo stage (it "
         "is known from rcpt on)",
         "t.rules:3:23: error: field 'header' is not available at the rcpt stage (it is known "
         "from message on)",
         "t.rules:4:23: error: field 'message.size' is not available at the data stage (it is "
         "known from message on)",
         "t.rules:5:26: error: field 'tls' is not available at the connect stage (it is known "
         "from mail on)"});
}

TEST(Diagnostics, FieldNotYetAvailableInTemplate) {
    expect_diagnostics(
        "rule \"a\" at connect reject 554 5.7.1 \"no {sender} from {helo} at {client.ip}\"\n"
        "rule \"b\" at rcpt reject 550 5.7.1 \"bad {header[\\\"Subject\\\"]}\"\n"
        "rule \"c\" at mail tempfail 451 4.7.1 \"{recipient}\"\n",
        {"t.rules:1:43: error: field 'sender' is not available at the connect stage (it is "
         "known from mail on)",
         "t.rules:1:57: error: field 'helo' is not available at the connect stage (it is "
         "known from helo on)",
         "t.rules:2:41: error: field 'header' is not available at the rcpt stage (it is known "
         "from message on)",
         "t.rules:3:39: error: field 'recipient' is not available at the mail stage (it is "
         "known from rcpt on)"});
}

TEST(Diagnostics, FieldNotYetAvailableInLimitKey) {
    expect_diagnostics(
        "limit \"l\" at helo key client.ip, sender max 5 per 1h tempfail\n"
        "limit \"m\" at mail key sender/24 max 5 per 1h tempfail\n"
        "limit \"n\" at mail key tls max 5 per 1h tempfail\n",
        {"t.rules:1:34: error: field 'sender' is not available at the helo stage (it is "
         "known from mail on)",
         "t.rules:2:23: error: only client.ip can be grouped by prefix, not 'sender'",
         "t.rules:3:23: error: key field 'tls' is a boolean; key on a value"});
}

TEST(Diagnostics, BooleanFieldCompared) {
    expect_diagnostics("rule \"a\" at mail when tls == \"yes\" reject\n",
                       {"t.rules:1:27: error: 'tls' is a boolean: write 'when tls' or 'when "
                        "not tls'"});
}

// ---- actions ----------------------------------------------------------------------------

TEST(Diagnostics, ActionNotAllowedAtStage) {
    expect_diagnostics(
        "rule \"a\" at connect when client.port == 25 discard\n"
        "rule \"b\" at helo when helo == \"x\" discard\n"
        "rule \"c\" at mail when sender == \"x@y\" quarantine \"why\"\n"
        "rule \"d\" at data when rcpt.count > 1 quarantine \"why\"\n"
        "rule \"e\" at rcpt add-header \"X-A\" \"b\"\n"
        "rule \"f\" at message discard\n",
        {"t.rules:1:44: error: action 'discard' is not allowed at the connect stage (mail, "
         "rcpt, data or message only)",
         "t.rules:2:35: error: action 'discard' is not allowed at the helo stage (mail, rcpt, "
         "data or message only)",
         "t.rules:3:39: error: action 'quarantine' is not allowed at the mail stage (message "
         "only)",
         "t.rules:4:38: error: action 'quarantine' is not allowed at the data stage (message "
         "only)",
         "t.rules:5:18: error: action 'add-header' is not allowed at the rcpt stage (message "
         "only)"});
}

TEST(Diagnostics, UnknownAction) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"x@y\" deny\n"
        "rule \"b\" at mail when sender == \"x@z\" REJECT 550\n",
        {"t.rules:1:39: error: unknown action 'deny'; did you mean 'reject'?",
         "t.rules:2:39: error: unknown action 'REJECT'; did you mean 'reject'?"});
}

TEST(Diagnostics, UnknownActionWithNothingNearListsTheActions) {
    expect_diagnostics("rule \"a\" at mail when sender == \"x@y\" frobnicate\n",
                       {"t.rules:1:39: error: unknown action 'frobnicate'; actions are pass, "
                        "accept, reject, tempfail, discard, quarantine, add-header, greylist"});
}

TEST(Diagnostics, MissingActionIsReportedAndTheNextStatementStillChecked) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"x@y\"\n"
        "rule \"b\" at mail when sender == \"x@z\" reject 554\n"
        "rule \"c\" at message when message.size > 5M\n",
        {"t.rules:2:1: error: expected an action (pass, accept, reject, tempfail, discard, "
         "quarantine, add-header, greylist), found 'rule'",
         "t.rules:2:46: error: reply code 554 is not allowed for 'reject' at the mail stage; "
         "allowed: 550, 552, 553, 501, 555",
         "t.rules:4:1: error: expected an action (pass, accept, reject, tempfail, discard, "
         "quarantine, add-header, greylist), found end of file"});
}

TEST(Diagnostics, QuarantineAndAddHeaderArguments) {
    expect_diagnostics(
        "rule \"a\" at message when message.size > 1 quarantine\n"
        "rule \"b\" at message add-header \"Bad Name\" \"v\"\n"
        "rule \"c\" at message add-header \"X-Ok\" \"{nope}\"\n",
        {"t.rules:2:1: error: expected a quoted reason after 'quarantine', found 'rule'",
         "t.rules:2:32: error: invalid header name \"Bad Name\"",
         "t.rules:3:41: error: unknown field 'nope' in text"});
}

// ---- reply codes (policy-milter.rules(5), REPLY CODES) ------------------------------------

TEST(Diagnostics, ReplyCodesAtConnect) {
    expect_diagnostics(
        "rule \"a\" at connect when client.port == 1 reject 550\n"
        "rule \"b\" at connect when client.port == 2 tempfail 451\n"
        "rule \"c\" at connect when client.port == 3 reject 521\n"
        "rule \"d\" at connect when client.port == 4 tempfail 421\n",
        {"t.rules:1:50: error: reply code 550 is not allowed for 'reject' at the connect "
         "stage; allowed: 554, 521",
         "t.rules:2:52: error: reply code 451 is not allowed for 'tempfail' at the connect "
         "stage; allowed: 421"});
}

TEST(Diagnostics, ReplyCodesAtHelo) {
    expect_diagnostics(
        "rule \"a\" at helo when helo == \"a\" reject 554\n"
        "rule \"b\" at helo when helo == \"b\" tempfail 450\n"
        "rule \"c\" at helo when helo == \"c\" reject 504\n",
        {"t.rules:1:42: error: reply code 554 is not allowed for 'reject' at the helo stage; "
         "allowed: 550, 501, 504, 521",
         "t.rules:2:44: error: reply code 450 is not allowed for 'tempfail' at the helo "
         "stage; allowed: 421"});
}

TEST(Diagnostics, ReplyCodesAtMail) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"a@x\" reject 551\n"
        "rule \"b\" at mail when sender == \"b@x\" tempfail 450\n"
        "rule \"c\" at mail when sender == \"c@x\" reject 555\n"
        "rule \"d\" at mail when sender == \"d@x\" tempfail 455\n",
        {"t.rules:1:46: error: reply code 551 is not allowed for 'reject' at the mail stage; "
         "allowed: 550, 552, 553, 501, 555",
         "t.rules:2:48: error: reply code 450 is not allowed for 'tempfail' at the mail "
         "stage; allowed: 421, 451, 452, 455"});
}

TEST(Diagnostics, ReplyCodesAtRcpt) {
    expect_diagnostics(
        "rule \"a\" at rcpt when recipient == \"a@x\" reject 554 5.7.1 \"no\"\n"
        "rule \"b\" at rcpt when recipient == \"b@x\" tempfail 454\n"
        "rule \"c\" at rcpt when recipient == \"c@x\" tempfail 421\n"
        "rule \"d\" at rcpt when recipient == \"d@x\" reject 551\n",
        {"t.rules:1:49: error: reply code 554 is not allowed for 'reject' at the rcpt stage; "
         "allowed: 550, 551, 552, 553, 521, 501, 555 (RFC 5321 has no 554 for RCPT: use 550)",
         "t.rules:2:51: error: reply code 454 is not allowed for 'tempfail' at the rcpt "
         "stage; allowed: 421, 450, 451, 452, 455"});
}

TEST(Diagnostics, ReplyCodesAtData) {
    expect_diagnostics(
        "rule \"a\" at data when rcpt.count > 1 reject 550\n"
        "rule \"b\" at data when rcpt.count > 2 tempfail 452\n"
        "rule \"c\" at data when rcpt.count > 3 tempfail 451\n",
        {"t.rules:1:45: error: reply code 550 is not allowed for 'reject' at the data stage; "
         "allowed: 554",
         "t.rules:2:47: error: reply code 452 is not allowed for 'tempfail' at the data "
         "stage; allowed: 421, 451"});
}

TEST(Diagnostics, ReplyCodesAtMessage) {
    expect_diagnostics(
        "rule \"a\" at message when message.size > 1 reject 553\n"
        "rule \"b\" at message when message.size > 2 tempfail 455\n"
        "rule \"c\" at message when message.size > 3 tempfail 450\n"
        "rule \"d\" at message when message.size > 4 reject 550\n",
        {"t.rules:1:50: error: reply code 553 is not allowed for 'reject' at the message "
         "stage; allowed: 554, 550, 552",
         "t.rules:2:52: error: reply code 455 is not allowed for 'tempfail' at the message "
         "stage; allowed: 421, 450, 451, 452"});
}

TEST(Diagnostics, ReplyCodeClassMustMatchTheAction) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"a@x\" reject 451\n"
        "rule \"b\" at rcpt when recipient == \"b@x\" tempfail 550 5.1.1\n"
        "rule \"c\" at mail when sender == \"c@x\" reject 250\n",
        {"t.rules:1:46: error: reply code 451 is temporary (4xx), but 'reject' needs a 5xx "
         "code; allowed at mail: 550, 552, 553, 501, 555",
         "t.rules:2:51: error: reply code 550 is permanent (5xx), but 'tempfail' needs a 4xx "
         "code; allowed at rcpt: 421, 450, 451, 452, 455",
         "t.rules:3:46: error: reply code 250 is not a refusal, but 'reject' needs a 5xx "
         "code; allowed at mail: 550, 552, 553, 501, 555"});
}

TEST(Diagnostics, MalformedReplyCode) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"a@x\" reject 55\n"
        "rule \"b\" at mail when sender == \"b@x\" reject 5.7.1 \"x\"\n",
        {"t.rules:1:46: error: invalid reply code '55'; allowed at mail: 550, 552, 553, 501, "
         "555",
         "t.rules:2:46: error: enhanced status code '5.7.1' needs a reply code before it, "
         "e.g. '550 5.7.1'"});
}

// ---- enhanced status codes (RFC 3463) ---------------------------------------------------

TEST(Diagnostics, EnhancedCodeClassMismatchIsAnError) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"a@x\" reject 550 4.7.1\n"
        "rule \"b\" at mail when sender == \"b@x\" tempfail 451 5.7.1\n"
        "rule \"c\" at connect when client.port == 1 tempfail 421 2.0.0\n",
        {"t.rules:1:50: error: enhanced status code '4.7.1' has class 4 but reply code 550 "
         "has class 5; the MTA would drop the reply",
         "t.rules:2:52: error: enhanced status code '5.7.1' has class 5 but reply code 451 "
         "has class 4; the MTA would drop the reply",
         "t.rules:3:56: error: enhanced status code '2.0.0' has class 2 but reply code 421 "
         "has class 4; the MTA would drop the reply"});
}

TEST(Diagnostics, EnhancedCodeNotInRegistryIsAWarning) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"a@x\" reject 550 5.7.99\n"
        "rule \"b\" at rcpt when recipient == \"b@x\" tempfail 450 4.8.0 \"x\"\n"
        "rule \"c\" at rcpt when recipient == \"c@x\" tempfail 450 4.7.28\n",
        {"t.rules:1:50: warning: enhanced status code '5.7.99' is not in the IANA registry",
         "t.rules:2:55: warning: enhanced status code '4.8.0' is not in the IANA registry",
         "t.rules:3:55: warning: enhanced status code '4.7.28' is not in the IANA registry"});
}

TEST(Diagnostics, EnhancedCodeThatDoesNotFitTheStageIsAWarning) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"a@x\" reject 550 5.1.1\n"
        "rule \"b\" at helo when helo == \"b\" reject 550 5.1.7\n"
        "rule \"c\" at connect when client.port == 1 reject 554 5.1.3\n"
        "rule \"d\" at rcpt when recipient == \"d@x\" reject 550 5.1.1\n"
        "rule \"e\" at mail when sender == \"e@x\" reject 553 5.1.8\n",
        {"t.rules:1:50: warning: enhanced status code '5.1.1' describes a recipient address, "
         "which the mail stage does not have yet",
         "t.rules:2:46: warning: enhanced status code '5.1.7' describes the sender's address, "
         "which the helo stage does not have yet",
         "t.rules:3:54: warning: enhanced status code '5.1.3' describes a recipient address, "
         "which the connect stage does not have yet"});
}

TEST(Diagnostics, MalformedEnhancedCode) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"a@x\" reject 550 5.7\n"
        "rule \"b\" at mail when sender == \"b@x\" reject 550 5.7.1.1\n"
        "rule \"c\" at mail when sender == \"c@x\" reject 550 6.1.1\n"
        "rule \"d\" at mail when sender == \"d@x\" tempfail 451 4.7.1000\n",
        {"t.rules:1:50: error: invalid enhanced status code '5.7' (RFC 3463: "
         "CLASS.SUBJECT.DETAIL, e.g. 5.7.1)",
         "t.rules:2:50: error: invalid enhanced status code '5.7.1.1' (RFC 3463: "
         "CLASS.SUBJECT.DETAIL, e.g. 5.7.1)",
         "t.rules:3:50: error: invalid enhanced status code '6.1.1' (RFC 3463: "
         "CLASS.SUBJECT.DETAIL, e.g. 5.7.1)",
         "t.rules:4:52: error: invalid enhanced status code '4.7.1000' (RFC 3463: "
         "CLASS.SUBJECT.DETAIL, e.g. 4.7.1)"});
}

// ---- IDs and list names -----------------------------------------------------------------

TEST(Diagnostics, DuplicateIds) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"a@x\" reject\n"
        "limit \"l\" at mail key sender max 5 per 1h tempfail\n"
        "rule \"a\" at rcpt when recipient == \"a@x\" reject\n"
        "limit \"l\" at rcpt key recipient max 5 per 1h tempfail\n"
        "limit \"a\" at mail key sender max 9 per 1d tempfail\n",
        {"t.rules:3:6: error: duplicate ID \"a\": already used at line 1",
         "t.rules:4:7: error: duplicate ID \"l\": already used at line 2",
         "t.rules:5:7: error: duplicate ID \"a\": already used at line 1"});
}

TEST(Diagnostics, BadIdCharacters) {
    expect_diagnostics(
        "rule \"no spaces\" at mail when sender == \"a@x\" reject\n"
        "rule \"\" at mail when sender == \"b@x\" reject\n"
        "limit \"per/hour\" at mail key sender max 5 per 1h tempfail\n"
        "rule \"ok_1.2-3\" at mail when sender == \"c@x\" reject\n",
        {"t.rules:1:6: error: rule ID \"no spaces\" must be made of letters, digits, '.', '_' "
         "and '-'",
         "t.rules:2:6: error: rule ID \"\" must be made of letters, digits, '.', '_' and '-'",
         "t.rules:3:7: error: limit ID \"per/hour\" must be made of letters, digits, '.', '_' "
         "and '-'"});
}

TEST(Diagnostics, MissingOrUnquotedId) {
    expect_diagnostics(
        "rule a at mail reject\n"
        "rule \"b\" mail reject\n"
        "rule \"c\" at mail when sender == \"c@x\" reject\n",
        {"t.rules:1:6: error: expected a quoted rule ID, found 'a'",
         "t.rules:2:10: error: expected 'at', found 'mail'"});
}

TEST(Diagnostics, DuplicateListName) {
    expect_diagnostics(
        "list a = [ \"x@y\" ]\n"
        "list b = [ 1.2.3.4 ]\n"
        "list a = [ \"z@y\" ]\n"
        "rule \"r\" at mail when sender in a or client.ip in b reject\n",
        {"t.rules:3:6: error: list 'a' is already defined at line 1"});
}

TEST(Diagnostics, ReservedKeywordOrBadListName) {
    expect_diagnostics(
        "list in = [ \"x@y\" ]\n"
        "list reject = [ \"x@y\" ]\n"
        "list 9lives = [ \"x@y\" ]\n"
        "list rule \"r\" at mail when sender == \"x@y\" reject\n",
        {"t.rules:1:6: error: list name 'in' is a reserved keyword",
         "t.rules:2:6: error: list name 'reject' is a reserved keyword",
         "t.rules:3:6: error: list name '9lives' is not an identifier (letters, digits, '_' "
         "and '-')",
         "t.rules:4:6: error: expected a list name, found 'rule'"});
}

TEST(Diagnostics, UnknownList) {
    expect_diagnostics(
        "list vip = [ \"ceo@example.com\" ]\n"
        "rule \"a\" at mail when sender in vips reject\n"
        "rule \"b\" at rcpt when recipient in vip or recipient in nobody reject\n",
        {"t.rules:2:33: error: unknown list 'vips'", "t.rules:3:56: error: unknown list 'nobody'"});
}

TEST(Diagnostics, UnusedListIsAWarning) {
    expect_diagnostics(
        "list used = [ 10.0.0.0/8 ]\n"
        "list spare = [ \"x@y\" ]\n"
        "list later = [ \"y@z\" ]\n"
        "rule \"a\" at connect when client.ip in used reject\n"
        "rule \"b\" at mail when sender in later reject\n",
        {"t.rules:2:6: warning: list 'spare' is never used"});
}

TEST(Diagnostics, ListUsedBeforeItsDefinitionIsFine) {
    expect_diagnostics(
        "rule \"a\" at mail when sender in later reject\n"
        "list later = [ \"y@z\" ]\n",
        {});
}

// ---- unreachable rules ------------------------------------------------------------------

TEST(Diagnostics, RuleAfterAnUnconditionalTerminalRuleIsUnreachable) {
    expect_diagnostics(
        "rule \"hdr\" at message add-header \"X-A\" \"b\"\n"   // not terminal
        "rule \"try\" at message reject observe\n"             // observes only
        "rule \"all\" at message quarantine \"everything\"\n"  // decides the stage
        "rule \"late\" at message when message.size > 1 reject\n"
        "limit \"cap\" at message key sender max 5 per 1h tempfail\n"
        "rule \"other-stage\" at mail when sender == \"x@y\" reject\n"
        "rule \"m1\" at mail pass\n"
        "rule \"m2\" at mail accept\n",
        {"t.rules:4:1: warning: rule \"late\" can never be reached: rule \"all\" at line 3 "
         "always decides the message stage",
         "t.rules:5:1: warning: limit \"cap\" can never be reached: rule \"all\" at line 3 "
         "always decides the message stage",
         "t.rules:8:1: warning: rule \"m2\" can never be reached: rule \"m1\" at line 7 "
         "always decides the mail stage"});
}

// ---- lexical errors ---------------------------------------------------------------------

TEST(Diagnostics, UnterminatedString) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"x@y reject\n"
        "rule \"b at mail reject\n"
        "rule \"c\" at mail when sender == \"c@x\" reject 550 5.7.1 \"no way\n"
        "list l = [ \"a@b, \"c ]\n"
        "rule \"d\" at mail when sender in l reject\n",
        {"t.rules:1:33: error: unterminated string", "t.rules:2:6: error: unterminated string",
         "t.rules:3:56: error: unterminated string",
         "t.rules:4:19: error: expected ',' or ']', found 'c'",
         "t.rules:5:33: error: unknown list 'l'"});
}

TEST(Diagnostics, Regexes) {
    expect_diagnostics(
        "rule \"a\" at helo when helo matches /abc reject\n"
        "rule \"b\" at helo when helo matches /a(b/ reject\n"
        "rule \"c\" at helo when helo matches /ab/x reject\n"
        "rule \"d\" at helo when helo matches /x/ig reject\n"
        "rule \"e\" at helo when helo matches /a\\/b/ and helo matches /[z-a]/ reject\n"
        "rule \"f\" at helo when helo matches \"abc\" reject\n",
        {"t.rules:1:36: error: unterminated regex: missing closing '/'",
         "t.rules:2:36: error: invalid regex /a(b/: missing ): a(b",
         "t.rules:3:36: error: unknown regex flag 'x' (only 'i' is supported)",
         "t.rules:4:36: error: unknown regex flag 'g' (only 'i' is supported)",
         "t.rules:5:60: error: invalid regex /[z-a]/: invalid character class range: z-a",
         "t.rules:6:36: error: expected a regex /.../ after 'matches', found string \"abc\""});
}

TEST(Diagnostics, UnexpectedCharacter) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"a@x\" reject\n"
        "; rule \"b\" at mail when sender == \"b@x\" reject\n"
        "rule \"c\" at mail when sender == \"c@x\" ! reject\n",
        {"t.rules:2:1: error: expected 'observe' or the next 'list', 'rule' or 'limit', "
         "found ';'",
         "t.rules:3:39: error: '!' alone is not an operator: write 'not', or '!=' to "
         "compare"});
}

// ---- conditions -------------------------------------------------------------------------

TEST(Diagnostics, OrderingOperatorOnANonNumber) {
    expect_diagnostics(
        "rule \"a\" at mail when sender > \"a@x\" reject\n"
        "rule \"b\" at connect when client.ip <= 10.0.0.1 reject\n"
        "rule \"c\" at message when header[\"X-Score\"] >= 5 reject\n"
        "rule \"d\" at mail when mail.size > big reject\n",
        {"t.rules:1:30: error: '>' compares numbers, but 'sender' is a mail address",
         "t.rules:2:36: error: '<=' compares numbers, but 'client.ip' is an IP address",
         "t.rules:3:44: error: '>=' compares numbers, but 'header[\"x-score\"]' is text",
         "t.rules:4:35: error: expected a number after '>', found 'big'"});
}

TEST(Diagnostics, UnquotedStringLiteral) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == bob@example.com reject\n"
        "rule \"b\" at helo when helo != localhost reject\n"
        "rule \"c\" at connect when client.ip == \"1.2.3.4\" reject\n",
        {"t.rules:1:33: error: expected a quoted string after '==': write \"bob@example.com\"",
         "t.rules:2:31: error: expected a quoted string after '!=': write \"localhost\"",
         "t.rules:3:39: error: expected an IP address or prefix after '==', found string "
         "\"1.2.3.4\""});
}

TEST(Diagnostics, ConditionSyntax) {
    expect_diagnostics(
        "rule \"a\" at mail when (sender == \"a@x\" reject\n"
        "rule \"b\" at mail when sender reject\n"
        "rule \"c\" at mail when and sender == \"c@x\" reject\n"
        "rule \"d\" at connect when client.ip == 10.0.0.1/8 reject\n",
        {"t.rules:1:40: error: expected ')', found 'reject'",
         "t.rules:2:30: error: expected '==', '!=', '<', '<=', '>', '>=', 'in' or 'matches' "
         "after 'sender', found 'reject'",
         "t.rules:3:23: error: expected a field, 'not' or '(', found 'and'",
         "t.rules:4:39: error: prefix '10.0.0.1/8' has host bits set; did you mean "
         "'10.0.0.0/8'?"});
}

// ---- limits -----------------------------------------------------------------------------

TEST(Diagnostics, BadLimitSyntax) {
    expect_diagnostics(
        "limit \"a\" at mail key sender max 5 per 1y tempfail\n"
        "limit \"b\" at mail key sender max 5 per 0h tempfail\n"
        "limit \"c\" at mail key sender max 5 recipients per 1h tempfail\n"
        "limit \"d\" at rcpt key recipient max 5MB per 1h tempfail\n"
        "limit \"e\" at rcpt key recipient max 5 bytes per 1h tempfail\n"
        "limit \"f\" at message key sender max 5MB recipients per 1h tempfail\n"
        "limit \"g\" at mail key sender max lots per 1h tempfail\n"
        "limit \"h\" at mail key sender max 5 tempfail\n"
        "limit \"i\" at mail max 5 per 1h tempfail\n"
        "limit \"j\" at connect key client.ip/129 max 5 per 1h tempfail\n",
        {"t.rules:1:40: error: expected a duration such as 30s, 10m, 1h or 1d, found '1y': "
         "unit 'y' is not s, m, h or d",
         "t.rules:2:40: error: expected a duration such as 30s, 10m, 1h or 1d, found '0h': a "
         "duration is more than zero",
         "t.rules:3:36: error: a limit on recipients counts at rcpt, data or message, not at "
         "mail",
         "t.rules:4:37: error: a limit on bytes counts at mail (mail.size) or message "
         "(message.size), not at rcpt",
         "t.rules:5:37: error: a limit on bytes counts at mail (mail.size) or message "
         "(message.size), not at rcpt",
         "t.rules:6:41: error: a size such as '5MB' counts bytes, not recipients",
         "t.rules:7:34: error: expected a number after 'max', found 'lots'",
         "t.rules:8:36: error: expected 'per', found 'tempfail'",
         "t.rules:9:19: error: expected 'key', found 'max'",
         "t.rules:10:26: error: prefix length in 'client.ip/129' must be 1 to 128"});
}

// ---- stages -----------------------------------------------------------------------------

TEST(Diagnostics, UnknownStage) {
    expect_diagnostics(
        "rule \"a\" at connnect reject\n"
        "rule \"b\" at MAIL reject\n"
        "rule \"c\" at eom reject\n"
        "rule \"d\" at\n"
        "rule \"e\" at data when rcpt.count > 9 reject\n",
        {"t.rules:1:13: error: unknown stage 'connnect'; did you mean 'connect'?",
         "t.rules:2:13: error: unknown stage 'MAIL'; did you mean 'mail'?",
         "t.rules:3:13: error: unknown stage 'eom'; did you mean 'message'?",
         "t.rules:5:1: error: expected a stage, found 'rule'"});
}

// ---- list items -------------------------------------------------------------------------

TEST(Diagnostics, InlineListItemOfTheWrongKind) {
    expect_diagnostics(
        "list nets = [ 10.0.0.0/8, \"user@example.com\", mail.example ]\n"
        "list senders = [ \"a@b.example\", 192.0.2.7, \"example.org\", \"@\" ]\n"
        "rule \"a\" at connect when client.ip in nets reject\n"
        "rule \"b\" at mail when sender in senders reject\n"
        "rule \"c\" at helo when helo in [ \"x@y\", 10.0.0.0/8, \".ok.example\" ] reject\n",
        {"t.rules:1:27: error: list item 'user@example.com' is not an IP address or CIDR "
         "prefix, but client.ip is an IP address",
         "t.rules:1:47: error: list item 'mail.example' is not an IP address or CIDR prefix, "
         "but client.ip is an IP address",
         "t.rules:2:33: error: list item '192.0.2.7' is an IP address, but sender is a mail "
         "address",
         "t.rules:2:44: error: list item 'example.org' is not a mail address; write "
         "'@example.org' for the domain or '.example.org' for its subdomains",
         "t.rules:2:59: error: list item '@' names no domain after '@'",
         "t.rules:5:33: error: list item 'x@y' is a mail address, but helo is a host name",
         "t.rules:5:40: error: list item '10.0.0.0/8' is an IP prefix, but helo is a host "
         "name"});
}

// An empty item is a value like any other (the empty host name, the null sender), not a
// read past the end of the item.
TEST(Diagnostics, EmptyInlineListItemsAreAccepted) {
    expect_diagnostics(
        "rule \"a\" at connect when client.name in [ \"\", \".\" ] reject\n"
        "rule \"b\" at mail when sender in [ \"\" ] or auth.user in [ \"\" ] reject\n",
        {});
}

TEST(Diagnostics, OneListUsedWithTwoFieldTypesIsCheckedForEach) {
    expect_diagnostics(
        "list mixed = [ 192.0.2.1, \"a@b.example\" ]\n"
        "rule \"a\" at connect when client.ip in mixed reject\n"
        "rule \"b\" at mail when sender in mixed reject\n",
        {"t.rules:1:27: error: list item 'a@b.example' is not an IP address or CIDR prefix, "
         "but client.ip is an IP address",
         "t.rules:1:16: error: list item '192.0.2.1' is an IP address, but sender is a mail "
         "address"});
}

// ---- list files -------------------------------------------------------------------------

TEST_F(DiagnosticsFiles, MissingListFileNamesThePath) {
    write("present.txt", "10.0.0.0/8\n");
    expect_diagnostics(
        "list gone = file \"gone.txt\"\n"
        "list spare = file \"also-gone.txt\"\n"
        "list here = file \"present.txt\"\n"
        "rule \"a\" at connect when client.ip in gone or client.ip in here reject\n"
        "rule \"b\" at mail when sender in file \"sub/none.txt\" reject\n",
        {"t.rules:1:18: error: cannot read list file \"" + path("gone.txt") +
             "\": No such file or directory",
         "t.rules:5:38: error: cannot read list file \"" + path("sub/none.txt") +
             "\": No such file or directory",
         "t.rules:2:6: warning: list 'spare' is never used",
         "t.rules:2:19: error: cannot read list file \"" + path("also-gone.txt") +
             "\": No such file or directory"},
        base());
}

TEST_F(DiagnosticsFiles, ListFileThatIsNotAPlainFileIsAnError) {
    fs::create_directories(dir_ / "a-directory");
    expect_diagnostics(
        "list d = file \"a-directory\"\n"
        "rule \"a\" at connect when client.ip in d reject\n",
        {"t.rules:1:15: error: cannot read list file \"" + path("a-directory") +
         "\": not a regular file (a directory)"},
        base());
}

TEST_F(DiagnosticsFiles, UnreadableListFileIsAnError) {
    write("secret.txt", "10.0.0.0/8\n");
    fs::permissions(dir_ / "secret.txt", fs::perms::none);
    if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
    expect_diagnostics(
        "list s = file \"secret.txt\"\n"
        "rule \"a\" at connect when client.ip in s reject\n",
        {"t.rules:1:15: error: cannot read list file \"" + path("secret.txt") +
         "\": Permission denied"},
        base());
}

TEST_F(DiagnosticsFiles, MalformedEntriesInAListFileUseTheListFilesOwnPosition) {
    write("nets.txt",
          "# blocked networks\n"
          "10.0.0.0/8\n"
          "\n"
          "   bogus-entry   # trailing comment\n"
          "\t192.0.2.1\n"
          "user@example.com\n"
          "2001:db8::/129\n"
          "192.0.2.1/24\n");
    write("senders.txt",
          "a@b.example\n"
          "  192.0.2.7\n"
          "example.org\n"
          "@partner.example\n"
          ".sub.example\n"
          "*-bounce@*\n");
    expect_diagnostics(
        "list nets = file \"nets.txt\"\n"
        "list senders = file \"senders.txt\"\n"
        "rule \"a\" at connect when client.ip in nets reject\n"
        "rule \"b\" at mail when sender in senders reject\n",
        {path("nets.txt") + ":4:4: warning: list item 'bogus-entry' is not an IP address or "
                            "CIDR prefix, but client.ip is an IP address (line skipped)",
         path("nets.txt") + ":6:1: warning: list item 'user@example.com' is not an IP address "
                            "or CIDR prefix, but client.ip is an IP address (line skipped)",
         path("nets.txt") + ":7:1: warning: list item '2001:db8::/129' is not an IP address "
                            "or CIDR prefix: an IPv6 prefix length is at most 128, not 129 "
                            "(line skipped)",
         path("nets.txt") + ":8:1: warning: list item '192.0.2.1/24' has host bits set; did "
                            "you mean '192.0.2.0/24'? (line skipped)",
         path("senders.txt") + ":2:3: warning: list item '192.0.2.7' is an IP address, but "
                               "sender is a mail address (line skipped)",
         path("senders.txt") + ":3:1: warning: list item 'example.org' is not a mail address; "
                               "write '@example.org' for the domain or '.example.org' for its "
                               "subdomains (line skipped)"},
        base());
}

TEST_F(DiagnosticsFiles, AbsoluteListPathIsUsedAsIs) {
    write("nets.txt", "not-an-ip\n");
    expect_diagnostics("list nets = file \"" + path("nets.txt") +
                           "\"\n"
                           "rule \"a\" at connect when client.ip in nets reject\n",
                       {path("nets.txt") + ":1:1: warning: list item 'not-an-ip' is not an IP "
                                           "address or CIDR prefix, but client.ip is an IP "
                                           "address (line skipped)"},
                       "/nonexistent-base");
}

TEST_F(DiagnosticsFiles, MissingRulesFile) {
    pm::LoadResult result = pm::load_policy_file(path("none.rules"));
    EXPECT_EQ(result.policy, nullptr);
    EXPECT_EQ(diagnostic_lines(result),
              std::vector<std::string>{path("none.rules") +
                                       ": error: cannot read rules file: No such file or "
                                       "directory"});
}

TEST_F(DiagnosticsFiles, RulesFileListsAreRelativeToTheRulesFile) {
    fs::create_directories(dir_ / "etc");
    write("etc/r.rules",
          "list nets = file \"nets.txt\"\n"
          "rule \"a\" at connect when client.ip in nets reject\n");
    write("etc/nets.txt", "10.0.0.0/8\nnope\n");
    pm::LoadResult result = pm::load_policy_file(path("etc/r.rules"));
    EXPECT_NE(result.policy, nullptr);
    EXPECT_EQ(diagnostic_lines(result),
              std::vector<std::string>{path("etc/nets.txt") +
                                       ":2:1: warning: list item 'nope' is not an IP address or "
                                       "CIDR prefix, but client.ip is an IP address (line "
                                       "skipped)"});
}

// ---- what is read: regular files, bounded, without a byte-order mark -------------------

TEST_F(DiagnosticsFiles, RulesFileMustBeARegularFile) {
    fs::create_directories(dir_ / "dir.rules");
    ASSERT_EQ(::mkfifo(path("fifo.rules").c_str(), 0600), 0);
    auto only = [](const pm::LoadResult& r) {
        EXPECT_EQ(r.policy, nullptr);
        return diagnostic_lines(r);
    };
    // A directory used to load as an empty policy, accepting all mail.
    EXPECT_EQ(only(pm::load_policy_file(path("dir.rules"))),
              std::vector<std::string>{path("dir.rules") +
                                       ": error: cannot read rules file: not a regular file (a "
                                       "directory)"});
    // A FIFO used to hang --check, and a reload in the thread that handles SIGTERM.
    EXPECT_EQ(only(pm::load_policy_file(path("fifo.rules"))),
              std::vector<std::string>{path("fifo.rules") +
                                       ": error: cannot read rules file: not a regular file (a "
                                       "FIFO)"});
    // /dev/zero used to abort with bad_alloc.
    EXPECT_EQ(only(pm::load_policy_file("/dev/zero")),
              std::vector<std::string>{"/dev/zero: error: cannot read rules file: not a regular "
                                       "file (a character device)"});
}

TEST_F(DiagnosticsFiles, SymlinkToARegularRulesFileWorks) {
    write("real.rules", "rule \"a\" at connect when client.ip == 192.0.2.1 reject\n");
    fs::create_symlink(path("real.rules"), path("link.rules"));
    pm::LoadResult result = pm::load_policy_file(path("link.rules"));
    EXPECT_NE(result.policy, nullptr);
    EXPECT_TRUE(diagnostic_lines(result).empty());
}

TEST_F(DiagnosticsFiles, RulesFileSizeIsBounded) {
    write("big.rules", "");
    fs::resize_file(path("big.rules"), pm::kMaxRulesFileBytes + 1);  // sparse: no disk used
    pm::LoadResult result = pm::load_policy_file(path("big.rules"));
    EXPECT_EQ(result.policy, nullptr);
    EXPECT_EQ(diagnostic_lines(result),
              std::vector<std::string>{path("big.rules") +
                                       ": error: cannot read rules file: larger than the limit "
                                       "of 16 MiB"});
}

TEST_F(DiagnosticsFiles, ListFileMustBeARegularFile) {
    ASSERT_EQ(::mkfifo(path("fifo.txt").c_str(), 0600), 0);
    expect_diagnostics(
        "list f = file \"fifo.txt\"\n"
        "list z = file \"/dev/zero\"\n"
        "rule \"a\" at connect when client.ip in f or client.ip in z reject\n",
        {"t.rules:1:15: error: cannot read list file \"" + path("fifo.txt") +
             "\": not a regular file (a FIFO)",
         "t.rules:2:15: error: cannot read list file \"/dev/zero\": not a regular file (a "
         "character device)"},
        base());
}

// A byte-order mark used to become part of the first item, which then never matched.
TEST_F(DiagnosticsFiles, ByteOrderMarkIsDroppedFromRulesAndListFiles) {
    write("r.rules",
          "\xEF\xBB\xBFlist helos = file \"helos.txt\"\n"
          "rule \"a\" at helo when helo in helos reject\n");
    write("helos.txt",
          "\xEF\xBB\xBF"
          "bad.example\r\nworse.example");
    pm::LoadResult result = pm::load_policy_file(path("r.rules"));
    ASSERT_NE(result.policy, nullptr);
    EXPECT_TRUE(diagnostic_lines(result).empty());
    const pm::Condition& c = *result.policy->statements()[0].when;
    EXPECT_TRUE(c.list->contains_host("bad.example"));
    EXPECT_TRUE(c.list->contains_host("worse.example"));  // the last line has no newline
    EXPECT_EQ(c.list->size(), 2u);
}

TEST_F(DiagnosticsFiles, TextFileReadsLinesAndDropsOnlyALeadingBom) {
    write("t.txt",
          "\xEF\xBB\xBF"
          "a\n\xEF\xBB\xBF"
          "b\r\n\nc");
    pm::TextFile f(path("t.txt"), 100);
    ASSERT_TRUE(f.ok()) << f.error();
    std::vector<std::string> lines;
    for (std::string line; f.next_line(line);) lines.push_back(line);
    EXPECT_TRUE(f.ok());
    EXPECT_EQ(lines, (std::vector<std::string>{"a",
                                               "\xEF\xBB\xBF"
                                               "b\r",
                                               "", "c"}));
    pm::TextFile small(path("t.txt"), 5);
    EXPECT_FALSE(small.ok());
    EXPECT_EQ(small.error(), "larger than the limit of 5 bytes");
    pm::TextFile null("/dev/null", 5);  // the customary "nothing", as an empty file
    std::string all = "x";
    EXPECT_TRUE(null.read_all(all));
    EXPECT_EQ(all, "");
}

// A machine-generated feed gone wrong must neither flood the log nor stop the load.
TEST_F(DiagnosticsFiles, BadLinesOfAListFileAreCountedAfterTwenty) {
    std::string feed;
    for (int i = 0; i < 30; ++i) feed += "junk-" + std::to_string(i) + "\n";
    feed += std::string(5000, 'x') + "\n192.0.2.1\n";
    write("feed.txt", feed);
    pm::LoadResult result = pm::load_policy_text(
        "list f = file \"feed.txt\"\nrule \"a\" at connect when client.ip in f reject\n", "t.rules",
        base());
    ASSERT_NE(result.policy, nullptr);
    auto lines = diagnostic_lines(result);
    ASSERT_EQ(lines.size(), 21u);
    EXPECT_EQ(lines[0], path("feed.txt") +
                            ":1:1: warning: list item 'junk-0' is not an IP address or CIDR "
                            "prefix, but client.ip is an IP address (line skipped)");
    EXPECT_EQ(lines[20], path("feed.txt") +
                             ":31:1: warning: 11 more bad lines skipped in list file \"" +
                             path("feed.txt") + "\" (31 in all)");
    EXPECT_TRUE(result.policy->statements()[0].when->list->contains_ip(*pm::parse_ip("192.0.2.1")));
}

TEST_F(DiagnosticsFiles, TextFileCutsLongLinesWithoutKeepingThem) {
    std::string huge(200 << 10, 'z');  // spans several reads
    write("t.txt", "abc\nabcdefgh\nxy\n" + huge + "\nend\n" + huge);
    pm::TextFile f(path("t.txt"), 1 << 20);
    f.set_max_line(4);
    std::vector<std::pair<std::string, bool>> lines;
    for (std::string line; f.next_line(line);) lines.emplace_back(line, f.truncated());
    EXPECT_TRUE(f.ok());
    EXPECT_EQ(lines, (std::vector<std::pair<std::string, bool>>{{"abc", false},
                                                                {"abcd", true},
                                                                {"xy", false},
                                                                {"zzzz", true},
                                                                {"end", false},
                                                                {"zzzz", true}}));
}

TEST_F(DiagnosticsFiles, OverlongListLineIsSkipped) {
    write("l.txt", std::string(100 << 10, '1') + "\n192.0.2.1\n");
    expect_diagnostics(
        "list l = file \"l.txt\"\nrule \"a\" at connect when client.ip in l reject\n",
        {path("l.txt") + ":1:1: warning: line is longer than 64 KiB (line skipped)"}, base());
}

TEST_F(DiagnosticsFiles, LongBadListLineIsQuotedInPart) {
    write("l.txt", std::string(300, 'y') + "\n");
    expect_diagnostics(
        "list l = file \"l.txt\"\nrule \"a\" at connect when client.ip in l reject\n",
        {path("l.txt") + ":1:1: warning: list item '" + std::string(100, 'y') +
         "...' is not an IP address or CIDR prefix, but client.ip is an IP "
         "address (line skipped)"},
        base());
}

TEST(Diagnostics, EmptyRulesFileWarns) {
    expect_diagnostics("", {"t.rules: warning: no rules: every message is accepted"});
    expect_diagnostics("# nothing yet\nlist a = [ 192.0.2.1 ]\n",
                       {"t.rules:2:6: warning: list 'a' is never used",
                        "t.rules: warning: no rules: every message is accepted"});
}

TEST(Diagnostics, InvisibleCharactersAreNamedByCodePoint) {
    EXPECT_EQ(pm::visible_text("a\xC2\xA0"
                               "b\xEF\xBB\xBF"
                               "c\n\xFF\xC3\xA9"),
              "a<U+00A0>b<U+FEFF>c<U+000A><0xFF>\xC3\xA9");
    expect_diagnostics("rule \"a\" at\xC2\xA0helo reject\n",
                       {"t.rules:1:12: error: unexpected character U+00A0 (no-break space)"});
}

// The set of code points shown as <U+XXXX>, pinned against the predicate it was first
// written as, over every code point.
TEST(Diagnostics, InvisibleCodePointsAreExactlyTheListedOnes) {
    auto reference = [](long cp) {
        return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD ||
               cp == 0x034F || cp == 0x061C || cp == 0x115F || cp == 0x1160 || cp == 0x1680 ||
               cp == 0x180E || (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
               (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0x3164 ||
               (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF || cp == 0xFFA0 ||
               (cp >= 0xFFF0 && cp <= 0xFFFB) || (cp >= 0xE0000 && cp <= 0xE0FFF);
    };
    auto utf8 = [](long cp) {
        std::string out;
        auto byte = [&](long b) { out += static_cast<char>(b); };
        if (cp < 0x80) {
            byte(cp);
        } else if (cp < 0x800) {
            byte(0xC0 | (cp >> 6));
            byte(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            byte(0xE0 | (cp >> 12));
            byte(0x80 | ((cp >> 6) & 0x3F));
            byte(0x80 | (cp & 0x3F));
        } else {
            byte(0xF0 | (cp >> 18));
            byte(0x80 | ((cp >> 12) & 0x3F));
            byte(0x80 | ((cp >> 6) & 0x3F));
            byte(0x80 | (cp & 0x3F));
        }
        return out;
    };
    for (long cp = 0; cp <= 0x10FFFF; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;  // surrogates are not UTF-8
        bool shown_by_code = pm::visible_text(utf8(cp)).starts_with("<U+");
        ASSERT_EQ(shown_by_code, reference(cp)) << std::hex << cp;
    }
}

TEST(Diagnostics, ClosestMatch) {
    std::vector<std::string_view> names = {"sender", "client.ip", "connect"};
    EXPECT_EQ(pm::closest_match("sendr", names), "sender");
    EXPECT_EQ(pm::closest_match("client_ip", names), "client.ip");
    EXPECT_EQ(pm::closest_match("CONNECT", names), "connect");
    EXPECT_EQ(pm::closest_match("xyz", names), "");
}

// ---- many errors in one run -------------------------------------------------------------

TEST(Diagnostics, EveryErrorOfTheFileIsReportedInOneRun) {
    expect_diagnostics(
        "list vip = [ \"ceo@example.com\" ]\n"                             // 1
        "list vip = [ \"cfo@example.com\" ]\n"                             // 2 duplicate
        "rule \"a\" at connect when sender in vip reject 550\n"            // 3
        "rule \"b\" at helo when helo == \"x\" reject 550 5.7.1 \"oops\n"  // 4 syntax
        "rule \"c\" at mail when sender in vipp tempfail 452 5.2.2\n"      // 5
        "rule \"c\" at rcpt when recipient == \"u@x\" reject 554\n"        // 6
        "rule \"d\" at rcpt when rcpt.count > ten reject\n"                // 7 syntax
        "rule \"e\" at message when header[\"Subject\"] matches /(/ quarantine \"{nope}\"\n"
        "rule \"f\" at data discard\n"                      // 9
        "rule \"g\" at data when rcpt.count > 1 reject\n",  // 10
        {"t.rules:2:6: error: list 'vip' is already defined at line 1",
         "t.rules:3:26: error: field 'sender' is not available at the connect stage (it is "
         "known from mail on)",
         "t.rules:3:47: error: reply code 550 is not allowed for 'reject' at the connect "
         "stage; allowed: 554, 521",
         "t.rules:4:52: error: unterminated string",
         "t.rules:5:51: error: enhanced status code '5.2.2' has class 5 but reply code 452 "
         "has class 4; the MTA would drop the reply",
         "t.rules:6:6: error: duplicate ID \"c\": already used at line 5",
         "t.rules:6:49: error: reply code 554 is not allowed for 'reject' at the rcpt stage; "
         "allowed: 550, 551, 552, 553, 521, 501, 555 (RFC 5321 has no 554 for RCPT: use 550)",
         "t.rules:7:36: error: expected a number after '>', found 'ten'",
         "t.rules:8:52: error: invalid regex /(/: missing ): (",
         "t.rules:8:69: error: unknown field 'nope' in text",
         "t.rules:10:1: warning: rule \"g\" can never be reached: rule \"f\" at line 9 always "
         "decides the data stage",
         "t.rules:5:33: error: unknown list 'vipp'"});
}

TEST(Diagnostics, UnclosedBraceInTemplate) {
    expect_diagnostics(
        "rule \"a\" at mail when sender == \"a@x\" reject 550 5.7.1 \"x {sender\"\n"
        "rule \"b\" at mail when sender == \"b@x\" reject 550 5.7.1 \"{{sender} is {sender}\"\n",
        {"t.rules:1:59: error: unclosed '{' in text; write '{{' for a literal '{'"});
}

}  // namespace
