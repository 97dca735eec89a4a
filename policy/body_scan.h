// SPDX-License-Identifier: BSD-2-Clause
// BODY SCAN
//   BodyPattern                     one `body contains "text"` or `body matches /re/`
//   BodyScanner::start(patterns, limit)   a new message
//   BodyScanner::feed(chunk)        the next piece of the raw body, as the MTA sends it
//   BodyScanner::finish()           end of message (or of the scan limit): hits() is final
//
// The body is never held whole (policy-milter.rules(5), "Scanning the body"): it is
// scanned as it streams in, up to `limit` bytes of the raw body, with CRLF turned into LF
// and no MIME decoding. `contains` keeps the last (longest text - 1) bytes of the stream
// so that a text split between two chunks is found. `matches` runs on blocks of whole
// lines: a body regex never matches a newline (RE2 never_nl, compiled with (?m) so that
// ^ and $ match at every line, in Latin-1 so that it matches bytes), so a block of whole
// lines holds every match a line can have; only the unfinished last line is carried to the next
// block. A line longer than kBodyBlockBytes is cut there, keeping the last kBodyOverlapBytes before
// the cut, so a match of up to that length across the cut is still found. Memory per message
// (tests/unit/review_unknown_body_test.cpp measures it): the chunk being read plus, with a
// `contains`, the carry and a chunk (about 130 KiB in all), with a `matches` an unfinished line
// of up to two blocks and a chunk more (about 330 KiB in all); about 400 KiB with both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace pm {

inline constexpr std::size_t kBodyBlockBytes = 64 << 10;
inline constexpr std::size_t kBodyOverlapBytes = 4 << 10;
// The longest `body contains` text: the scanner carries that much from chunk to chunk.
inline constexpr std::size_t kMaxBodyTextBytes = 1024;
// body-scan-limit's default (policy-milter.conf(5)).
inline constexpr std::uint64_t kDefaultBodyScanLimit = 1 << 20;

struct BodyPattern {
    enum class Kind { Contains, Matches };
    Kind kind = Kind::Contains;
    std::string text;                       // Contains: ASCII lower case
    std::shared_ptr<const re2::RE2> regex;  // Matches: (?m), never_nl, Latin-1
};

class BodyScanner {
  public:
    // A new message, scanned for `patterns` (kept by the caller for the message's time)
    // up to `limit` bytes of its body.
    void start(std::span<const BodyPattern> patterns, std::uint64_t limit);
    void feed(std::string_view chunk);
    void finish();
    // By pattern index: 1 where the pattern was found.
    const std::vector<std::uint8_t>& hits() const { return hits_; }
    std::uint64_t scanned() const { return seen_; }

  private:
    void normalise(std::string_view chunk);
    void scan_texts(bool final);
    void scan_lines(bool final);
    void run_regexes(std::string_view text, std::size_t start, std::size_t end);
    bool all_found() const;
    void release();

    std::span<const BodyPattern> patterns_;
    std::vector<std::uint8_t> hits_;
    std::uint64_t limit_ = 0;
    std::uint64_t seen_ = 0;
    bool done_ = true;
    bool pending_cr_ = false;  // a chunk ended in CR: its LF may start the next one
    bool cut_ = false;         // the scan stopped at the limit, not at the body's end
    bool has_texts_ = false, has_regexes_ = false;
    std::size_t carry_bytes_ = 0;  // longest text - 1
    std::string norm_;             // this chunk, CRLF made LF
    std::string window_;           // contains: the carry, then this chunk in lower case
    std::string block_;            // matches: lines not yet scanned
    std::size_t block_start_ = 0;  // 1 after the first block: block_[0] is context only
};

}  // namespace pm
