#include "policy/string_set.h"

#include <bit>
#include <functional>
#include <stdexcept>

namespace pm {

namespace {

std::uint64_t hash_of(std::string_view s) { return std::hash<std::string_view>{}(s); }

std::uint32_t tag_of(std::uint64_t hash) { return static_cast<std::uint32_t>(hash >> 32); }

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
    std::vector<std::uint64_t> old;
    old.swap(slots_);
    slots_.assign(want, 0);
    for (std::uint64_t slot : old) {
        if (slot == 0) continue;
        std::string_view s = entry_at(static_cast<std::uint32_t>(slot) - 1);
        std::uint64_t h = hash_of(s);
        slots_[find_slot(s, h)] = slot;
    }
}

void StringSet::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

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
    ++size_;
    return true;
}

bool StringSet::contains(std::string_view s) const {
    if (size_ == 0) return false;
    return slots_[find_slot(s, hash_of(s))] != 0;
}

}  // namespace pm
