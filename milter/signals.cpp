// SPDX-License-Identifier: BSD-2-Clause
// Why only the daemon's own thread can take SIGHUP, SIGUSR1, SIGTERM and SIGINT.
//
// smfi_main() starts a signal thread of libmilter's (mi_signal_thread in libmilter's
// signal.c) that blocks SIGHUP, SIGTERM and SIGINT and sigwait()s for them; on any of the
// three it stops the milter, and smfi_main() returns MI_SUCCESS. While that thread waits,
// the kernel counts the signals as unblocked in it, so a process-directed SIGHUP may go
// there instead of to the daemon's reload: measured on the old code, SIGUSR1 followed at
// once by SIGHUP, 500 times, sent 262 of the SIGHUPs to libmilter, which stopped the
// milter with exit status 0 (and Restart=on-failure did not restart it). Nothing about
// thread masks or handlers in the daemon can prevent that: only what libmilter's thread
// waits for can.
//
// So libmilter never waits for the daemon's signals. libmilter is linked statically
// (milter/CMakeLists.txt) with -Wl,--wrap=sigwait: its call to sigwait() becomes a call
// to __wrap_sigwait() below, which drops the daemon's signals from the set. libmilter's
// set is exactly SIGHUP, SIGTERM and SIGINT, so its thread waits on an empty set, that
// is, for ever (glibc's sigwait() retries on EINTR, and so does libmilter).
//
// Why this way rather than the alternatives:
//  - Defining sigwait() in the executable, so that libmilter.so's PLT binds to it, also
//    works, but replaces sigwait() for every library in the process, can only guess the
//    caller from the set it passes, and a libmilter.so updated under the binary could
//    change how it waits without anyone rebuilding or re-testing. --wrap reaches exactly
//    the references inside libmilter.a, fixed at link time, and the libmilter whose signal
//    code was read and tested is the one in the binary (tests/protocol,
//    Signals.ThreeHundredReloadPairsKeepTheMilterServing).
//  - Handling the signals in the main thread while it runs with them unblocked (the
//    previous design) relies on Linux offering a process-directed signal first to the
//    thread-group leader. It does so only when that thread has no signal pending: a
//    SIGHUP right behind a SIGUSR1 still goes to libmilter's waiting thread.
//
// The main thread itself blocks the four signals too, like every other thread, and
// reads them from a signalfd in its poll loop: a signal stays pending for the process
// until that read, no thread can take it in between, nothing runs in signal context,
// and signals that arrive during a reload are coalesced by the kernel.
#include "milter/signals.h"

#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pm {

namespace {

constexpr int kDaemonSignals[] = {SIGHUP, SIGUSR1, SIGTERM, SIGINT};

sigset_t daemon_signal_set() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : kDaemonSignals) sigaddset(&set, sig);
    return set;
}

}  // namespace

void block_daemon_signals() {
    sigset_t set = daemon_signal_set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::optional<int> open_signal_fd(std::string& why) {
    sigset_t set = daemon_signal_set();
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        why = std::string("signalfd: ") + std::strerror(errno);
        return std::nullopt;
    }
    return fd;
}

std::vector<int> take_signals(int fd) {
    std::vector<int> taken;
    signalfd_siginfo info[8];
    for (;;) {
        ssize_t n = read(fd, info, sizeof info);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // EAGAIN: nothing more pending
        for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof info[0]); ++i)
            taken.push_back(static_cast<int>(info[i].ssi_signo));
    }
    return taken;
}

const char* signal_name(int sig) {
    switch (sig) {
        case SIGHUP: return "SIGHUP";
        case SIGUSR1: return "SIGUSR1";
        case SIGTERM: return "SIGTERM";
        case SIGINT: return "SIGINT";
        default: return "a signal";
    }
}

}  // namespace pm

// The two ends of -Wl,--wrap=sigwait (see the top of this file). Only libmilter.a's
// objects call sigwait(); the daemon waits through its signalfd.
extern "C" int __real_sigwait(const sigset_t* set, int* sig);

extern "C" int __wrap_sigwait(const sigset_t* set, int* sig) {
    sigset_t without = *set;
    for (int daemon_signal : pm::kDaemonSignals) sigdelset(&without, daemon_signal);
    return __real_sigwait(&without, sig);
}
