// SPDX-License-Identifier: BSD-2-Clause
#include "policy/list_matcher.h"

#include <algorithm>
#include <array>
#include <limits>
#include <map>
#include <unordered_map>

#include "policy/units.h"

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
};

// Up to this many globs are tried one by one on a short value: rejecting a value costs a
// length check and a memcmp or two per glob, less than a pass of the automaton below.
constexpr std::size_t kDirectGlobLimit = 64;
constexpr std::size_t kDirectValueLimit = 256;

// One entry per value of a byte: the root of the automaton has a direct table.
constexpr std::size_t kByteValues = std::numeric_limits<unsigned char>::max() + 1;

// The trie of the distinct glob pieces while it is built, one map per node.
using Trie = std::vector<std::map<unsigned char, std::uint32_t>>;

// Per-thread scratch of a lookup through the automaton. Each lookup takes a new stamp,
// so nothing needs clearing between lookups (an entry of an older stamp is empty). It
// holds 16 bytes per distinct glob piece of the largest list the thread has looked up
// (32 KB for 2,000 globs), freed when the thread ends.
struct Scratch {
    struct Wait {
        std::uint32_t glob, piece;  // the glob waits for its piece number `piece`
        std::size_t pos, limit;     // starting at or after pos; every piece ends by limit
        std::uint32_t next;         // the next waiting on the same literal; 0 = none
    };
    std::uint32_t stamp = 0;
    std::vector<std::uint32_t> fired;       // literal seen once already (stamp)
    std::vector<std::uint32_t> wait_stamp;  // the head/tail below are this lookup's
    std::vector<std::uint32_t> head, tail;  // FIFO of waits per literal, in pool
    std::vector<Wait> pool;                 // index 0 unused

    void begin(std::size_t literals) {
        if (fired.size() < literals) {
            fired.resize(literals, 0);
            wait_stamp.resize(literals, 0);
            head.resize(literals, 0);
            tail.resize(literals, 0);
        }
        if (++stamp == 0) {  // wrapped: forget every old stamp
            std::fill(fired.begin(), fired.end(), 0);
            std::fill(wait_stamp.begin(), wait_stamp.end(), 0);
            stamp = 1;
        }
        pool.resize(1);
    }
};

}  // namespace

// A large set: every glob is a prefix, middle pieces and a suffix. The distinct middle
// pieces go into one Aho-Corasick automaton, so one pass over the value finds, for every
// glob at once, its pieces in order, each leftmost (which is how a '*'-only glob is
// matched). A glob waits in a FIFO on the literal of its next piece; an occurrence moves
// the waits that started early enough on to their next piece, so each glob costs its
// number of pieces, and the pass stops at the first glob that completes. Prefixes and
// suffixes are looked up by value (one hash probe per distinct length) before the pass;
// a glob whose prefix or suffix does not fit never takes part. The pass costs the
// value's length times the number of pieces that end at one offset (at most the longest
// piece's length, a property of the list, not of the value), however many globs match.
struct GlobSet::Impl {
    std::vector<Glob> globs;
    bool finished = false;
    bool match_all = false;  // a glob of stars only

    // The automaton: node 0 is the root; children sorted by byte.
    struct Node {
        std::uint32_t first_child = 0, fail = 0, out = 0;  // out: next node with a literal
        std::int32_t literal = -1;
        std::uint16_t children = 0;
    };
    std::vector<Node> nodes;
    std::vector<unsigned char> child_byte;
    std::vector<std::uint32_t> child_node;
    std::array<std::uint32_t, kByteValues> root_next{};
    std::vector<std::uint32_t> literal_size;

