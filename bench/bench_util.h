// SPDX-License-Identifier: BSD-2-Clause
// Helpers shared by the policy benchmarks: loading a policy loudly, finding its lists,
// reading the process's memory from /proc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace pm::bench {

// The data directory: $PM_BENCH_DATA if set, else the one bench/gen-large-policy fills.
std::string data_dir();

// load_policy_file, printing every diagnostic; exits with a message if the policy has
// errors (a benchmark of a policy that does not load measures nothing).
std::shared_ptr<const Policy> load_or_die(const std::string& path);

// The distinct compiled lists the policy's conditions use.
std::vector<const ListMatcher*> policy_lists(const Policy& policy);

// Sum of the sizes on disk of the list files the policy read (not the rules file).
std::uint64_t list_files_bytes(const Policy& policy);

// A "VmRSS" / "VmHWM" line of /proc/self/status, in bytes; 0 if unavailable.
std::uint64_t proc_status_bytes(const char* key);

}  // namespace pm::bench
