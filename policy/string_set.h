// A compact set of strings for million-entry lists: every string lives once in one
// arena, and an open-addressing table holds (hash tag, offset) pairs. That is about
// 1.5x the list file's size, where std::unordered_set<std::string> needs ~4x.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pm {

class StringSet {
public:
    void reserve(std::size_t entries);
    // Returns false when the string was already present.
    bool insert(std::string_view s);
    bool contains(std::string_view s) const;
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    std::size_t memory_bytes() const { return arena_.capacity() + slots_.capacity() * 8; }
    void shrink_to_fit() { arena_.shrink_to_fit(); }

private:
    std::string_view entry_at(std::uint32_t offset) const;
    std::size_t find_slot(std::string_view s, std::uint64_t hash) const;
    void grow();

    std::string arena_;                // entries as <length varint><bytes>
    std::vector<std::uint64_t> slots_;  // 0 = empty; else (hash high 32 bits << 32) | offset+1
    std::size_t size_ = 0;
};

}  // namespace pm
