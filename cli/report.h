// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	report - policy-milter --report: a summary of the decision lines in syslog files
// SYNOPSIS
//	#include "cli/report.h"
//
//	int run_report(const std::vector<std::string>& files, std::string_view ident,
//		std::ostream& out, std::ostream& err);
// DESCRIPTION
//	Reads syslog files (plain or gzip, "-" for stdin), picks out policy-milter's lines
//	and prints a summary in the manner of pflogsumm (policy-milter(8), REPORT). The
//	parsers are exposed for the unit tests: what a hostile client wrote into a decision
//	line (milter/decision_log.h) must never be read back as another key.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pm {

// The fixed and optional keys of one decision line, unescaped. An absent value ("-":
// no rule, no HELO or MAIL yet, no recipient at this stage) is nullopt.
struct DecisionLine {
    std::string queue_id;  // "NOQUEUE" before the MTA names one
    std::string client_name, client_ip;
    std::string stage;
    std::optional<std::string> rule;
    std::string action;  // reject, would-reject, continue, ...
    std::optional<std::string> reply;
    std::optional<std::string> helo, from, to;
    std::optional<std::string> header, reason, error;
    std::optional<std::uint64_t> nrcpt;
};

// The message part of a decision line, or nullopt if `message` is not one: every fixed
// key in its order, each value well-formed, the optional keys only after to=, nothing
// else. A truncated line is not one.
std::optional<DecisionLine> parse_decision_line(std::string_view message);

// One line of a syslog file: "Mmm dd hh:mm:ss HOST IDENT[PID]: MESSAGE" (traditional)
// or "YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|+hhmm) HOST IDENT[PID]: MESSAGE" (RFC 3339:
// rsyslog's high precision format, journalctl -o short-iso); "[PID]" is optional.
struct SyslogLine {
    std::int64_t time = 0;  // seconds since the epoch
    std::string_view ident;
    std::string_view message;
};

// `now`: the time a traditional timestamp (no year, local time) is taken to be before:
// its year is now's, or the year before if that would put it more than a day ahead.
std::optional<SyslogLine> parse_syslog_line(std::string_view line, std::int64_t now);

// Counts per value, bounded in memory whatever the log holds (a flood of distinct
// senders, or lines other programs forged in the decision format): a value is cut to
// kMaxValueBytes, and once kMaxValues distinct values are held, adding one more folds
// the least counted half into `folded`. A value folded and seen again starts from zero,
// so its count can be low by at most `max_folded`.
class Tally {
  public:
    static constexpr std::size_t kMaxValues = 50000;
    static constexpr std::size_t kMaxValueBytes = 512;

    void add(std::string_view value);
    const std::unordered_map<std::string, std::uint64_t>& counts() const { return counts_; }
    bool empty() const { return counts_.empty() && folded_values == 0; }

    std::uint64_t folded_values = 0;  // distinct values dropped, over all folds
    std::uint64_t folded_count = 0;   // what they had counted
    std::uint64_t max_folded = 0;     // the largest count dropped

  private:
    void fold();
    // Hashed: a map's string compares were most of the time on a large log.
    std::unordered_map<std::string, std::uint64_t> counts_;
};

// What the report counts; filled line by line, printed at the end.
struct ReportData {
    std::uint64_t lines = 0, decisions = 0, skipped_long = 0;
    std::optional<std::int64_t> first, last;
    Tally by_rule;  // "rule=R action=A stage=S"
    Tally by_action, by_stage, reply_codes;
    Tally refused_clients, refused_senders, refused_recipients;
    Tally store_errors;  // by message
    std::uint64_t reloads_ok = 0, reloads_failed = 0;
};

// Counts one syslog line whose ident is `ident` (any ident for a decision line).
void report_line(ReportData& data, std::string_view line, std::string_view ident, std::int64_t now);

void print_report(const ReportData& data, std::ostream& out);

// No files: /var/log/mail.log. Exit 0, or 1 if a file could not be read.
inline constexpr const char* kDefaultReportFile = "/var/log/mail.log";
int run_report(const std::vector<std::string>& files, std::string_view ident, std::ostream& out,
               std::ostream& err);

}  // namespace pm