    std::vector<std::uint32_t> piece_start;  // per glob: its first entry in `pieces`
    std::vector<std::uint32_t> pieces;       // literal of each middle piece
    std::vector<std::vector<std::uint32_t>> unanchored_by_first;  // literal -> globs
    struct ViewHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view v) const noexcept {
            return std::hash<std::string_view>{}(v);
        }
    };
    std::unordered_map<std::string, std::vector<std::uint32_t>, ViewHash, std::equal_to<>>
        by_prefix, by_suffix;
    std::vector<std::size_t> prefix_sizes, suffix_sizes;

    std::uint32_t piece_count(std::uint32_t g) const { return piece_start[g + 1] - piece_start[g]; }

    std::uint32_t child(std::uint32_t n, unsigned char c) const {
        const Node& node = nodes[n];
        const unsigned char* first = child_byte.data() + node.first_child;
        const unsigned char* last = first + node.children;
        // Binary search: a node of a word list can have dozens of children.
        const unsigned char* it = node.children > 8 ? std::lower_bound(first, last, c) : first;
        for (; it != last && *it <= c; ++it)
            if (*it == c) return child_node[static_cast<std::size_t>(it - child_byte.data())];
        return 0;
    }
    std::uint32_t step(std::uint32_t n, unsigned char c) const {
        for (;;) {
            if (n == 0) return root_next[c];
            if (std::uint32_t next = child(n, c)) return next;
            n = nodes[n].fail;
        }
    }

    void build();
    bool matches(std::string_view v) const;

  private:
    // A glob whose prefix or suffix fits the value: its pieces start at or after `pos`
    // and must all end by `limit`.
    struct Candidate {
        std::uint32_t glob;
        std::size_t pos, limit;
    };

    void add_pieces(Trie& trie, std::vector<std::int32_t>& literal_of);
    void flatten(const Trie& trie, const std::vector<std::int32_t>& literal_of);
    void link(const Trie& trie);
    void index_globs();

    bool anchored_match(std::string_view v, std::vector<Candidate>& candidates) const;
    bool consider(std::string_view v, std::uint32_t g, std::vector<Candidate>& candidates) const;
    bool pass(std::string_view v, const std::vector<Candidate>& candidates) const;
    bool occurrence(Scratch& s, std::uint32_t lit, std::size_t end, std::size_t size) const;
    void wait(Scratch& s, std::uint32_t g, std::uint32_t k, std::size_t pos,
              std::size_t limit) const;
    bool found(Scratch& s, std::uint32_t g, std::uint32_t k, std::size_t end,
               std::size_t limit) const;
};

void GlobSet::Impl::build() {
    Trie trie(1);
    std::vector<std::int32_t> literal_of(1, -1);  // per trie node: its literal, or -1
    add_pieces(trie, literal_of);
    flatten(trie, literal_of);
    link(trie);
    index_globs();
}

// Gives every distinct middle piece a literal number and a path in the trie, and lists
// each glob's pieces by literal.
void GlobSet::Impl::add_pieces(Trie& trie, std::vector<std::int32_t>& literal_of) {
    std::unordered_map<std::string, std::uint32_t> literal_ids;
    piece_start.reserve(globs.size() + 1);
    for (const Glob& glob : globs) {
        piece_start.push_back(static_cast<std::uint32_t>(pieces.size()));
        if (glob.has_star && glob.prefix.empty() && glob.suffix.empty() && glob.middle.empty())
            match_all = true;
        for (const auto& piece : glob.middle) {
            auto [it, fresh] =
                literal_ids.try_emplace(piece, static_cast<std::uint32_t>(literal_size.size()));
            pieces.push_back(it->second);
            if (!fresh) continue;
            literal_size.push_back(static_cast<std::uint32_t>(piece.size()));
            std::uint32_t n = 0;
            for (unsigned char c : piece) {
                auto [child, added] =
                    trie[n].try_emplace(c, static_cast<std::uint32_t>(trie.size()));
                if (added) {
                    trie.emplace_back();
                    literal_of.push_back(-1);
                }
                n = child->second;
            }
            literal_of[n] = static_cast<std::int32_t>(it->second);
        }
    }
    piece_start.push_back(static_cast<std::uint32_t>(pieces.size()));
}

