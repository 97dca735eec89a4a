// SPDX-License-Identifier: BSD-2-Clause
#include "store/greylist_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace pm {

namespace {

// The first line of a state file; another version is another format.
constexpr std::string_view kHeader = "policy-milter greylist 1";
// Entries swept per decision, from the front of each list: O(1), and more than are added.
constexpr int kSweepPerCheck = 4;

char kind_letter(int kind) {
    return "ptc"[kind];
}

std::runtime_error save_error(const std::string& what, const std::string& path) {
    return std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

void write_all(int fd, const std::string& data, const std::string& path) {
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw save_error("cannot write", path);
        done += static_cast<std::size_t>(n);
    }
}

void fsync_directory(const std::string& path) {
    auto slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;  // the rename is done; only its durability is in doubt
    ::fsync(fd);
    ::close(fd);
}

bool read_number(std::string_view& line, std::uint64_t& out) {
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), out);
    if (ec != std::errc{} || p == line.data()) return false;
    line.remove_prefix(static_cast<std::size_t>(p - line.data()));
    return true;
}

// One entry line, "K HEX FIRST LAST DEAD COUNT": its kind letter (p, t or c), or 0.
char parse_entry(std::string_view l, GreylistKey& key, GreylistEntry& e, std::uint64_t& count) {
    if (l.size() < 35 || l[1] != ' ' || (l[0] != 'p' && l[0] != 't' && l[0] != 'c')) return 0;
    char letter = l[0];
    auto parsed = greylist_key_from_hex(l.substr(2, 32));
    l.remove_prefix(34);
    if (!parsed || !read_number(l, e.first_ms) || !read_number(l, e.last_ms) ||
        !read_number(l, e.dead_ms) || !read_number(l, count) || !l.empty())
        return 0;
    key = *parsed;
    return letter;
}

// `out` into `path` atomically: a temporary file beside it, fsync, rename, fsync of the
// directory.
void write_state_file(const std::string& path, const std::string& out) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw save_error("cannot create", tmp);
    try {
        write_all(fd, out, tmp);
        if (::fsync(fd) != 0) throw save_error("cannot fsync", tmp);
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        auto e = save_error("cannot rename " + tmp + " to", path);
        ::unlink(tmp.c_str());
        throw e;
    }
    fsync_directory(path);
}

}  // namespace

Clock wall_clock_ms() {
    return [] {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
    };
}

std::string greylist_state_file(const std::string& state_dir) {
    if (!state_dir.empty() && state_dir.back() == '/') return state_dir + "greylist.state";
    return state_dir + "/greylist.state";
}

std::size_t MemoryGreylistStore::KeyHash::operator()(const GreylistKey& k) const {
    std::size_t h = 0;
    std::memcpy(&h, k.data(), sizeof h);  // already a hash: its first bytes will do
    return h;
}

MemoryGreylistStore::MemoryGreylistStore(std::size_t max_entries, Clock clock)
    : max_entries_(max_entries == 0 ? 1 : max_entries), clock_(std::move(clock)) {}

std::string MemoryGreylistStore::describe() const {
    return "memory (at most " + std::to_string(max_entries_) + " entries)";
}

std::size_t MemoryGreylistStore::size() const {
    std::lock_guard lock(mutex_);
    return index_.size();
}

std::uint64_t MemoryGreylistStore::unsaved() const {
    std::lock_guard lock(mutex_);
    return changes_;
}

void MemoryGreylistStore::put(const GreylistKey& key, Kind kind, const GreylistEntry& e,
                              std::uint64_t count, bool to_back) {
    auto it = index_.find(key);
    if (it == index_.end()) {
        List& list = list_of(kind);
        list.push_back(Node{key, kind, e, count});
        index_.emplace(key, std::prev(list.end()));
        return;
    }
    List::iterator node = it->second;
    List& from = list_of(node->kind);
    List& to = list_of(kind);
    node->kind = kind;
    node->entry = e;
    node->count = count;
    if (to_back || &from != &to) to.splice(to.end(), from, node);
}

void MemoryGreylistStore::sweep(std::uint64_t now) {
    for (List* list : {&pending_, &kept_})
        for (int i = 0; i < kSweepPerCheck && !list->empty(); ++i) {
            if (list->front().entry.dead_ms > now) break;
            index_.erase(list->front().key);
            list->pop_front();
        }
}

