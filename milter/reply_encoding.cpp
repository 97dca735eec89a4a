// SPDX-License-Identifier: BSD-2-Clause
#include "milter/reply_encoding.h"

namespace pm {

std::string_view milter_fitting_prefix(std::string_view text) {
    std::size_t octets = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        octets += text[i] == '%' ? 2 : 1;
        if (octets > kMaxMilterReplyText) return text.substr(0, i);
    }
    return text;
}

namespace {

void fit(std::optional<Reply>& reply) {
    if (reply) reply->text.resize(milter_fitting_prefix(reply->text).size());
}

}  // namespace

void fit_replies_for_milter(Decision& d) {
    fit(d.reply);
    for (auto& hit : d.observed) fit(hit.reply);
    for (auto& hit : d.added) fit(hit.reply);
}

std::string milter_reply_text(const Reply& reply) {
    std::string out;
    out.reserve(reply.text.size());
    for (char c : reply.text) {
        out += c;
        if (c == '%') out += '%';
    }
    return out;
}

}  // namespace pm
