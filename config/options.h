// SPDX-License-Identifier: BSD-2-Clause
// The command line and the daemon's config file (policy-milter(8), OPTIONS;
// policy-milter.conf(5)), through Boost.Program_options.
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "config/test_transaction.h"
#include "policy/conversation.h"

namespace pm {

inline constexpr const char* kDefaultConfigFile = "/etc/policy-milter/policy-milter.conf";
inline constexpr const char* kDefaultRulesFile = "/etc/policy-milter/rules.conf";
inline constexpr const char* kDefaultSocket = "unix:/run/policy-milter/policy-milter.sock";
inline constexpr const char* kDefaultControl = "unix:/run/policy-milter/control.sock";

enum class Mode { Run, Check, Test, DumpConfig, Report, Help, Version, Ctl };

struct Options {
    Mode mode = Mode::Run;
    std::string config_file = kDefaultConfigFile;
    std::string rules_file = kDefaultRulesFile;
    std::string socket = kDefaultSocket;
    bool foreground = false;
    std::string log = "syslog";
    std::string log_level = "info";
    bool observe = false;
    bool soft_bounce = false;
    std::string user;
    unsigned socket_mode = 0660;   // permissions of a unix socket
    std::string socket_group;      // group of a unix socket; empty: that of `user`
    std::string store = "memory";  // where limit counters live: memory or redis://...
    std::string redis_password_file;
    std::string redis_prefix = "pm:";
    unsigned redis_timeout_ms = 50;
    StoreErrorMode store_on_error = StoreErrorMode::Tempfail;
    std::string pid_file;                       // empty: none
    std::string syslog_facility = "mail";       // as Postfix's syslog_facility
    std::string syslog_name = "policy-milter";  // as Postfix's syslog_name: the ident
    std::string control = kDefaultControl;      // the control socket: unix:PATH or none
    bool control_explicit = false;              // set, not the default: a failure stops the start
    std::uint64_t stats_interval = 3600;        // seconds between stats: lines; 0: none
    std::string metrics;                        // HOST:PORT of /metrics; empty: none
    std::uint64_t body_scan_limit = kDefaultBodyScanLimit;  // bytes of a body scanned
    std::string
        policy_socket;  // Postfix policy delegation: unix:PATH or inet:PORT@HOST; empty: off
    std::string state_dir = "/var/lib/policy-milter";  // the greylist's state file
    GreylistSettings greylist;                         // greylist-ipv4-prefix ...
    std::uint64_t greylist_max_entries = 1'000'000;
    std::uint64_t greylist_save_interval = 600;  // seconds; 0: at stop only
    std::string dns_servers;                     // as written; empty: resolv.conf's
    std::uint64_t dns_timeout_ms = 2000;         // DNS lists: the longest wait per stage
    TestTransaction test;
    std::vector<std::string> ctl;           // --ctl: the command and its arguments
    std::vector<std::string> report_files;  // --report: the files named, "-" for stdin
    std::size_t config_errors = 0;          // --check: errors of the config file, already printed
    // Where a setting from the config file was written ("FILE:LINE:COL"), by key; a key
    // that is absent came from the command line or is a default.
    std::map<std::string, std::string> origins;

    ConversationOptions conversation() const;
};

// The effective value of every daemon option, one `key = value` line each in the order
// of --help, so that the output is itself a config file (--dump-config). A key without a
// value (user unset) is written as a comment, `# user =`. Returns false, after writing
// the rest, if a value cannot be written in the file's syntax (a '#', blanks at its ends).
bool dump_config(const Options& options, std::ostream& out, std::ostream& err);

// Parses argv, then the config file (the command line wins). Returns the exit code to
// stop with (usage error: 2) or nullopt to go on. Help and --version print to `out`.
std::optional<int> parse_options(int argc, const char* const argv[], Options& options,
                                 std::ostream& out, std::ostream& err);

}  // namespace pm
