// SPDX-License-Identifier: BSD-2-Clause
// Compiler-style diagnostics for rules and list files: FILE:LINE:COL: error|warning: message.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace pm {

struct SourceLocation {
    std::shared_ptr<const std::string> file;  // shared: thousands of tokens point at one name
    std::uint32_t line = 0;
    std::uint32_t column = 0;

    std::string to_string() const;
};

enum class Severity { Warning, Error };

struct Diagnostic {
    Severity severity;
    SourceLocation where;
    std::string message;

    std::string to_string() const;  // "FILE:LINE:COL: error: message"
};

class Diagnostics {
  public:
    void error(const SourceLocation& where, std::string message);
    void warning(const SourceLocation& where, std::string message);
    // An error that belongs to a file as a whole (unreadable file), reported at line 0.
    void file_error(const std::string& file, std::string message);
    void file_warning(const std::string& file, std::string message);

    const std::vector<Diagnostic>& all() const { return items_; }
    std::size_t error_count() const { return errors_; }
    std::size_t warning_count() const { return items_.size() - errors_; }
    bool has_errors() const { return errors_ > 0; }

  private:
    std::vector<Diagnostic> items_;
    std::size_t errors_ = 0;
};

std::ostream& operator<<(std::ostream& out, const Diagnostic& d);

// `text` with every character a reader cannot see or tell apart from a space named by
// its code point: "a\u00A0b" -> "a<U+00A0>b"; control bytes and bytes that are not UTF-8
// likewise ("<U+0009>", "<0xFF>"). Every diagnostic's message goes through it, so a
// message quoting the input shows what is really there (and cannot hold a line break).
std::string visible_text(std::string_view text);

// The code point of the UTF-8 sequence at the start of `text` and its length in bytes,
// or {-1, 1} for a byte that does not start a valid sequence.
std::pair<long, std::size_t> decode_utf8(std::string_view text);

// "U+00A0 (no-break space)": a character named for a diagnostic.
std::string code_point_name(long code_point);

// Did-you-mean: the candidate nearest to `word`, or empty. The same for config keys,
// fields, stages and actions: a candidate equal but for case or for '_', '-' and '.'
// wins, then the nearest within two edits (a swap of neighbours is one edit; one edit
// for words of three letters or fewer); ties go to the first.
std::string closest_match(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace pm
