// SPDX-License-Identifier: BSD-2-Clause
// `policy-milter [-c FILE] --ctl COMMAND [ARG...]` (policy-milter(8), CONTROL SOCKET): one
// request to the running daemon's control socket, found by the `control` setting of the
// config file, and its reply on stdout (ok) or stderr (failed).
#pragma once

#include <ostream>

#include "config/options.h"

namespace pm {

// Exit codes: 0 ok, 1 the command failed or the daemon cannot be reached, 2 usage.
int run_ctl(const Options& options, std::ostream& out, std::ostream& err);

}  // namespace pm
