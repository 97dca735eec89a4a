// SPDX-License-Identifier: BSD-2-Clause
// A compact set of strings for million-entry lists: every string lives once in one
// arena, and an open-addressing table holds (hash tag, offset) pairs, at most half full.
// That is the strings plus 16 bytes or so per entry: 42 bytes per entry for the address
// list of bench/ (1.7x the file's 25 bytes a line), where std::unordered_set<std::string>
// needs ~4x.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/large_alloc.h"

namespace pm {

class StringSet {
  public:
    void reserve(std::size_t entries);
    // Returns false when the string was already present.
    bool insert(std::string_view s);
    bool contains(std::string_view s) const {
        // A set holds strings of few lengths (a short inline list, "@domain" items): a
        // value of a length no entry has is rejected before it is hashed.
        if (!(lengths_ & length_bit(s.size()))) return false;
        return find(s);
    }
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    // Gives back the arena's spare capacity. Only a small arena is copied for it: a large
    // one is mapped pages, and the capacity beyond what was written was never resident.
    void shrink_to_fit() {
        if (arena_.capacity() < kLargeAllocThreshold) arena_.shrink_to_fit();
    }

  private:
    static std::uint64_t length_bit(std::size_t n) { return 1ull << (n < 63 ? n : 63); }
    bool find(std::string_view s) const;
    std::string_view entry_at(std::uint32_t offset) const;
    std::size_t find_slot(std::string_view s, std::uint64_t hash) const;
    void grow();

    // entries as <length varint><bytes>
    std::basic_string<char, std::char_traits<char>, LargeAllocator<char>> arena_;
    // 0 = empty; else (hash high 32 bits << 32) | offset+1
    std::vector<std::uint64_t, LargeAllocator<std::uint64_t>> slots_;
    std::size_t size_ = 0;
    std::uint64_t lengths_ = 0;  // bit n: some entry has length n (bit 63: 63 or more)
};

}  // namespace pm
