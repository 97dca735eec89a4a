#include "policy/list_matcher.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <cctype>
#include <charconv>

namespace pm {

namespace {

// One glob split at its stars: "a*b*c" is prefix "a", middle {"b"}, suffix "c". With
// '*' the only wildcard, a value matches when it starts with the prefix, ends with the
// suffix, and holds the middle pieces in order, each found leftmost, in between.
struct Glob {
    std::string prefix, suffix;
    std::vector<std::string> middle;
    std::size_t min_size = 0;  // the sum of the literal pieces
    bool has_star = false;     // without one the glob is a plain string

    explicit Glob(std::string_view glob) {
        auto star = glob.find('*');
        if (star == std::string_view::npos) {
            prefix = glob;
            min_size = glob.size();
            return;
        }
        has_star = true;
        auto last = glob.rfind('*');
        prefix = glob.substr(0, star);
        suffix = glob.substr(last + 1);
        min_size = prefix.size() + suffix.size();
        for (std::size_t from = star + 1; from <= last;) {
            auto next = glob.find('*', from);
            if (next > from) {
                middle.emplace_back(glob.substr(from, next - from));
                min_size += next - from;
            }
            from = next + 1;
        }
    }

    bool matches(std::string_view v) const {
        if (v.size() < min_size) return false;
        if (!has_star) return v == prefix;
        // The last and first bytes first: they reject most values without a memcmp call.
        if (!suffix.empty() && v.back() != suffix.back()) return false;
        if (!prefix.empty() && v.front() != prefix.front()) return false;
        if (!v.ends_with(suffix) || !v.starts_with(prefix)) return false;
        std::string_view rest = v.substr(prefix.size(), v.size() - prefix.size() - suffix.size());
        for (const auto& piece : middle) {
            auto pos = rest.find(piece);
            if (pos == std::string_view::npos) return false;
            rest.remove_prefix(pos + piece.size());
        }
        return true;
    }

