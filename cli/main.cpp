// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	main - policy-milter's entry point
// DESCRIPTION
//	Parses the command line and the config file, then runs the mode they ask for:
//	--check (cli/check.h), --test (cli/test_run.h), --dump-config, --report
//	(cli/report.h), or the daemon
//	(milter/daemon.h). All of them load the rules through the same loader.
#include <libmilter/mfapi.h>

#include <iostream>
#include <string_view>

#include "cli/check.h"
#include "cli/ctl.h"
#include "cli/report.h"
#include "cli/test_run.h"
#include "config/options.h"
#include "milter/daemon.h"
#include "milter/startup.h"
#include "policy/policy.h"

namespace {

// Whether argv asks for something other than running the daemon.
bool is_command(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        for (std::string_view c : {"--check", "--test", "--dump-config", "--ctl", "--report",
                                   "--help", "-h", "--version", "-V"})
            if (a == c) return true;
    }
    return false;
}

int test_transaction(const pm::Options& options) {
    pm::LoadResult result = pm::load_policy_file(options.rules_file);
    for (const auto& d : result.diagnostics.all()) std::cerr << d << '\n';
    if (!result.policy) return 1;
    return pm::run_test_transaction(result.policy, options.test, options.conversation(), std::cout,
                                    std::cerr, options.dns_servers);
}

// Help and version were printed while parsing; --version adds libmilter's.
int parsed_only(const pm::Options& options, int exit_code, int argc, char** argv) {
    if (options.mode == pm::Mode::Version) {
        unsigned major = 0, minor = 0, patch = 0;
        smfi_version(&major, &minor, &patch);
        std::cout << "libmilter " << major << '.' << minor << '.' << patch << '\n';
    }
    // A daemon whose command line or config file is wrong fails the same way at every
    // start: EX_CONFIG, which the systemd unit does not restart.
    if (exit_code == 2 && !is_command(argc, argv)) {
        std::cerr << "policy-milter: not started: errors in the command line or "
                  << options.config_file << '\n';
        return pm::kExitConfig;
    }
    return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
    pm::Options options;
    if (auto exit_code = pm::parse_options(argc, argv, options, std::cout, std::cerr))
        return parsed_only(options, *exit_code, argc, argv);
    switch (options.mode) {
        case pm::Mode::Check: return pm::check_all(options);
        case pm::Mode::DumpConfig: return pm::dump_config(options, std::cout, std::cerr) ? 0 : 1;
        case pm::Mode::Test: return test_transaction(options);
        case pm::Mode::Ctl: return pm::run_ctl(options, std::cout, std::cerr);
        case pm::Mode::Report:
            return pm::run_report(options.report_files, options.syslog_name, std::cout, std::cerr);
        case pm::Mode::Run: return pm::run_daemon(options, argc, argv);
        case pm::Mode::Help:
        case pm::Mode::Version: return 0;  // handled while parsing
    }
    return 0;
}
