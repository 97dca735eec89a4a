// SPDX-License-Identifier: BSD-2-Clause
#include "policy/body_scan.h"

#include <re2/re2.h>

#include <algorithm>

namespace pm {

void BodyScanner::start(std::span<const BodyPattern> patterns, std::uint64_t limit) {
    patterns_ = patterns;
    hits_.assign(patterns.size(), 0);
    limit_ = limit;
    seen_ = 0;
    done_ = patterns.empty() || limit == 0;
    pending_cr_ = false;
    cut_ = false;
    has_texts_ = has_regexes_ = false;
    carry_bytes_ = 0;
    for (const auto& p : patterns) {
        if (p.kind == BodyPattern::Kind::Contains) {
            has_texts_ = true;
            carry_bytes_ = std::max(carry_bytes_, p.text.empty() ? 0 : p.text.size() - 1);
        } else {
            has_regexes_ = true;
        }
    }
    release();
}

bool BodyScanner::all_found() const {
    return std::all_of(hits_.begin(), hits_.end(), [](std::uint8_t h) { return h != 0; });
}

// CRLF becomes LF; a CR at the end of a chunk waits for the next one's first byte.
void BodyScanner::normalise(std::string_view chunk) {
    norm_.clear();
    if (chunk.empty()) return;        // a CR pending still waits for its LF
    norm_.reserve(chunk.size() + 1);  // at once: grown byte by byte it would double
    if (pending_cr_ && (chunk.empty() || chunk.front() != '\n')) norm_ += '\r';
    pending_cr_ = false;
    for (std::size_t i = 0; i < chunk.size(); ++i) {
        char c = chunk[i];
        if (c == '\r') {
            if (i + 1 == chunk.size()) {
                pending_cr_ = true;
                continue;
            }
            if (chunk[i + 1] == '\n') continue;
        }
        norm_ += c;
    }
}

// The buffers go with the message: a connection idle between messages holds none.
void BodyScanner::release() {
    std::string().swap(norm_);
    std::string().swap(window_);
    std::string().swap(block_);
    block_start_ = 0;
}

void BodyScanner::feed(std::string_view chunk) {
    if (done_) return;
    std::uint64_t room = limit_ - seen_;
    if (chunk.size() > room) chunk = chunk.substr(0, static_cast<std::size_t>(room));
    seen_ += chunk.size();
    normalise(chunk);
    if (has_texts_) scan_texts(false);
    if (has_regexes_) scan_lines(false);
    if (all_found()) {
        done_ = true;
        release();
    }
    if (seen_ >= limit_) {
        cut_ = true;
        finish();
    }
}

void BodyScanner::finish() {
    if (done_) return;
    norm_.clear();
    if (pending_cr_) norm_ += '\r';
    pending_cr_ = false;
    if (has_texts_) scan_texts(true);
    if (has_regexes_) scan_lines(true);
    done_ = true;
    release();
}

// The carry, then this chunk, in ASCII lower case; each text not found yet is searched
// there, and the last carry_bytes_ stay for the next chunk.
void BodyScanner::scan_texts(bool final) {
    std::size_t from = window_.size();
    window_.reserve(carry_bytes_ + norm_.size());  // the carry is never longer: no doubling
    window_ += norm_;
    for (std::size_t i = from; i < window_.size(); ++i) {
        char& c = window_[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    std::string_view w(window_);
    for (std::size_t i = 0; i < patterns_.size(); ++i) {
        const BodyPattern& p = patterns_[i];
        if (hits_[i] || p.kind != BodyPattern::Kind::Contains) continue;
        if (w.find(p.text) != std::string_view::npos) hits_[i] = 1;
    }
    if (final || window_.size() <= carry_bytes_) return;
    window_.erase(0, window_.size() - carry_bytes_);
}

// text[start, end) is searched; RE2 reads the bytes around it as context, so ^ and $
// match there only at a real line boundary.
void BodyScanner::run_regexes(std::string_view text, std::size_t start, std::size_t end) {
    re2::StringPiece piece(text.data(), text.size());
    for (std::size_t i = 0; i < patterns_.size(); ++i) {
        const BodyPattern& p = patterns_[i];
        if (hits_[i] || p.kind != BodyPattern::Kind::Matches) continue;
        if (p.regex->Match(piece, start, end, RE2::UNANCHORED, nullptr, 0)) hits_[i] = 1;
    }
}

// Whole lines are scanned once a block's worth has come (or at the end); the unfinished
// last line waits. A line longer than a block is cut: all but its last byte is searched
// (that byte is context, so $ does not take the cut for a line end), and the overlap
// plus one byte before it (context for ^) stays for the next block.
void BodyScanner::scan_lines(bool final) {
    block_ += norm_;
    if (!final && block_.size() < kBodyBlockBytes) return;
    std::string_view b(block_);
    if (final) {
        if (b.size() > block_start_) {
            // The body's last newline ends its last line and starts none: it is context.
            std::size_t end = b.back() == '\n' ? b.size() - 1 : b.size();
            // Cut by the limit within a line: $ must not take the cut for its end.
            if (cut_ && end == b.size()) block_ += '\0';
            run_regexes(block_, block_start_, end);
        }
        block_.clear();
        block_start_ = 0;
        return;
    }
    std::size_t nl = b.rfind('\n');
    if (nl != std::string_view::npos && nl >= block_start_) {
        run_regexes(b, block_start_, nl);
        // The newline stays as context: the next block is not the body's start (\A).
        block_.erase(0, nl);
        block_start_ = 1;
        return;
    }
    run_regexes(b, block_start_, b.size() - 1);
    block_.erase(0, block_.size() - (kBodyOverlapBytes + 1));
    block_start_ = 1;
}

}  // namespace pm
