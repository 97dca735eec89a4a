// SPDX-License-Identifier: BSD-2-Clause
#include "policy/text_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pm {

namespace {

constexpr std::size_t kChunk = 64 << 10;

const char* file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a plain file";
}

}  // namespace

std::string format_byte_limit(std::uint64_t bytes) {
    if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0)
        return std::to_string(bytes >> 30) + " GiB";
    if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0)
        return std::to_string(bytes >> 20) + " MiB";
    if (bytes >= (1ull << 10) && bytes % (1ull << 10) == 0)
        return std::to_string(bytes >> 10) + " KiB";
    return std::to_string(bytes) + " bytes";
}

TextFile::TextFile(const std::string& path, std::uint64_t max_bytes) : max_bytes_(max_bytes) {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one, in --check
    // and in the reload thread. No O_NOFOLLOW: a symlink to a regular file is fine, and
    // fstat below sees what was actually opened, so there is no check-then-open race.
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd_ < 0) {
        fail(errno, std::strerror(errno));
        return;
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
        fail(errno, std::strerror(errno));
        return;
    }
    // /dev/null is the customary way to say "no config", and reads as an empty file.
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) {
        eof_ = true;
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(0, std::string("not a regular file (") + file_kind(st.st_mode) + ")");
        return;
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
    if (size_ > max_bytes_) {
        fail(EFBIG, "larger than the limit of " + format_byte_limit(max_bytes_));
        return;
    }
}

TextFile::~TextFile() {
    if (fd_ >= 0) ::close(fd_);
}

void TextFile::fail(int code, std::string message) {
    errno_ = code;
    error_ = std::move(message);
    eof_ = true;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

bool TextFile::fill() {
    if (eof_ || !ok()) return false;
    if (start_ > 0) {
        buffer_.erase(0, start_);
        scanned_ -= std::min(scanned_, start_);
        start_ = 0;
    }
    std::size_t old = buffer_.size();
    buffer_.resize(old + kChunk);
    ssize_t n;
    do {
        n = ::read(fd_, buffer_.data() + old, kChunk);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        buffer_.resize(old);
        fail(errno, std::strerror(errno));
        return false;
    }
    buffer_.resize(old + static_cast<std::size_t>(n));
    if (n == 0) {
        eof_ = true;
        return false;
    }
    read_ += static_cast<std::uint64_t>(n);
    // The file may grow after fstat: the bound holds for what is read, too.
    if (read_ > max_bytes_) {
        fail(EFBIG, "larger than the limit of " + format_byte_limit(max_bytes_));
        return false;
    }
    if (!bom_checked_ && buffer_.size() >= kUtf8Bom.size()) {
        bom_checked_ = true;
        if (std::string_view(buffer_).starts_with(kUtf8Bom)) start_ = kUtf8Bom.size();
    }
    return true;
}

bool TextFile::next_line(std::string& line) {
    for (;;) {
        auto nl = buffer_.find('\n', std::max(start_, scanned_));
        if (nl != std::string::npos) {
            if (skipping_) {  // the end of a line too long to keep
                line = std::move(long_line_start_);
                skipping_ = false;
            } else {
                truncated_ = nl - start_ > max_line_;
                line.assign(buffer_, start_, std::min(nl - start_, max_line_));
            }
            start_ = scanned_ = nl + 1;
            return true;
        }
        // No end of line yet: a line past max_line is cut there, and the rest of it is
        // read past rather than kept.
        if (!skipping_ && buffer_.size() - start_ > max_line_) {
            long_line_start_.assign(buffer_, start_, max_line_);
            skipping_ = truncated_ = true;
        }
        if (skipping_) start_ = buffer_.size();
        scanned_ = buffer_.size();
        if (!fill()) break;
    }
    if (!ok()) return false;
    if (skipping_) {
        line = std::move(long_line_start_);
        skipping_ = false;
        return true;
    }
    if (start_ >= buffer_.size()) return false;
    truncated_ = false;
    line.assign(buffer_, start_, std::string::npos);  // the last line, without '\n'
    start_ = buffer_.size();
    return true;
}

bool TextFile::read_all(std::string& out) {
    if (ok() && size_ > 0 && buffer_.capacity() < size_ + kChunk) buffer_.reserve(size_ + kChunk);
    while (fill()) {
    }
    if (!ok()) return false;
    out.assign(buffer_, start_, std::string::npos);
    start_ = buffer_.size();
    return true;
}

}  // namespace pm
