// SPDX-License-Identifier: BSD-2-Clause
#include "policy/ledger.h"

#include <vector>

namespace pm {

LimitLedger::Check LimitLedger::stage(LimitRequest r) {
    Check check;
    const Limit& limit = *r.statement->limit;
    std::uint64_t committed = 0;
    try {
        committed = store_.count(r.key, limit.window_seconds);
    } catch (const StoreError& e) {
        check.store = failed();
        check.error = e.what();
        return check;
    }
    std::uint64_t already = 0;
    if (auto t = transaction_.find(r.key); t != transaction_.end()) already = t->second.amount;
    check.over = saturating_add(saturating_add(committed, already), r.amount) > limit.max;
    Pending& staged = event_[std::move(r.key)];
    staged.amount = saturating_add(staged.amount, r.amount);
    staged.statement = r.statement;
    staged.enforce = r.enforce;
    return check;
}

LimitLedger::GreylistCheck LimitLedger::greylist(const GreylistRequest& request) {
    GreylistCheck check;
    try {
        if (!greylist_store_) throw StoreError("no greylist store");
        check.answer = greylist_store_->check(request);
    } catch (const StoreError& e) {
        check.store = failed();
        check.error = e.what();
    }
    return check;
}

void LimitLedger::end_event(bool kept) {
    if (event_.empty()) return;  // most events stage no limit
    if (kept)
        for (auto& [key, p] : event_) {
            Pending& total = transaction_[key];
            total.amount = saturating_add(total.amount, p.amount);
            total.statement = p.statement;
            total.enforce = p.enforce;
        }
    event_.clear();
}

LimitLedger::Commit LimitLedger::commit(bool enforce, bool keep_keys) {
    Commit result;
    const Statement* first =
        transaction_.empty() ? nullptr : transaction_.begin()->second.statement;
    std::vector<CounterAdd> adds;
    std::vector<const Statement*> owners;
    for (const auto& [key, p] : transaction_) {
        if (p.amount == 0) continue;
        const Limit& limit = *p.statement->limit;
        std::uint64_t max = enforce && p.enforce ? limit.max : CounterAdd::kNoMax;
        adds.push_back({key, p.amount, limit.window_seconds, max});
        owners.push_back(p.statement);
    }
    if (keep_keys)
        for (auto& entry : transaction_) entry.second.amount = 0;
    else
        transaction_.clear();
    if (adds.empty()) return result;
    try {
        if (auto full = store_.check_and_add(adds)) result.statement = owners[*full];
    } catch (const StoreError& e) {
        result.store = failed();
        result.statement = first;
        result.error = e.what();
    }
    return result;
}

}  // namespace pm
