#include "policy/list_matcher.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <charconv>

namespace pm {

struct GlobSet::Impl {
    Impl() : set(options(), RE2::ANCHOR_BOTH) {}
    static RE2::Options options() {
        RE2::Options o;
        o.set_encoding(RE2::Options::EncodingLatin1);  // values are bytes, not always UTF-8
        o.set_case_sensitive(true);                    // both sides are lower-cased already
        o.set_max_mem(256 << 20);
        o.set_log_errors(false);
        return o;
    }
    RE2::Set set;
    bool compiled = false;
};

GlobSet::GlobSet() : impl_(std::make_unique<Impl>()) {}
GlobSet::~GlobSet() = default;
GlobSet::GlobSet(GlobSet&&) noexcept = default;
GlobSet& GlobSet::operator=(GlobSet&&) noexcept = default;

void GlobSet::add(std::string_view lower_glob) {
    std::string pattern;
    std::size_t start = 0;
    for (;;) {
        auto star = lower_glob.find('*', start);
        pattern += RE2::QuoteMeta(lower_glob.substr(start, star - start));
        if (star == std::string_view::npos) break;
        pattern += "(?s:.*)";
        start = star + 1;
    }
    impl_->set.Add(pattern, nullptr);
    ++count_;
}

std::string GlobSet::finish() {
    if (count_ == 0) return {};
    if (!impl_->set.Compile()) return "cannot compile the globs of this list (out of memory)";
    impl_->compiled = true;
    return {};
}

bool GlobSet::matches(std::string_view lower_value) const {
    if (!impl_->compiled) return false;
    return impl_->set.Match(lower_value, nullptr);
}

bool parse_size(std::string_view text, std::uint64_t& out) {
    std::uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || ptr == text.data()) return false;
    std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
    std::uint64_t mult = 1;
    if (unit.empty()) mult = 1;
    else if (unit == "K" || unit == "KB") mult = 1ull << 10;
    else if (unit == "M" || unit == "MB") mult = 1ull << 20;
    else if (unit == "G" || unit == "GB") mult = 1ull << 30;
    else return false;
    if (n > UINT64_MAX / mult) return false;
    out = n * mult;
    return true;
}

bool parse_duration(std::string_view text, std::uint64_t& seconds) {
    std::uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || ptr == text.data() || ptr + 1 != text.data() + text.size())
        return false;
    std::uint64_t mult = 0;
    switch (*ptr) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        default: return false;
    }
    if (n == 0 || n > UINT64_MAX / mult) return false;
    seconds = n * mult;
    return true;
}

void ListMatcher::reserve(std::size_t entries) { exact_.reserve(entries); }

bool ListMatcher::add_item(std::string_view item, const SourceLocation& where,
                           std::string_view field_name, Diagnostics& diags) {
    auto bad = [&](std::string why) {
        diags.error(where, "list item '" + std::string(item) + "' " + why);
        return false;
    };
    std::string lower = ascii_lower(item);
    bool looks_like_ip = parse_ip_prefix(item).has_value();
    switch (type_) {
        case ValueType::Ip: {
            auto prefix = parse_ip_prefix(item);
            if (!prefix)
                return bad("is not an IP address or CIDR prefix, but " + std::string(field_name) +
                           " is an IP address");
            if (prefix->host_bits_set)
                diags.warning(where, "list item '" + std::string(item) +
                                         "' has host bits set; it matches " +
                                         prefix->address.to_string() + "/" +
                                         std::to_string(prefix->length));
            ips_.add(*prefix);
            break;
        }
        case ValueType::Address:
            if (looks_like_ip)
                return bad("is an IP address, but " + std::string(field_name) +
                           " is a mail address");
            if (item.empty() || item == "<>") {
                null_sender_ = true;
            } else if (lower.find('*') != std::string::npos) {
                globs_.add(lower);
            } else if (lower.front() == '@') {
                if (lower.size() == 1) return bad("names no domain after '@'");
                domains_.insert(std::string_view(lower).substr(1));
            } else if (lower.front() == '.') {
                if (lower.size() == 1) return bad("names no domain after '.'");
                subdomains_.insert(std::string_view(lower).substr(1));
            } else if (lower.find('@') != std::string::npos) {
                exact_.insert(lower);
            } else {
                return bad("is not a mail address; write '@" + std::string(item) +
                           "' for the domain or '." + std::string(item) + "' for its subdomains");
            }
            break;
        case ValueType::Host:
            if (looks_like_ip && item.find('/') != std::string_view::npos)
                return bad("is an IP prefix, but " + std::string(field_name) + " is a host name");
            if (lower.find('@') != std::string::npos)
                return bad("is a mail address, but " + std::string(field_name) +
                           " is a host name");
            if (lower.find('*') != std::string::npos)
                globs_.add(lower);
            else if (lower.front() == '.' && lower.size() > 1)
                subdomains_.insert(std::string_view(lower).substr(1));
            else
                exact_.insert(normalize_host(lower));
            break;
        case ValueType::Text:
            if (lower.find('*') != std::string::npos)
                globs_.add(lower);
            else
                exact_.insert(lower);
            break;
        case ValueType::Number: {
            std::uint64_t n = 0;
            if (!parse_size(item, n))
                return bad("is not a number, but " + std::string(field_name) + " is a number");
            numbers_.insert(n);
            break;
        }
        case ValueType::Bool:
            return bad("cannot match " + std::string(field_name) + ", which is a boolean");
    }
    ++entries_;
    return true;
}

void ListMatcher::finish(const SourceLocation& where, Diagnostics& diags) {
    ips_.finish();
    exact_.shrink_to_fit();
    std::string err = globs_.finish();
    if (!err.empty()) diags.error(where, err);
}

bool ListMatcher::subdomain_match(std::string_view host) const {
    if (subdomains_.empty()) return false;
    // "a.b.example.com" is a subdomain of "b.example.com" and "example.com", not of itself.
    for (auto dot = host.find('.'); dot != std::string_view::npos; dot = host.find('.', dot + 1))
        if (subdomains_.contains(host.substr(dot + 1))) return true;
    return false;
}

bool ListMatcher::contains_address(const Address& a) const {
    const std::string& lower = a.lower();
    if (lower.empty()) return null_sender_;
    if (exact_.contains(lower)) return true;
    std::string_view domain = a.domain();
    if (!domain.empty() && (domains_.contains(domain) || subdomain_match(domain))) return true;
    return globs_.matches(lower);
}

bool ListMatcher::contains_host(std::string_view host) const {
    return exact_.contains(host) || subdomain_match(host) || globs_.matches(host);
}

bool ListMatcher::contains_text(std::string_view text) const {
    return exact_.contains(text) || globs_.matches(text);
}

}  // namespace pm
