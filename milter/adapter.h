// SPDX-License-Identifier: BSD-2-Clause
// The libmilter adapter: turns milter callbacks into facts for a pm::Conversation and
// its decisions into SMFIS_* codes and replies. It knows nothing of the rule syntax.
#pragma once

#include <libmilter/mfapi.h>

#include <functional>
#include <memory>

#include "policy/conversation.h"

namespace pm {

struct AdapterSettings {
    std::function<std::shared_ptr<const Policy>()> policy;  // the latest loaded policy
    std::function<ConversationOptions()> options;           // read at each new connection
    CounterStore* store = nullptr;                          // shared by all connections
    GreylistStore* greylist = nullptr;                      // the same
};

// libmilter callbacks carry no user pointer, so the settings are process-wide. Call once,
// before smfi_register, and keep them alive until smfi_main has returned.
void set_adapter_settings(AdapterSettings settings);

// The filter description to hand to smfi_register.
smfiDesc adapter_description();

}  // namespace pm
