// SPDX-License-Identifier: BSD-2-Clause
// libFuzzer target: any bytes as a rules file. The loader must report diagnostics, never
// crash, hang or leak; a policy that loads must evaluate a transaction safely.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/conversation.h"
#include "policy/policy.h"
#include "store/memory_counter_store.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    // List files named by the input resolve under a directory that does not exist.
    pm::LoadResult result = pm::load_policy_text(text, "fuzz.rules", "/nonexistent-pm-fuzz");
    for (const auto& d : result.diagnostics.all()) (void)d.to_string();
    if (!result.policy) return 0;

    pm::MemoryCounterStore store;
    auto policy = result.policy;
    pm::Conversation conv(policy, store);
    conv.connect(pm::parse_ip("2001:db8::1"), "mx.example.net", 25);
    conv.helo("mx.example.net");
    conv.mail("<a%b@example.net>", "user", 1234, true);
    conv.rcpt("<r\r\n@example.org>");
    conv.rcpt("<x@y>");
    conv.data();
    conv.header("Subject", "hello \xff world");
    conv.body_bytes(100);
    conv.message();
    return 0;
}
