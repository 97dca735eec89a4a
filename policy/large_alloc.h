// SPDX-License-Identifier: BSD-2-Clause
// An allocator for the big arrays of compiled lists (string arenas, hash slots, IP
// intervals): blocks of 1 MiB and more are mapped straight from the kernel and unmapped
// when freed, smaller ones come from operator new.
//
// Why: glibc raises its mmap threshold each time it frees a mapped block (up to 32 MiB),
// so after the first reload the next policy's tables land in the brk heap, and when that
// policy is freed in turn its memory stays in the process as free heap. Measured with
// bench/policy_load on 2M list entries: RSS 180 MB after a few reloads, against 55 MB
// for one policy. With this allocator the memory of a freed policy goes back at once,
// and capacity a vector or string reserved but never wrote (doubling growth) is never
// resident, so the tables need no shrinking copy either.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>

namespace pm {

inline constexpr std::size_t kLargeAllocThreshold = std::size_t{1} << 20;

template <class T>
struct LargeAllocator {
    using value_type = T;
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);

    LargeAllocator() noexcept = default;
    template <class U>
    LargeAllocator(const LargeAllocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
        std::size_t bytes = n * sizeof(T);
        if (bytes < kLargeAllocThreshold) return static_cast<T*>(::operator new(bytes));
        void* p =
            ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        return static_cast<T*>(p);
    }

    void deallocate(T* p, std::size_t n) noexcept {
        std::size_t bytes = n * sizeof(T);
        if (bytes < kLargeAllocThreshold)
            ::operator delete(p);
        else
            ::munmap(p, bytes);
    }

    friend bool operator==(const LargeAllocator&, const LargeAllocator&) noexcept { return true; }
};

}  // namespace pm