// The trie as flat arrays: each node's children sorted by byte, the root's as a table.
void GlobSet::Impl::flatten(const Trie& trie, const std::vector<std::int32_t>& literal_of) {
    nodes.resize(trie.size());
    for (std::uint32_t n = 0; n < trie.size(); ++n) {
        nodes[n].first_child = static_cast<std::uint32_t>(child_byte.size());
        nodes[n].children = static_cast<std::uint16_t>(trie[n].size());
        nodes[n].literal = literal_of[n];
        for (auto [c, next] : trie[n]) {
            child_byte.push_back(c);
            child_node.push_back(next);
        }
    }
    for (auto [c, next] : trie[0]) root_next[c] = next;
}

// Failure and output links, breadth first.
void GlobSet::Impl::link(const Trie& trie) {
    std::vector<std::uint32_t> queue;
    for (auto [c, next] : trie[0]) queue.push_back(next);
    for (std::size_t qi = 0; qi < queue.size(); ++qi) {
        std::uint32_t n = queue[qi];
        for (auto [c, next] : trie[n]) {
            std::uint32_t f = step(nodes[n].fail, c);
            nodes[next].fail = f;
            nodes[next].out = nodes[f].literal >= 0 ? f : nodes[f].out;
            queue.push_back(next);
        }
    }
}

// Each glob is found by its prefix, else its suffix, else its first piece.
void GlobSet::Impl::index_globs() {
    unanchored_by_first.resize(literal_size.size());
    for (std::uint32_t g = 0; g < globs.size(); ++g) {
        const Glob& glob = globs[g];
        if (!glob.has_star || !glob.prefix.empty())
            by_prefix[glob.prefix].push_back(g);  // a plain string: prefix = whole value
        else if (!glob.suffix.empty())
            by_suffix[glob.suffix].push_back(g);
        else if (piece_count(g) > 0)
            unanchored_by_first[pieces[piece_start[g]]].push_back(g);
    }
    for (const auto& [p, gs] : by_prefix) prefix_sizes.push_back(p.size());
    for (const auto& [s, gs] : by_suffix) suffix_sizes.push_back(s.size());
    for (auto* sizes : {&prefix_sizes, &suffix_sizes}) {
        std::sort(sizes->begin(), sizes->end());
        sizes->erase(std::unique(sizes->begin(), sizes->end()), sizes->end());
    }
}

// The lookup's parts below are inline: they were one function, and a lookup that matches
// early costs a few dozen nanoseconds, so a call each would show (glob_bench "words / all";
// "pieces / all" runs 2,000 waits).
bool GlobSet::Impl::matches(std::string_view v) const {
    if (match_all) return true;
    thread_local std::vector<Candidate> candidates;
    candidates.clear();
    if (anchored_match(v, candidates)) return true;
    if (literal_size.empty()) return false;
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.pos < b.pos; });
    return pass(v, candidates);
}

// Looks the value's prefixes and suffixes up: true if a glob without middle pieces
// matches; the globs with middle pieces become candidates for the pass.
inline bool GlobSet::Impl::anchored_match(std::string_view v,
                                          std::vector<Candidate>& candidates) const {
    for (std::size_t n : prefix_sizes) {
        if (n > v.size()) break;
        if (auto it = by_prefix.find(v.substr(0, n)); it != by_prefix.end())
            for (std::uint32_t g : it->second)
                if (consider(v, g, candidates)) return true;
    }
    for (std::size_t n : suffix_sizes) {
        if (n > v.size()) break;
        if (auto it = by_suffix.find(v.substr(v.size() - n)); it != by_suffix.end())
            for (std::uint32_t g : it->second)
                if (consider(v, g, candidates)) return true;
    }
    return false;
}

inline bool GlobSet::Impl::consider(std::string_view v, std::uint32_t g,
                                    std::vector<Candidate>& candidates) const {
    const Glob& glob = globs[g];
    if (!glob.has_star) return v.size() == glob.prefix.size();
    if (v.size() < glob.prefix.size() + glob.suffix.size() || !v.ends_with(glob.suffix))
        return false;
    if (piece_count(g) == 0) return true;
    candidates.push_back({g, glob.prefix.size(), v.size() - glob.suffix.size()});
    return false;
}

