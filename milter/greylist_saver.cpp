// SPDX-License-Identifier: BSD-2-Clause
#include "milter/greylist_saver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

namespace pm {

void GreylistSaver::start(GreylistStore& store, const std::string& state_dir,
                          std::uint64_t interval_s) {
    if (!store.keeps_state()) return;
    store_ = &store;
    path_ = state_dir + (state_dir.ends_with('/') ? "" : "/") + "greylist.state";
    interval_ = std::chrono::seconds(interval_s);
    next_ = std::chrono::steady_clock::now() + interval_;
    std::string why;
    if (store.load(path_, why))
        spdlog::info("greylist: {} entries loaded from {}", store.size_hint(), path_);
    else
        spdlog::warn("greylist: {}", why);
}

void GreylistSaver::save() {
    if (!store_ || store_->unsaved() == 0) return;
    try {
        store_->save(path_);
    } catch (const std::exception& e) {
        spdlog::warn("greylist: cannot save its entries: {}", e.what());
    }
}

void GreylistSaver::save_when_due() {
    if (!store_ || interval_.count() == 0) return;
    auto now = std::chrono::steady_clock::now();
    if (now < next_) return;
    save();
    next_ = now + interval_;
}

int GreylistSaver::timeout_ms() const {
    if (!store_ || interval_.count() == 0) return -1;
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(next_ - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 3600 * 1000));
}

}  // namespace pm
