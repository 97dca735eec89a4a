#include "config/config_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string_view>
#include <system_error>
#include <vector>

namespace po = boost::program_options;

namespace pm {

namespace {

constexpr std::string_view kBlanks = " \t\r\f\v";

std::string trim(std::string_view s) {
    std::size_t first = s.find_first_not_of(kBlanks);
    if (first == std::string_view::npos) return {};
    return std::string(s.substr(first, s.find_last_not_of(kBlanks) - first + 1));
}

// Edit distance counting a swap of two neighbours as one edit (optimal string alignment).
std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t change = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + change});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.size()][b.size()];
}

// The key nearest to `word` within two edits (the first of equally near ones), or empty.
std::string closest_key(const std::string& word, const po::options_description& keys) {
    std::string best;
    std::size_t best_distance = 3;
    for (const auto& option : keys.options()) {
        std::size_t distance = edit_distance(word, option->long_name());
        if (distance < best_distance) {
            best = option->long_name();
            best_distance = distance;
        }
    }
    return best;
}

// What Boost (conversion to the option's type) or `check` says against one setting: a
// message, or empty. The setting is stored alone, so nothing else of the file interferes.
std::string value_problem(const po::options_description& keys, const po::option& setting,
                          const ConfigValueCheck& check) {
    const std::string& key = setting.string_key;
    const std::string& value = setting.value.front();
    po::parsed_options one(&keys);
    one.options.push_back(setting);
    po::variables_map scratch;
    try {
        po::store(one, scratch);
    } catch (const po::invalid_bool_value&) {
        return key + " '" + value + "' is not 'yes' or 'no'";
    } catch (const po::error& e) {
        return e.what();
    }
    return check ? check(key, value) : std::string();
}

}  // namespace

ConfigFile read_config_file(std::istream& in, const std::string& file_name,
                            const po::options_description& keys, const ConfigValueCheck& check) {
    ConfigFile result;
    result.options = po::parsed_options(&keys);
    auto file = std::make_shared<const std::string>(file_name);
    std::map<std::string, std::uint32_t> first_line;  // of each known key
    std::string text;
    for (std::uint32_t line_no = 1; std::getline(in, text); ++line_no) {
        auto at = [&](std::size_t pos) {
            return SourceLocation{file, line_no, static_cast<std::uint32_t>(pos + 1)};
        };
        // As in Boost's own config file parser, '#' starts a comment anywhere.
        std::string_view line = std::string_view(text).substr(0, text.find('#'));
        std::size_t start = line.find_first_not_of(kBlanks);
        if (start == std::string_view::npos) continue;
        std::size_t equals = line.find('=');
        if (equals == std::string_view::npos) {
            result.diagnostics.error(at(start), "expected 'key = value', got '" + trim(line) + "'");
            continue;
        }
        std::string key = trim(line.substr(0, equals));
        if (key.empty()) {
            result.diagnostics.error(at(equals), "expected a key before '='");
            continue;
        }
        if (!keys.find_nothrow(key, false)) {
            std::string message = "unknown key '" + key + "'";
            if (std::string near = closest_key(key, keys); !near.empty())
                message += "; did you mean '" + near + "'?";
            result.diagnostics.error(at(start), message);
            continue;
        }
        if (auto [first, inserted] = first_line.emplace(key, line_no); !inserted) {
            result.diagnostics.error(
                at(start), "'" + key + "' is already set on line " + std::to_string(first->second));
            continue;
        }
        std::size_t value_start = line.find_first_not_of(kBlanks, equals + 1);
        if (value_start == std::string_view::npos) {
            result.diagnostics.error(at(equals + 1), "'" + key + "' has no value");
            continue;
        }
        std::string value = trim(line.substr(value_start));
        po::option setting(key, {value});
        setting.original_tokens = {key, value};
        if (std::string problem = value_problem(keys, setting, check); !problem.empty()) {
            result.diagnostics.error(at(value_start), problem);
            continue;
        }
        result.locations.emplace(key, at(value_start));
        result.options.options.push_back(std::move(setting));
    }
    return result;
}

ConfigFile read_config_file(const std::string& path, bool must_exist,
                            const po::options_description& keys, const ConfigValueCheck& check) {
    namespace fs = std::filesystem;
    ConfigFile unread;
    unread.options = po::parsed_options(&keys);
    std::error_code ec;
    fs::file_status status = fs::status(path, ec);
    if (status.type() == fs::file_type::not_found) {
        if (must_exist)
            unread.diagnostics.file_error(
                path, std::string("cannot read config file: ") + std::strerror(ENOENT));
        return unread;
    }
    if (ec) {
        unread.diagnostics.file_error(path, "cannot read config file: " + ec.message());
        return unread;
    }
    if (fs::is_directory(status)) {  // an ifstream would open it and read nothing
        unread.diagnostics.file_error(
            path, std::string("cannot read config file: ") + std::strerror(EISDIR));
        return unread;
    }
    std::ifstream in(path);
    if (!in) {
        unread.diagnostics.file_error(
            path, std::string("cannot read config file: ") + std::strerror(errno));
        return unread;
    }
    return read_config_file(in, path, keys, check);
}

}  // namespace pm
