// SPDX-License-Identifier: BSD-2-Clause
// The daemon's signals: SIGHUP and SIGUSR1 reload, SIGTERM and SIGINT stop. Only the
// daemon's main thread ever takes them (milter/signals.cpp says how and why).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pm {

// Blocks the daemon's signals in the calling thread. Call it before any other thread
// exists: every thread started later (libmilter's included) inherits the block.
void block_daemon_signals();

// A non-blocking signalfd for the daemon's signals, or nullopt with the reason in `why`.
std::optional<int> open_signal_fd(std::string& why);

// The daemon's signals pending on `fd`, in the order they were taken; each standard
// signal at most once however often it was sent.
std::vector<int> take_signals(int fd);

const char* signal_name(int sig);

}  // namespace pm
