// SPDX-License-Identifier: BSD-2-Clause
#include "bench/bench_util.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

namespace pm::bench {

std::string data_dir() {
    if (const char* env = std::getenv("PM_BENCH_DATA"); env && *env) return env;
    return PM_BENCH_DATA_DIR;
}

std::shared_ptr<const Policy> load_or_die(const std::string& path) {
    LoadResult result = load_policy_file(path);
    const auto& diags = result.diagnostics;
    std::size_t shown = 0;
    for (const auto& d : diags.all()) {
        if (++shown > 20) break;
        std::cerr << d << '\n';
    }
    if (!result.policy) {
        std::cerr << path << ": " << diags.error_count()
                  << " error(s); run bench/gen-large-policy to (re)create the data\n";
        std::exit(2);
    }
    return result.policy;
}

namespace {
void collect(const Condition& c, std::set<const ListMatcher*>& out) {
    if (c.list) out.insert(c.list.get());
    for (const auto& child : c.children) collect(child, out);
}
}  // namespace

std::vector<const ListMatcher*> policy_lists(const Policy& policy) {
    std::set<const ListMatcher*> lists;
    for (const auto& st : policy.statements())
        if (st.when) collect(*st.when, lists);
    return {lists.begin(), lists.end()};
}

std::uint64_t list_files_bytes(const Policy& policy) {
    const auto& files = policy.source_files();
    std::uint64_t total = 0;
    for (std::size_t i = 1; i < files.size(); ++i) {  // [0] is the rules file
        std::error_code ec;
        auto n = std::filesystem::file_size(files[i], ec);
        if (!ec) total += n;
    }
    return total;
}

std::uint64_t proc_status_bytes(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    std::size_t key_len = std::strlen(key);
    while (std::getline(in, line)) {
        if (line.compare(0, key_len, key) != 0 || line.size() <= key_len || line[key_len] != ':')
            continue;
        return std::strtoull(line.c_str() + key_len + 1, nullptr, 10) * 1024;  // "NNN kB"
    }
    return 0;
}

}  // namespace pm::bench