// One pass of the automaton over the value; stops at the first glob that completes.
inline bool GlobSet::Impl::pass(std::string_view v,
                                const std::vector<Candidate>& candidates) const {
    thread_local Scratch s;
    s.begin(literal_size.size());
    std::size_t next_candidate = 0;
    std::uint32_t state = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        // A candidate joins once the pass reaches its start, so that every FIFO stays in
        // order of `pos` (a wait added at offset i has pos i or i + 1).
        for (; next_candidate < candidates.size() && candidates[next_candidate].pos <= i;
             ++next_candidate) {
            const Candidate& c = candidates[next_candidate];
            wait(s, c.glob, 0, c.pos, c.limit);
        }
        state = step(state, static_cast<unsigned char>(v[i]));
        for (std::uint32_t n = nodes[state].literal >= 0 ? state : nodes[state].out; n != 0;
             n = nodes[n].out)
            if (occurrence(s, static_cast<std::uint32_t>(nodes[n].literal), i, v.size()))
                return true;
    }
    return false;
}

// Literal `lit` occurs ending at offset `end`: the globs waiting for it move on.
inline bool GlobSet::Impl::occurrence(Scratch& s, std::uint32_t lit, std::size_t end,
                                      std::size_t size) const {
    std::size_t start = end + 1 - literal_size[lit];
    if (s.fired[lit] != s.stamp) {  // the first occurrence serves every unanchored glob
        s.fired[lit] = s.stamp;
        for (std::uint32_t g : unanchored_by_first[lit])
            if (found(s, g, 0, end, size)) return true;
    }
    if (s.wait_stamp[lit] != s.stamp) return false;
    while (s.head[lit] != 0 && s.pool[s.head[lit]].pos <= start) {
        Scratch::Wait w = s.pool[s.head[lit]];
        s.head[lit] = w.next;
        if (found(s, w.glob, w.piece, end, w.limit)) return true;
    }
    return false;
}

// Glob g waits for its piece k, at or after `pos`, all of its pieces by `limit`.
inline void GlobSet::Impl::wait(Scratch& s, std::uint32_t g, std::uint32_t k, std::size_t pos,
                                std::size_t limit) const {
    std::uint32_t lit = pieces[piece_start[g] + k];
    auto w = static_cast<std::uint32_t>(s.pool.size());
    s.pool.push_back({g, k, pos, limit, 0});
    if (s.wait_stamp[lit] != s.stamp || s.head[lit] == 0) {
        s.wait_stamp[lit] = s.stamp;
        s.head[lit] = w;
    } else {
        s.pool[s.tail[lit]].next = w;
    }
    s.tail[lit] = w;
}

// Glob g found its piece k ending at offset `end`: it matches, or waits for the next.
inline bool GlobSet::Impl::found(Scratch& s, std::uint32_t g, std::uint32_t k, std::size_t end,
                                 std::size_t limit) const {
    if (end + 1 > limit) return false;  // leftmost already ends too late
    if (k + 1 == piece_count(g)) return true;
    wait(s, g, k + 1, end + 1, limit);
    return false;
}

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
    impl_->globs.shrink_to_fit();
    impl_->build();
    return {};
}

bool GlobSet::matches(std::string_view lower_value) const {
    if (!impl_ || !impl_->finished) return false;
    std::string_view v = match_window(lower_value);
    if (impl_->globs.size() <= kDirectGlobLimit && v.size() <= kDirectValueLimit) {
        for (const auto& g : impl_->globs)
            if (g.matches(v)) return true;
        return false;
    }
    return impl_->matches(v);
}

void ListMatcher::reserve(std::size_t entries) {
    // Only the kinds that keep their items in exact_ use it: an IP or number list that
    // reserved it would hold an empty table of 16 bytes per expected entry.
    if (type_ == ValueType::Address || type_ == ValueType::Host || type_ == ValueType::Text)
        exact_.reserve(entries);
}