void MemoryGreylistStore::bound() {
    while (index_.size() > max_entries_) {
        List& list = pending_.empty() ? kept_ : pending_;
        index_.erase(list.front().key);
        list.pop_front();
    }
}

GreylistAnswer MemoryGreylistStore::check(const GreylistRequest& r) {
    std::lock_guard lock(mutex_);
    std::uint64_t now = clock_();
    sweep(now);
    std::optional<GreylistEntry> entry;
    std::optional<GreylistClient> client;
    if (auto t = index_.find(r.triplet); t != index_.end() && t->second->kind != Kind::Client)
        entry = t->second->entry;
    if (r.auto_whitelist > 0)
        if (auto c = index_.find(r.client); c != index_.end() && c->second->kind == Kind::Client)
            client = GreylistClient{c->second->count, c->second->entry.dead_ms};
    GreylistAnswer a = greylist_step(entry, client, r, now);
    if (a.why != GreylistAnswer::Why::Whitelisted && entry)
        put(r.triplet, entry->passed ? Kind::Passed : Kind::Pending, *entry, 0,
            a.why != GreylistAnswer::Why::Early);
    if (client && a.pass) {
        GreylistEntry times{now, now, client->dead_ms, true};
        put(r.client, Kind::Client, times, client->count, true);
    }
    bound();
    ++changes_;
    return a;
}

void MemoryGreylistStore::save(const std::string& path) {
    std::string out;
    std::uint64_t taken = 0;
    {
        std::lock_guard lock(mutex_);
        out.reserve(64 + index_.size() * 72);
        out.append(kHeader).append("\n");
        for (const List* list : {&pending_, &kept_})
            for (const Node& n : *list) {
                out += kind_letter(static_cast<int>(n.kind));
                out += ' ';
                out += greylist_key_hex(n.key);
                for (std::uint64_t v :
                     {n.entry.first_ms, n.entry.last_ms, n.entry.dead_ms, n.count})
                    out += ' ' + std::to_string(v);
                out += '\n';
            }
        out += "end " + std::to_string(index_.size()) + "\n";
        taken = std::exchange(changes_, 0);
    }
    try {
        write_state_file(path, out);
    } catch (...) {
        // Not saved: still to be saved, by the next periodic save or the one at stop.
        std::lock_guard lock(mutex_);
        changes_ = saturating_add(changes_, taken);
        throw;
    }
}

bool MemoryGreylistStore::load(const std::string& path, std::string& why) {
    {
        std::lock_guard lock(mutex_);
        pending_.clear();
        kept_.clear();
        index_.clear();
        changes_ = 0;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) return true;
        why = "cannot read " + path + ": " + std::strerror(errno);
        return false;
    }
    std::string line;
    std::size_t line_no = 1;
    if (!std::getline(in, line) || line != kHeader) {
        why = path + ":1: not a greylist state file (\"" + std::string(kHeader) + "\")";
        return false;
    }
    std::uint64_t now = clock_();
    std::lock_guard lock(mutex_);
    std::size_t read = 0;
    auto fail = [&](const std::string& what) {
        why = path + ":" + std::to_string(line_no) + ": " + what + "; starting with no entries";
        pending_.clear();
        kept_.clear();
        index_.clear();
        return false;
    };
    while (std::getline(in, line)) {
        ++line_no;
        std::string_view l = line;
        if (l.starts_with("end ")) {
            std::uint64_t n = 0;
            l.remove_prefix(4);
            if (!read_number(l, n) || !l.empty() || n != read) return fail("bad end line");
            if (std::getline(in, line)) return fail("data after the end line");
            bound();
            return true;
        }
        GreylistKey key{};
        GreylistEntry e;
        std::uint64_t count = 0;
        char letter = parse_entry(l, key, e, count);
        if (!letter) return fail("bad entry");
        ++read;
        Kind kind = letter == 'p' ? Kind::Pending : letter == 't' ? Kind::Passed : Kind::Client;
        e.passed = kind != Kind::Pending;
        if (e.dead_ms > now && !index_.count(key)) put(key, kind, e, count, true);
    }
    return fail("truncated: no end line");
}

}  // namespace pm
