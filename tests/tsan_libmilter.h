// SPDX-License-Identifier: BSD-2-Clause
// ThreadSanitizer suppressions for the daemon under test, for libmilter's own code only.
// - Its exit handlers mi_closener() and mi_stop_milters(), run by exit() after smfi_main()
//   has returned, lock the listener's mutex that mi_listener() destroyed on its way out
//   ("use of an invalid mutex", "data race" at every stop).
// - smfi_stop() -> mi_stop_milters(), called by the daemon's main thread on SIGTERM, locks
//   a mutex that smfi_main()'s thread initialised, with no synchronisation between the two
//   that TSan can see ("data race", now and then).
// - Its worker pool (the global Tskmgr, driven by mi_pool_controller and mi_worker), linked
//   statically since the sigwait wrapper: at stop the controller destroys the pool's mutex
//   while a worker may still wait on or release it ("destroy of a locked mutex", "unlock of
//   an unlocked mutex" in mi_worker, "data race" in the worker's timed wait).
// Matched by function (never mi_worker, which is under every callback of ours) or by the
// global the report names, so these hide nothing of the adapter's.
#pragma once

#include <string>

inline std::string tsan_suppressions() {
    return "race:mi_closener\n"
           "mutex:mi_closener\n"
           "race:mi_stop_milters\n"
           "mutex:mi_stop_milters\n"
           "race:mi_pool_controller\n"
           "mutex:mi_pool_controller\n"
           "race:Tskmgr\n"
           "mutex:Tskmgr\n";
}
