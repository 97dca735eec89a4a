// SPDX-License-Identifier: BSD-2-Clause
// The daemon's config file (policy-milter.conf(5), FORMAT): `key = value` lines and `#` comments.
// The lines are read here, so that every error is reported at its FILE:LINE:COL; the good ones go
// to Boost.Program_options as parsed_options, which converts and stores their values.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <istream>
#include <map>
#include <string>

#include "policy/diagnostics.h"

namespace pm {

// Checks a value Boost cannot check by its type: a message, or empty when it is good.
using ConfigValueCheck =
    std::function<std::string(const std::string& key, const std::string& value)>;

struct ConfigFile {
    // The good lines, for po::store. Points at the options_description it was read
    // against, which must outlive it.
    boost::program_options::parsed_options options{nullptr};
    // Where each good setting's value starts, for diagnostics found later (start-up checks).
    std::map<std::string, SourceLocation> locations;
    // One error per bad line: unknown key, no '=', no value, a value Boost or `check`
    // refuses, a key given twice.
    Diagnostics diagnostics;
};

// Reads `in`, named `file_name` in diagnostics, against the keys of `keys`.
ConfigFile read_config_file(std::istream& in, const std::string& file_name,
                            const boost::program_options::options_description& keys,
                            const ConfigValueCheck& check = {});

// Reads the file at `path`. A missing file is an error only if `must_exist`; a directory
// or a file that cannot be read always is (/dev/null reads as an empty file).
ConfigFile read_config_file(const std::string& path, bool must_exist,
                            const boost::program_options::options_description& keys,
                            const ConfigValueCheck& check = {});

}  // namespace pm
