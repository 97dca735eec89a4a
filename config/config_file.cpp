// SPDX-License-Identifier: BSD-2-Clause
#include "config/config_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <sstream>
#include <string_view>
#include <vector>

#include "policy/text_file.h"

namespace po = boost::program_options;

namespace pm {

namespace {

constexpr std::string_view kBlanks = " \t\r\f\v";

std::string trim(std::string_view s) {
    std::size_t first = s.find_first_not_of(kBlanks);
    if (first == std::string_view::npos) return {};
    return std::string(s.substr(first, s.find_last_not_of(kBlanks) - first + 1));
}

// The key nearest to `word` (see closest_match), or empty.
std::string closest_key(const std::string& word, const po::options_description& keys) {
    std::vector<std::string_view> names;
    for (const auto& option : keys.options()) names.push_back(option->long_name());
    return closest_match(word, names);
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
    ConfigFile unread;
    unread.options = po::parsed_options(&keys);
    TextFile file(path, kMaxConfigFileBytes);
    std::string text;
    if (!file.read_all(text)) {
        if (file.error_code() != ENOENT || must_exist)
            unread.diagnostics.file_error(path, "cannot read config file: " + file.error());
        return unread;
    }
    std::istringstream in(std::move(text));
    return read_config_file(in, path, keys, check);
}

}  // namespace pm
