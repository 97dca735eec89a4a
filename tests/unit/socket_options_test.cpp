// SPDX-License-Identifier: BSD-2-Clause
// socket-mode and socket-group (policy-milter.conf(5), KEYS): what a unix socket's permissions
// become, from the command line or the config file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/options.h"

namespace pm {
namespace {

struct Parsed {
    std::optional<int> exit_code;
    Options options;
    std::string out, err;
};

// Parses `args` with no config file unless the arguments name one.
Parsed run(std::vector<std::string> args) {
    if (std::find(args.begin(), args.end(), "--config") == args.end())
        args.insert(args.begin(), {"--config", "/dev/null"});
    args.insert(args.begin(), "policy-milter");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    Parsed r;
    std::ostringstream out, err;
    r.exit_code = parse_options(static_cast<int>(argv.size()), argv.data(), r.options, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

TEST(SocketOptions, Defaults) {
    Parsed r = run({});
    EXPECT_EQ(r.exit_code, std::nullopt);
    EXPECT_EQ(r.options.socket_mode, 0660u);
    EXPECT_EQ(r.options.socket_group, "");
}

TEST(SocketOptions, OctalModes) {
    for (auto [text, mode] : std::vector<std::pair<std::string, unsigned>>{
             {"0660", 0660}, {"660", 0660}, {"0600", 0600}, {"0777", 0777}, {"0", 0}, {"007", 7}}) {
        Parsed r = run({"--socket-mode", text});
        EXPECT_EQ(r.exit_code, std::nullopt) << text << ": " << r.err;
        EXPECT_EQ(r.options.socket_mode, mode) << text;
    }
}

TEST(SocketOptions, BadModesAreUsageErrors) {
    for (std::string text : {"999", "0o660", "01000", "1777", "rw-rw----", "-660", "", "06600"}) {
        Parsed r = run({"--socket-mode", text});
        EXPECT_EQ(r.exit_code, 2) << text;
        EXPECT_NE(r.err.find("socket-mode '" + text + "' is not an octal mode from 0 to 0777"),
                  std::string::npos)
            << text << ": " << r.err;
    }
}

TEST(SocketOptions, Group) {
    Parsed r = run({"--socket-group", "postfix"});
    EXPECT_EQ(r.exit_code, std::nullopt);
    EXPECT_EQ(r.options.socket_group, "postfix");
}

TEST(SocketOptions, FromTheConfigFileAndTheCommandLineWins) {
    std::string path = ::testing::TempDir() + "pm-socket-options.conf";
    std::ofstream(path) << "socket-mode = 0600\nsocket-group = postfix\n";
    Parsed r = run({"--config", path});
    EXPECT_EQ(r.exit_code, std::nullopt) << r.err;
    EXPECT_EQ(r.options.socket_mode, 0600u);
    EXPECT_EQ(r.options.socket_group, "postfix");

    r = run({"--config", path, "--socket-mode", "0666", "--socket-group", "mail"});
    EXPECT_EQ(r.exit_code, std::nullopt) << r.err;
    EXPECT_EQ(r.options.socket_mode, 0666u);
    EXPECT_EQ(r.options.socket_group, "mail");
    std::remove(path.c_str());
}

TEST(SocketOptions, BadModeInTheConfigFile) {
    std::string path = ::testing::TempDir() + "pm-socket-options-bad.conf";
    std::ofstream(path) << "socket-mode = 0869\n";
    Parsed r = run({"--config", path});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find(path + ":1:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("socket-mode '0869' is not an octal mode from 0 to 0777"),
              std::string::npos)
        << r.err;
    std::remove(path.c_str());
}

TEST(SocketOptions, InTheHelp) {
    Parsed r = run({"--help"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("--socket-mode MODE"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--socket-group GROUP"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace pm