bool ListMatcher::add_item(std::string_view item, const SourceLocation& where,
                           std::string_view field_name, Diagnostics& diags) {
    std::string why;
    switch (type_) {
        case ValueType::Ip: why = add_ip(item, field_name); break;
        case ValueType::Address: why = add_address(item, field_name); break;
        case ValueType::Host: why = add_host(item, field_name); break;
        case ValueType::Text: why = add_text(item); break;
        case ValueType::Number: why = add_number(item, field_name); break;
        case ValueType::Bool:
            why = "cannot match " + std::string(field_name) + ", which is a boolean";
            break;
    }
    if (!why.empty()) {
        // A feed gone wrong can have lines of any length: quote enough to find it.
        constexpr std::size_t kQuoted = 100;
        std::string shown(item.substr(0, kQuoted));
        if (item.size() > kQuoted) shown += "...";
        diags.error(where, "list item '" + shown + "' " + why);
        return false;
    }
    ++entries_;
    return true;
}

// Each add_* below returns why the item does not fit the list's type, or "" once added.
// Only the textual kinds take a lower-case copy: a million-line IP list is parsed once
// per item, with no copy.

std::string ListMatcher::add_ip(std::string_view item, std::string_view field_name) {
    auto prefix = parse_ip_prefix(item);
    if (!prefix) {
        if (std::string why = ip_prefix_problem(item); !why.empty())
            return "is not an IP address or CIDR prefix: " + why;
        return "is not an IP address or CIDR prefix, but " + std::string(field_name) +
               " is an IP address";
    }
    // Postfix skips such a cidr table entry and refuses it in mynetworks: a typo in the
    // address or the length is likelier than a wish for the wider net.
    if (prefix->host_bits_set)
        return "has host bits set; did you mean '" + prefix->address.to_string() + "/" +
               std::to_string(prefix->length) + "'?";
    ips_.add(*prefix);
    return {};
}

std::string ListMatcher::add_address(std::string_view item, std::string_view field_name) {
    if (parse_ip_prefix(item))
        return "is an IP address, but " + std::string(field_name) + " is a mail address";
    if (item.empty() || item == "<>") {
        null_sender_ = true;
        return {};
    }
    std::string lower = ascii_lower(item);
    if (lower.find('*') != std::string::npos) {
        globs_.add(lower);
    } else if (lower.front() == '@') {
        if (lower.size() == 1) return "names no domain after '@'";
        domains_.insert(std::string_view(lower).substr(1));
    } else if (lower.front() == '.') {
        if (lower.size() == 1) return "names no domain after '.'";
        subdomains_.insert(std::string_view(lower).substr(1));
    } else if (lower.find('@') != std::string::npos) {
        exact_.insert(lower);
    } else {
        return "is not a mail address; write '@" + std::string(item) + "' for the domain or '." +
               std::string(item) + "' for its subdomains";
    }
    return {};
}

std::string ListMatcher::add_host(std::string_view item, std::string_view field_name) {
    if (item.find('/') != std::string_view::npos && parse_ip_prefix(item))
        return "is an IP prefix, but " + std::string(field_name) + " is a host name";
    std::string lower = ascii_lower(item);
    if (lower.find('@') != std::string::npos)
        return "is a mail address, but " + std::string(field_name) + " is a host name";
    if (lower.find('*') != std::string::npos)
        globs_.add(lower);
    else if (lower.size() > 1 && lower.front() == '.')
        subdomains_.insert(std::string_view(lower).substr(1));
    else
        exact_.insert(normalize_host(lower));
    return {};
}

std::string ListMatcher::add_text(std::string_view item) {
    std::string lower = ascii_lower(item);
    if (lower.find('*') != std::string::npos)
        globs_.add(lower);
    else
        exact_.insert(lower);
    return {};
}

std::string ListMatcher::add_number(std::string_view item, std::string_view field_name) {
    std::uint64_t n = 0;
    if (!parse_size(item, n)) {
        if (std::string why = size_problem(item); !why.empty()) return "is not a number: " + why;
        return "is not a number, but " + std::string(field_name) + " is a number";
    }
    numbers_.insert(n);
    return {};
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
