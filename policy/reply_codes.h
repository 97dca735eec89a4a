// SPDX-License-Identifier: BSD-2-Clause
// Which SMTP reply codes each stage may answer with (policy-milter.rules(5), REPLY CODES),
// their defaults, and RFC 3463 enhanced status codes checked against the IANA registry.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "policy/stage.h"

namespace pm {

enum class Refusal { Reject, Tempfail };  // 5xx or 4xx

struct ReplyCodeRule {
    std::span<const int> reject_codes;
    std::span<const int> tempfail_codes;
    int default_reject;
    int default_tempfail;
};

const ReplyCodeRule& reply_codes_for(Stage stage);
bool code_allowed(Stage stage, Refusal kind, int code);
int default_code(Stage stage, Refusal kind);
std::string allowed_codes_text(Stage stage, Refusal kind);  // "550, 501, 504, 521"
// greylist: 450 or 451 at rcpt, 451 at data; nothing at other stages.
bool greylist_code_allowed(Stage stage, int code);
std::string greylist_codes_text(Stage stage);  // "450, 451"

struct EnhancedCode {
    int klass = 0;  // 2, 4 or 5
    int subject = 0;
    int detail = 0;

    std::string to_string() const;
    // "X.S.D" form used by the registry.
    std::string registry_key() const;
};

std::optional<EnhancedCode> parse_enhanced_code(std::string_view text);
bool enhanced_code_registered(const EnhancedCode& code);
// Why an enhanced code does not fit a stage (a recipient-address code at mail), or empty.
std::string enhanced_code_stage_mismatch(const EnhancedCode& code, Stage stage);
// X.7.1 by default, 4.7.0 for 421 (policy-milter.rules(5), REPLY CODES).
EnhancedCode default_enhanced_code(int reply_code);

}  // namespace pm