    // The same glob as an RE2 pattern, for the combined automaton.
    std::string pattern() const {
        if (!has_star) return RE2::QuoteMeta(prefix);
        std::string out = RE2::QuoteMeta(prefix) + "(?s:.*)";
        for (const auto& piece : middle) out += RE2::QuoteMeta(piece) + "(?s:.*)";
        return out + RE2::QuoteMeta(suffix);
    }
};

// Up to this many globs are tried one by one: rejecting a value costs a length check and
// a memcmp or two per glob, far less than a pass of the combined automaton (which costs
// a few thousand instructions for any value). Larger sets use the automaton, whose cost
// does not grow with the number of globs.
constexpr std::size_t kDirectGlobLimit = 64;

RE2::Options glob_set_options() {
    RE2::Options o;
    o.set_encoding(RE2::Options::EncodingLatin1);  // values are bytes, not always UTF-8
    o.set_case_sensitive(true);                    // both sides are lower-cased already
    o.set_max_mem(256 << 20);
    o.set_log_errors(false);
    return o;
}

}  // namespace

struct GlobSet::Impl {
    std::vector<Glob> globs;        // until finish(); kept for a direct set
    std::unique_ptr<RE2::Set> set;  // the combined automaton of a large set
    bool finished = false;
};

GlobSet::GlobSet() = default;
GlobSet::~GlobSet() = default;
GlobSet::GlobSet(GlobSet&&) noexcept = default;
GlobSet& GlobSet::operator=(GlobSet&&) noexcept = default;

void GlobSet::add(std::string_view lower_glob) {
    if (!impl_) impl_ = std::make_unique<Impl>();
    impl_->globs.emplace_back(lower_glob);
    ++count_;
}

std::string GlobSet::finish() {
    if (count_ == 0) return {};
    impl_->finished = true;
    if (impl_->globs.size() <= kDirectGlobLimit) {
        impl_->globs.shrink_to_fit();
        return {};
    }
    impl_->set = std::make_unique<RE2::Set>(glob_set_options(), RE2::ANCHOR_BOTH);
    for (const auto& g : impl_->globs) impl_->set->Add(g.pattern(), nullptr);
    impl_->globs = {};
    if (!impl_->set->Compile()) {
        impl_->set.reset();
        return "cannot compile the globs of this list (out of memory)";
    }
    return {};
}

bool GlobSet::matches(std::string_view lower_value) const {
    if (!impl_ || !impl_->finished) return false;
    if (impl_->set) return impl_->set->Match(lower_value, nullptr);
    for (const auto& g : impl_->globs)
        if (g.matches(lower_value)) return true;
    return false;
}

bool parse_size(std::string_view text, std::uint64_t& out) {
    std::uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || ptr == text.data()) return false;
    std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
    std::uint64_t mult = 1;
    if (unit.empty())
        mult = 1;
    else if (unit == "K" || unit == "KB")
        mult = 1ull << 10;
    else if (unit == "M" || unit == "MB")
        mult = 1ull << 20;
    else if (unit == "G" || unit == "GB")
        mult = 1ull << 30;
    else
        return false;
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

namespace {
bool starts_with_digit(std::string_view t) {
    return !t.empty() && t[0] >= '0' && t[0] <= '9';
}
std::string with_case(std::string_view text, bool upper) {
    std::string out(text);
    for (char& c : out)
        c = upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
                  : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}
}  // namespace

std::string size_problem(std::string_view text) {
    std::uint64_t n = 0;
    if (!starts_with_digit(text)) return {};
    if (std::string upper = with_case(text, true); parse_size(upper, n))
        return "units are upper case: " + upper;
    if (text.find_first_of(".,") != std::string_view::npos)
        return "sizes are whole numbers: write 1536K, not 1.5M";
    auto unit_at = text.find_first_not_of("0123456789");
    if (unit_at != std::string_view::npos)
        return "unit '" + std::string(text.substr(unit_at)) +
               "' is not one of K, KB, M, MB, G, GB (powers of 1024)";
    return "the number is too large";
}

std::string duration_problem(std::string_view text) {
    std::uint64_t n = 0;
    if (!starts_with_digit(text)) return {};
    if (std::string lower = with_case(text, false); lower != text && parse_duration(lower, n))
        return "units are lower case: " + lower;
    auto unit_at = text.find_first_not_of("0123456789");
    if (unit_at == std::string_view::npos) return "a duration needs a unit: s, m, h or d";
    if (text.find_first_not_of('0') == unit_at) return "a duration is more than zero";
    return "unit '" + std::string(text.substr(unit_at)) + "' is not s, m, h or d";
}

void ListMatcher::reserve(std::size_t entries) {
    // Only the kinds that keep their items in exact_ use it: an IP or number list that
    // reserved it would hold an empty table of 16 bytes per expected entry.
    if (type_ == ValueType::Address || type_ == ValueType::Host || type_ == ValueType::Text)
        exact_.reserve(entries);
}

bool ListMatcher::add_item(std::string_view item, const SourceLocation& where,
                           std::string_view field_name, Diagnostics& diags) {
    auto bad = [&](std::string why) {
        // A feed gone wrong can have lines of any length: quote enough to find it.
        constexpr std::size_t kQuoted = 100;
        std::string shown(item.substr(0, kQuoted));
        if (item.size() > kQuoted) shown += "...";
        diags.error(where, "list item '" + shown + "' " + why);
        return false;
    };
    // Lower case and the IP check only for the kinds that use them: a million-line IP
    // list is parsed once per item, with no copy.
    bool textual = type_ != ValueType::Ip && type_ != ValueType::Number;
    std::string lower = textual ? ascii_lower(item) : std::string();
    bool looks_like_ip = textual && parse_ip_prefix(item).has_value();
    switch (type_) {
        case ValueType::Ip: {
            auto prefix = parse_ip_prefix(item);
            if (!prefix) {
                if (std::string why = ip_prefix_problem(item); !why.empty())
                    return bad("is not an IP address or CIDR prefix: " + why);
                return bad("is not an IP address or CIDR prefix, but " + std::string(field_name) +
                           " is an IP address");
            }
            // Postfix skips such a cidr table entry and refuses it in mynetworks: a typo
            // in the address or the length is likelier than a wish for the wider net.
            if (prefix->host_bits_set)
                return bad("has host bits set; did you mean '" + prefix->address.to_string() + "/" +
                           std::to_string(prefix->length) + "'?");
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
                return bad("is a mail address, but " + std::string(field_name) + " is a host name");
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
            if (!parse_size(item, n)) {
                if (std::string why = size_problem(item); !why.empty())
                    return bad("is not a number: " + why);
                return bad("is not a number, but " + std::string(field_name) + " is a number");
            }
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
