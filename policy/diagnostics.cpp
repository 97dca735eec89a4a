#include "policy/diagnostics.h"

namespace pm {

std::string SourceLocation::to_string() const {
    std::string out = file ? *file : std::string("<input>");
    if (line > 0) {
        out += ':' + std::to_string(line);
        if (column > 0) out += ':' + std::to_string(column);
    }
    return out;
}

std::string Diagnostic::to_string() const {
    return where.to_string() + (severity == Severity::Error ? ": error: " : ": warning: ") +
           message;
}

void Diagnostics::error(const SourceLocation& where, std::string message) {
    items_.push_back({Severity::Error, where, std::move(message)});
    ++errors_;
}

void Diagnostics::warning(const SourceLocation& where, std::string message) {
    items_.push_back({Severity::Warning, where, std::move(message)});
}

void Diagnostics::file_error(const std::string& file, std::string message) {
    error(SourceLocation{std::make_shared<const std::string>(file), 0, 0}, std::move(message));
}

std::ostream& operator<<(std::ostream& out, const Diagnostic& d) {
    return out << d.to_string();
}

}  // namespace pm
