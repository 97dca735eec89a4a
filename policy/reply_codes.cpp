// SPDX-License-Identifier: BSD-2-Clause
#include "policy/reply_codes.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <set>

// The registry file shipped beside this source, embedded at build time (cmake/embed.cmake).
extern "C" const char pm_enhanced_status_codes_tsv[];

namespace pm {

namespace {

// Spec §7. Sources: RFC 5321 §4.3.2 and the classic per-command table; 421 is legal
// for every RFC 5321 command (§3.8), not for ETRN, whose own RFC 1985 codes are listed
// below; 521 at connect per RFC 7504. 554 at rcpt is refused on
// purpose: neither source allows it there.
constexpr int kConnectReject[] = {554, 521};
constexpr int kConnectTempfail[] = {421};
constexpr int kHeloReject[] = {550, 501, 504, 521};
constexpr int kHeloTempfail[] = {421};
constexpr int kMailReject[] = {550, 552, 553, 501, 555};
constexpr int kMailTempfail[] = {421, 451, 452, 455};
constexpr int kRcptReject[] = {550, 551, 552, 553, 521, 501, 555};
constexpr int kRcptTempfail[] = {421, 450, 451, 452, 455};
constexpr int kDataReject[] = {554};
constexpr int kDataTempfail[] = {421, 451};
constexpr int kMessageReject[] = {554, 550, 552};
constexpr int kMessageTempfail[] = {421, 450, 451, 452};
// An unrecognised command: the table's codes for a command the server does not know or
// implement (500, 502, 504) or whose parameters it cannot parse (501). The default is what
// Postfix itself answers, 502.
constexpr int kUnknownReject[] = {500, 501, 502, 504};
constexpr int kUnknownTempfail[] = {421};
// Policy delegation only. VRFY: RFC 5321 §4.3.2 (550, 551, 553, 502, 504; 421, 450).
// ETRN: RFC 1985's 458 (unable to queue) and 459 (node not allowed), and 500, 501.
constexpr int kVrfyReject[] = {550, 551, 553, 502, 504};
constexpr int kVrfyTempfail[] = {421, 450};
constexpr int kEtrnReject[] = {500, 501};
constexpr int kEtrnTempfail[] = {458, 459};

const std::array<ReplyCodeRule, kStageCount> kRules = {{
    {kConnectReject, kConnectTempfail, 554, 421},
    {kHeloReject, kHeloTempfail, 550, 421},
    {kMailReject, kMailTempfail, 550, 451},
    {kRcptReject, kRcptTempfail, 550, 450},
    {kDataReject, kDataTempfail, 554, 451},
    {kMessageReject, kMessageTempfail, 554, 451},
    {kUnknownReject, kUnknownTempfail, 502, 421},
    {kVrfyReject, kVrfyTempfail, 550, 450},
    {kEtrnReject, kEtrnTempfail, 501, 459},
}};

const std::set<std::string>& registry() {
    static const std::set<std::string> codes = [] {
        std::set<std::string> out;
        std::string_view text(pm_enhanced_status_codes_tsv);
        while (!text.empty()) {
            auto eol = text.find('\n');
            std::string_view line = text.substr(0, eol);
            text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
            if (line.empty() || line[0] == '#') continue;
            out.emplace(line.substr(0, line.find('\t')));
        }
        return out;
    }();
    return codes;
}

bool parse_int(std::string_view text, int& out) {
    // RFC 3463 numbers have 1 to 3 digits; "01" is not a number it allows.
    if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return false;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && ptr == text.data() + text.size();
}

}  // namespace

const ReplyCodeRule& reply_codes_for(Stage stage) {
    return kRules[stage_index(stage)];
}

bool code_allowed(Stage stage, Refusal kind, int code) {
    const auto& r = reply_codes_for(stage);
    auto codes = kind == Refusal::Reject ? r.reject_codes : r.tempfail_codes;
    for (int c : codes)
        if (c == code) return true;
    return false;
}

int default_code(Stage stage, Refusal kind) {
    const auto& r = reply_codes_for(stage);
    return kind == Refusal::Reject ? r.default_reject : r.default_tempfail;
}

std::string allowed_codes_text(Stage stage, Refusal kind) {
    const auto& r = reply_codes_for(stage);
    std::string out;
    for (int c : kind == Refusal::Reject ? r.reject_codes : r.tempfail_codes) {
        if (!out.empty()) out += ", ";
        out += std::to_string(c);
    }
    return out;
}

namespace {
// Greylisting asks for a retry of the recipient (rcpt) or of the message (data).
constexpr int kGreylistRcpt[] = {450, 451};
constexpr int kGreylistData[] = {451};

std::span<const int> greylist_codes(Stage stage) {
    if (stage == Stage::Rcpt) return kGreylistRcpt;
    if (stage == Stage::Data) return kGreylistData;
    return {};
}
}  // namespace

bool greylist_code_allowed(Stage stage, int code) {
    auto codes = greylist_codes(stage);
    return std::find(codes.begin(), codes.end(), code) != codes.end();
}

std::string greylist_codes_text(Stage stage) {
    std::string out;
    for (int c : greylist_codes(stage)) {
        if (!out.empty()) out += ", ";
        out += std::to_string(c);
    }
    return out;
}

std::string EnhancedCode::to_string() const {
    return std::to_string(klass) + '.' + std::to_string(subject) + '.' + std::to_string(detail);
}

std::string EnhancedCode::registry_key() const {
    return "X." + std::to_string(subject) + '.' + std::to_string(detail);
}

std::optional<EnhancedCode> parse_enhanced_code(std::string_view text) {
    // RFC 3463: class "." subject "." detail; subject and detail 1 to 3 digits.
    auto dot1 = text.find('.');
    if (dot1 == std::string_view::npos) return std::nullopt;
    auto dot2 = text.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos) return std::nullopt;
    EnhancedCode code;
    if (!parse_int(text.substr(0, dot1), code.klass) ||
        !parse_int(text.substr(dot1 + 1, dot2 - dot1 - 1), code.subject) ||
        !parse_int(text.substr(dot2 + 1), code.detail))
        return std::nullopt;
    if (dot1 != 1 || (code.klass != 2 && code.klass != 4 && code.klass != 5)) return std::nullopt;
    return code;
}

bool enhanced_code_registered(const EnhancedCode& code) {
    return registry().count(code.registry_key()) > 0;
}

std::string enhanced_code_stage_mismatch(const EnhancedCode& code, Stage stage) {
    if (code.subject != 1) return {};
    bool recipient_code = (code.detail >= 1 && code.detail <= 6) || code.detail == 10;
    bool sender_code = code.detail == 7 || code.detail == 8;
    if ((recipient_code || sender_code) && stage == Stage::Unknown)
        return "describes an address, which the unknown stage does not have";
    if (recipient_code && (stage_index(stage) < stage_index(Stage::Rcpt) || stage == Stage::Etrn))
        return "describes a recipient address, which the " + std::string(stage_name(stage)) +
               " stage does not have yet";
    if (sender_code && (stage_index(stage) < stage_index(Stage::Mail) || stage == Stage::Vrfy ||
                        stage == Stage::Etrn))
        return "describes the sender's address, which the " + std::string(stage_name(stage)) +
               " stage does not have yet";
    return {};
}

EnhancedCode default_enhanced_code(int reply_code) {
    if (reply_code == 421) return {4, 7, 0};
    return {reply_code / 100, 7, 1};
}

}  // namespace pm
