// SPDX-License-Identifier: BSD-2-Clause
// policy-milter: entry point. The daemon, --check and --test run the same loader.
#include <libmilter/mfapi.h>

#include <iostream>
#include <string>
#include <string_view>

#include "config/options.h"
#include "milter/daemon.h"
#include "milter/startup.h"
#include "policy/policy.h"
#include "policy/test_run.h"

namespace {

std::string count(std::size_t n, const char* what) {
    return std::to_string(n) + ' ' + what + (n == 1 ? "" : "s");
}

// Prints every diagnostic, then the verdict lines; the exit code --check promises. The
// config file's errors, if any, were printed while parsing the options; the start-up
// checks (the same the start runs) follow them and are counted with them, and are
// skipped when the file has errors, since its settings are then not what it means.
int check_all(const pm::Options& options) {
    pm::LoadResult result = pm::load_policy_file(options.rules_file);
    std::size_t errors = options.config_errors, warnings = 0;
    if (errors == 0) {
        pm::StartupPlan plan =
            pm::check_startup(options, pm::StartupPurpose::Check, result.policy.get());
        for (const auto& p : plan.problems) std::cout << p.to_string() << '\n';
        errors += plan.errors();
        warnings += plan.warnings();
    }
    if (errors > 0 || warnings > 0) {
        std::cout << options.config_file << ": ";
        if (errors > 0) std::cout << count(errors, "error") << (warnings > 0 ? ", " : "");
        if (warnings > 0) std::cout << count(warnings, "warning");
        std::cout << '\n';
    }
    int settings_exit = errors > 0 ? 2 : 0;

    for (const auto& d : result.diagnostics.all()) std::cout << d << '\n';
    const auto& diags = result.diagnostics;
    if (!diags.has_errors()) {
        std::cout << options.rules_file << ": rules OK\n";
        return settings_exit;
    }
    std::cout << options.rules_file << ": " << count(diags.error_count(), "error");
    if (diags.warning_count() > 0) std::cout << ", " << count(diags.warning_count(), "warning");
    std::cout << '\n';
    return settings_exit ? settings_exit : 1;
}

// Whether argv asks for something other than running the daemon.
bool is_command(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        for (std::string_view c :
             {"--check", "--test", "--dump-config", "--help", "-h", "--version", "-V"})
            if (a == c) return true;
    }
    return false;
}

int test_transaction(const pm::Options& options) {
    pm::LoadResult result = pm::load_policy_file(options.rules_file);
    for (const auto& d : result.diagnostics.all()) std::cerr << d << '\n';
    if (!result.policy) return 1;
    return pm::run_test_transaction(result.policy, options.test, options.conversation(), std::cout,
                                    std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
    pm::Options options;
    if (auto exit_code = pm::parse_options(argc, argv, options, std::cout, std::cerr)) {
        if (options.mode == pm::Mode::Version) {
            unsigned major = 0, minor = 0, patch = 0;
            smfi_version(&major, &minor, &patch);
            std::cout << "libmilter " << major << '.' << minor << '.' << patch << '\n';
        }
        // A daemon whose command line or config file is wrong fails the same way at
        // every start: EX_CONFIG, which the systemd unit does not restart.
        if (*exit_code == 2 && !is_command(argc, argv)) {
            std::cerr << "policy-milter: not started: errors in the command line or "
                      << options.config_file << '\n';
            return pm::kExitConfig;
        }
        return *exit_code;
    }
    switch (options.mode) {
        case pm::Mode::Check: return check_all(options);
        case pm::Mode::DumpConfig: return pm::dump_config(options, std::cout, std::cerr) ? 0 : 1;
        case pm::Mode::Test: return test_transaction(options);
        case pm::Mode::Run: return pm::run_daemon(options, argc, argv);
        default: return 0;  // help and version were handled while parsing
    }
}
