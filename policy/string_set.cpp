// SPDX-License-Identifier: BSD-2-Clause
#include "policy/string_set.h"

#include <bit>
#include <cstring>
#include <stdexcept>

namespace pm {

namespace {

// A wyhash-style hash: 64x64->128 multiplies folded to 64 bits, 16 input bytes a round.
// A list lookup hashes the address, its domain and each parent domain, in every list a
// rule names, so this is on the hot path; std::hash (murmur, out of line in libstdc++)
// takes over twice as long on mail-address-sized strings. Both halves of the result are
// well mixed: the low bits pick the slot, the high 32 bits are the tag.
__extension__ typedef unsigned __int128 Wide;

constexpr std::uint64_t kP0 = 0xa0761d6478bd642full;
constexpr std::uint64_t kP1 = 0xe7037ed1a0b428dbull;
constexpr std::uint64_t kP2 = 0x8ebc6af09c88c6e3ull;

inline std::uint64_t mum(std::uint64_t a, std::uint64_t b) {
    Wide r = static_cast<Wide>(a) * b;
    return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

inline std::uint64_t read8(const unsigned char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

inline std::uint64_t read4(const unsigned char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

std::uint64_t hash_of(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    std::size_t len = s.size();
    std::uint64_t seed = kP0 ^ mum(len ^ kP1, kP2);
    std::uint64_t a = 0, b = 0;
    if (len <= 16) {
        if (len >= 4) {
            std::size_t mid = (len >> 3) << 2;
            a = (read4(p) << 32) | read4(p + mid);
            b = (read4(p + len - 4) << 32) | read4(p + len - 4 - mid);
        } else if (len > 0) {
            a = (static_cast<std::uint64_t>(p[0]) << 16) |
                (static_cast<std::uint64_t>(p[len >> 1]) << 8) | p[len - 1];
        }
    } else {
        std::size_t i = len;
        while (i > 16) {
            seed = mum(read8(p) ^ kP1, read8(p + 8) ^ seed);
            p += 16;
            i -= 16;
        }
        a = read8(p + i - 16);
        b = read8(p + i - 8);
    }
    return mum(kP1 ^ len, mum(a ^ kP1, b ^ seed));
}

std::uint32_t tag_of(std::uint64_t hash) {
    return static_cast<std::uint32_t>(hash >> 32);
}

}  // namespace

std::string_view StringSet::entry_at(std::uint32_t offset) const {
    std::size_t len = 0;
    int shift = 0;
    std::size_t pos = offset;
    for (;;) {
        auto byte = static_cast<unsigned char>(arena_[pos++]);
        len |= static_cast<std::size_t>(byte & 0x7F) << shift;
        if (!(byte & 0x80)) break;
        shift += 7;
    }
    return std::string_view(arena_).substr(pos, len);
}

std::size_t StringSet::find_slot(std::string_view s, std::uint64_t hash) const {
    std::size_t mask = slots_.size() - 1;
    std::size_t i = hash & mask;
    for (;;) {
        std::uint64_t slot = slots_[i];
        if (slot == 0) return i;
        if (static_cast<std::uint32_t>(slot >> 32) == tag_of(hash) &&
            entry_at(static_cast<std::uint32_t>(slot) - 1) == s)
            return i;
        i = (i + 1) & mask;
    }
}

void StringSet::reserve(std::size_t entries) {
    std::size_t want = std::bit_ceil(entries * 2 + 16);
    if (want <= slots_.size()) return;
    decltype(slots_) old;
    old.swap(slots_);
    slots_.assign(want, 0);
    for (std::uint64_t slot : old) {
        if (slot == 0) continue;
        std::string_view s = entry_at(static_cast<std::uint32_t>(slot) - 1);
        std::uint64_t h = hash_of(s);
        slots_[find_slot(s, h)] = slot;
    }
}

void StringSet::grow() {
    reserve(slots_.empty() ? 8 : slots_.size());
}

bool StringSet::insert(std::string_view s) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    std::uint64_t h = hash_of(s);
    std::size_t i = find_slot(s, h);
    if (slots_[i] != 0) return false;
    if (arena_.size() + s.size() + 5 >= 0xFFFFFFFFu)
        throw std::length_error("list too large for one string set (4 GiB)");
    auto offset = static_cast<std::uint32_t>(arena_.size());
    std::size_t len = s.size();
    do {
        auto byte = static_cast<char>((len & 0x7F) | (len > 0x7F ? 0x80 : 0));
        arena_ += byte;
        len >>= 7;
    } while (len > 0);
    arena_.append(s);
    slots_[i] = (static_cast<std::uint64_t>(tag_of(h)) << 32) | (offset + 1);
    lengths_ |= length_bit(s.size());
    ++size_;
    return true;
}

bool StringSet::find(std::string_view s) const {
    return slots_[find_slot(s, hash_of(s))] != 0;
}

}  // namespace pm
