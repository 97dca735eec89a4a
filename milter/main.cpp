// policy-milter: entry point. The daemon, --check and --test run the same loader.
#include <libmilter/mfapi.h>

#include <iostream>

#include "config/options.h"
#include "milter/daemon.h"
#include "policy/policy.h"
#include "policy/test_run.h"

namespace {

// Prints every diagnostic, then the verdict line; the exit code --check promises. The
// config file's errors, if any, were printed while parsing the options.
int check_rules(const pm::Options& options) {
    pm::LoadResult result = pm::load_policy_file(options.rules_file);
    for (const auto& d : result.diagnostics.all()) std::cout << d << '\n';
    const auto& diags = result.diagnostics;
    if (!diags.has_errors()) {
        std::cout << options.rules_file << ": rules OK\n";
        return options.config_errors > 0 ? 2 : 0;
    }
    std::cout << options.rules_file << ": " << diags.error_count()
              << (diags.error_count() == 1 ? " error" : " errors");
    if (diags.warning_count() > 0)
        std::cout << ", " << diags.warning_count()
                  << (diags.warning_count() == 1 ? " warning" : " warnings");
    std::cout << '\n';
    return options.config_errors > 0 ? 2 : 1;
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
        return *exit_code;
    }
    switch (options.mode) {
        case pm::Mode::Check: return check_rules(options);
        case pm::Mode::Test: return test_transaction(options);
        case pm::Mode::Run: return pm::run_daemon(options, argc, argv);
        default: return 0;  // help and version were handled while parsing
    }
}
