// SPDX-License-Identifier: BSD-2-Clause
// NAME
//	check - policy-milter --check
// SYNOPSIS
//	#include "cli/check.h"
//
//	int check_all(const Options& options);
// DESCRIPTION
//	Loads the rules as the daemon would and runs the start-up checks the start runs,
//	printing every diagnostic in compiler style and a verdict line for each file
//	(policy-milter.rules(5), CHECKING AND TESTING; policy-milter(8), EXIT STATUS).
#pragma once

#include "config/options.h"

namespace pm {

// Prints every diagnostic, then the verdict lines; returns the exit code --check
// promises: 0 when all is well, 1 for errors in the rules, 2 for errors in the settings.
int check_all(const Options& options);

}  // namespace pm
