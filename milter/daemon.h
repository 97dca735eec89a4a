// SPDX-License-Identifier: BSD-2-Clause
// The milter daemon (policy-milter(8), DESCRIPTION and SIGNALS): load the rules, open the
// socket, drop privileges, run libmilter, reload on SIGHUP/SIGUSR1 and stop on SIGTERM/SIGINT.
#pragma once

#include "config/options.h"

namespace pm {

// Runs until stopped; returns the process exit code. argc/argv are kept to re-read the
// config file on reload.
int run_daemon(const Options& options, int argc, const char* const argv[]);

}  // namespace pm
