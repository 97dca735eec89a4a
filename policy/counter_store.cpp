// SPDX-License-Identifier: BSD-2-Clause
#include "policy/counter_store.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>

namespace pm {

// One digest context per thread: EVP's per-call set-up costs more than hashing a short key.
std::array<unsigned char, 32> sha256(std::initializer_list<std::string_view> pieces) {
    struct Ctx {
        EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        ~Ctx() {
            EVP_MD_CTX_free(ctx);
            EVP_MD_free(md);
        }
    };
    thread_local Ctx c;
    std::array<unsigned char, 32> out{};
    unsigned len = 0;
    if (!c.md || !c.ctx || EVP_DigestInit_ex2(c.ctx, c.md, nullptr) != 1)
        throw StoreError("SHA-256 is not available from libcrypto");
    for (std::string_view p : pieces) EVP_DigestUpdate(c.ctx, p.data(), p.size());
    if (EVP_DigestFinal_ex(c.ctx, out.data(), &len) != 1 || len != out.size())
        throw StoreError("SHA-256 failed");
    return out;
}

namespace {

void append_hash(std::string& out, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    auto h = sha256({text});
    out += '#';
    for (std::size_t i = 0; i < 16; ++i) {
        out += kHex[h[i] >> 4];
        out += kHex[h[i] & 15];
    }
}

void append_key_part(std::string& out, std::string_view part) {
    if (part.size() <= kMaxRawKeyPart && (part.empty() || part.front() != '#'))
        out.append(part);
    else
        append_hash(out, part);
}

// A key whose parts are each short can still be long: a header value can hold \x1f
// and split itself into thousands of short parts. Past this, the values go as one hash.
constexpr std::size_t kMaxStorageKey = 512;

}  // namespace

Clock system_clock_ms() {
    return [] {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now().time_since_epoch())
                                              .count());
    };
}

std::uint64_t slot_length_ms(std::uint64_t window_seconds) {
    std::uint64_t window_ms =
        window_seconds > kMaxSlotMs ? kMaxSlotMs * kSlotsPerWindow : window_seconds * 1000;
    return std::clamp<std::uint64_t>((window_ms + kSlotsPerWindow - 1) / kSlotsPerWindow, 1,
                                     kMaxSlotMs);
}

std::string storage_key(std::string_view key) {
    std::string out;
    out.reserve(std::min<std::size_t>(key.size(), 256));
    for (std::string_view rest = key;;) {
        auto sep = rest.find('\x1f');
        append_key_part(out, rest.substr(0, sep));
        if (sep == std::string_view::npos) break;
        out += '\x1f';
        rest.remove_prefix(sep + 1);
    }
    if (out.size() <= kMaxStorageKey) return out;
    // The ID, then every value as one hash: it holds a \x1f, so no single part (hashed
    // on its own above) can have the same hash input.
    auto sep = key.find('\x1f');
    out.clear();
    append_key_part(out, key.substr(0, sep));
    out += '\x1f';
    append_hash(out, key.substr(sep + 1));
    return out;
}

}  // namespace pm
