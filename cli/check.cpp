// SPDX-License-Identifier: BSD-2-Clause
#include "cli/check.h"

#include <cstddef>
#include <iostream>
#include <string>

#include "milter/startup.h"
#include "policy/policy.h"

namespace pm {

namespace {

std::string count(std::size_t n, const char* what) {
    return std::to_string(n) + ' ' + what + (n == 1 ? "" : "s");
}

// The config file's errors, if any, were printed while parsing the options; the start-up
// checks (the same the start runs) follow them and are counted with them, and are
// skipped when the file has errors, since its settings are then not what it means.
// Returns the settings' exit code: 2 with errors, else 0.
int check_settings(const Options& options, const Policy* policy) {
    std::size_t errors = options.config_errors, warnings = 0;
    if (errors == 0) {
        StartupPlan plan = check_startup(options, StartupPurpose::Check, policy);
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
    return errors > 0 ? 2 : 0;
}

}  // namespace

int check_all(const Options& options) {
    LoadResult result = load_policy_file(options.rules_file);
    int settings_exit = check_settings(options, result.policy.get());

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

}  // namespace pm
