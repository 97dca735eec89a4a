// SPDX-License-Identifier: BSD-2-Clause
// Reading the files an admin writes or a feed generates: the rules file, its list files
// and the config file, all through this one reader. Each must be a regular file (a
// symlink to one is fine: admins use them): a FIFO would hang the reader, /dev/zero would
// exhaust memory, and a directory would read as an empty policy. /dev/null is the one
// exception: it reads as an empty file. Each file is bounded in size.
// A UTF-8 byte-order mark at the start is dropped, as editors on other systems add one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pm {

// Size limits, documented in policy-milter.rules(5) and policy-milter.conf(5).
inline constexpr std::uint64_t kMaxRulesFileBytes = 16ull << 20;  // 16 MiB
inline constexpr std::uint64_t kMaxListFileBytes = 1ull << 30;    // 1 GiB
inline constexpr std::uint64_t kMaxConfigFileBytes = 1ull << 20;  // 1 MiB

inline constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

class TextFile {
  public:
    // Opens `path` without blocking (a FIFO opens, and is then refused) and checks what
    // it opened: a regular file of at most `max_bytes`. On failure, ok() is false.
    TextFile(const std::string& path, std::uint64_t max_bytes);
    ~TextFile();
    TextFile(const TextFile&) = delete;
    TextFile& operator=(const TextFile&) = delete;

    bool ok() const { return error_.empty(); }
    // Why the file cannot be read, e.g. "No such file or directory" or "not a regular
    // file (a directory)"; the errno behind it, or 0 when it is not a system error.
    const std::string& error() const { return error_; }
    int error_code() const { return errno_; }
    // The size fstat reported when the file was opened.
    std::uint64_t size() const { return size_; }

    // The next line without its '\n' (a trailing '\r' is kept), or false at the end or
    // on an error (then ok() is false). A line longer than set_max_line's bound comes
    // back cut to it, with truncated() true: one line of a file of 1 GiB cannot hold
    // that much memory (twice over) for nothing.
    bool next_line(std::string& line);
    void set_max_line(std::size_t bytes) { max_line_ = bytes; }
    bool truncated() const { return truncated_; }
    // Everything not yet read.
    bool read_all(std::string& out);

  private:
    bool fill();
    void fail(int code, std::string message);

    int fd_ = -1;
    int errno_ = 0;
    std::string error_;
    std::uint64_t max_bytes_ = 0;
    std::uint64_t size_ = 0;
    std::uint64_t read_ = 0;  // bytes read so far
    std::string buffer_;
    std::size_t start_ = 0;    // first unconsumed byte of buffer_
    std::size_t scanned_ = 0;  // buffer_ from start_ to here holds no '\n'; a long
                               // line is searched once, not once per chunk
    bool eof_ = false;
    bool bom_checked_ = false;
    std::size_t max_line_ = SIZE_MAX;
    bool truncated_ = false;
    bool skipping_ = false;  // reading past the rest of a line too long to keep
    std::string long_line_start_;
};

// "16 MiB", "1 GiB", "512 bytes": a limit as the docs write it.
std::string format_byte_limit(std::uint64_t bytes);

}  // namespace pm
