// Compiler-style diagnostics for rules and list files: FILE:LINE:COL: error|warning: message.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
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

    const std::vector<Diagnostic>& all() const { return items_; }
    std::size_t error_count() const { return errors_; }
    std::size_t warning_count() const { return items_.size() - errors_; }
    bool has_errors() const { return errors_ > 0; }

  private:
    std::vector<Diagnostic> items_;
    std::size_t errors_ = 0;
};

std::ostream& operator<<(std::ostream& out, const Diagnostic& d);

}  // namespace pm
