// SPDX-License-Identifier: BSD-2-Clause
#include "milter/limit_control.h"

#include <spdlog/spdlog.h>

#include <span>

#include "config/log_escape.h"
#include "policy/evaluator.h"

namespace pm {

namespace {

ControlReply failed(std::string line) {
    return ControlReply{false, {std::move(line)}};
}

// The limits of the policy, for an unknown ID: "a (key sender), b (key client.ip/64)".
std::string known_limits(const Policy& policy) {
    std::string out;
    for (const auto& st : policy.statements()) {
        if (!st.is_limit()) continue;
        out += (out.empty() ? "" : ", ") + st.id + " (key " + limit_key_fields(*st.limit) + ")";
    }
    return out.empty() ? "the rules have no limit" : "limits: " + out;
}

// Whole seconds, rounded up: "resets in 0s" only once it has.
std::string seconds(std::uint64_t ms) {
    return std::to_string(ms / 1000 + (ms % 1000 != 0)) + "s";
}

// `sender="alice@example.com", client.ip="192.0.2.1"`: the values as given, escaped.
std::string key_text(const Limit& limit, std::span<const std::string> values) {
    std::string out;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) out += ", ";
        out += limit.key[i].field.display();
        if (limit.key[i].prefix_length) out += "/" + std::to_string(*limit.key[i].prefix_length);
        out += "=\"";
        append_log_value(out, values[i], LogValue::Quoted);
        out += '"';
    }
    return out;
}

void add_state(std::vector<std::string>& lines, const Limit& limit, const CounterState& s) {
    lines.push_back("count: " + std::to_string(s.count));
    lines.push_back("max: " + std::to_string(limit.max) + " " +
                    std::string(limit_unit_name(limit.unit)));
    lines.push_back("window: " + std::to_string(limit.window_seconds) + "s");
    lines.push_back("next-drop-in: " + seconds(s.next_drop_ms));
    lines.push_back("resets-in: " + seconds(s.zero_ms));
}

}  // namespace

ControlReply limit_command(const Policy& policy, CounterStore& store,
                           const std::vector<std::string>& words) {
    const bool reset = words.at(0) == "limit-reset";
    if (words.size() < 2) return failed("usage: " + words[0] + " RULE KEY...");
    const std::string& id = words[1];
    const Statement* limit = nullptr;
    for (const auto& st : policy.statements())
        if (st.id == id) limit = &st;
    if (!limit) {
        std::string shown = "\"";
        append_log_value(shown, id, LogValue::Quoted);
        shown += '"';
        return failed("no limit " + shown + " in the running rules; " + known_limits(policy));
    }
    if (!limit->is_limit()) return failed(id + " is a rule, not a limit; " + known_limits(policy));
    std::span<const std::string> values(words.begin() + 2, words.end());
    std::string why;
    auto key = limit_key_of_values(*limit, values, why);
    if (!key) return failed(why);
    ControlReply reply{true, {"limit: " + id, "key: " + key_text(*limit->limit, values)}};
    try {
        CounterState s = reset ? store.reset(*key, limit->limit->window_seconds)
                               : store.inspect(*key, limit->limit->window_seconds);
        add_state(reply.lines, *limit->limit, s);
        if (reset) {
            reply.lines.push_back("reset: the count was " + std::to_string(s.count) +
                                  ", it is 0 now");
            spdlog::info("control: limit-reset {} {}: count was {}", id,
                         key_text(*limit->limit, values), s.count);
        }
    } catch (const StoreError& e) {
        return failed(std::string("counter store: ") + e.what());
    }
    return reply;
}

}  // namespace pm
