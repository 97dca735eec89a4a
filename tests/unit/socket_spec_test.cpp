// SPDX-License-Identifier: BSD-2-Clause
// The milter socket spec (config/socket_spec): what is accepted is passed to libmilter in a
// form it reads exactly as written; what libmilter would misread is refused, with the
// spelling that was meant.
#include "config/socket_spec.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace pm {
namespace {

std::string refused(const std::string& text) {
    std::string why;
    auto spec = parse_socket_spec(text, why);
    EXPECT_FALSE(spec) << text << " was accepted as " << (spec ? spec->to_libmilter() : "");
    return why;
}

TEST(SocketSpec, AcceptedAndPassedOnExactly) {
    for (auto [text, libmilter] : std::vector<std::pair<std::string, std::string>>{
             {"unix:/run/policy-milter/milter.sock", "unix:/run/policy-milter/milter.sock"},
             {"local:/var/spool/postfix/pm/pm.sock", "unix:/var/spool/postfix/pm/pm.sock"},
             {"inet:8895@127.0.0.1", "inet:8895@[127.0.0.1]"},
             {"inet:8895@[127.0.0.1]", "inet:8895@[127.0.0.1]"},
             {"inet:8895@localhost", "inet:8895@localhost"},
             {"inet:8895@mx-1.example.org.", "inet:8895@mx-1.example.org."},
             {"inet:8895", "inet:8895"},
             {"inet:65535@10.0.0.1", "inet:65535@[10.0.0.1]"},
             {"inet6:8895@::1", "inet6:8895@[::1]"},
             {"inet6:8895@[2001:db8::5]", "inet6:8895@[2001:db8::5]"},
             {"inet6:8895@localhost", "inet6:8895@localhost"},
             {"INET:8895@127.0.0.1", "inet:8895@[127.0.0.1]"},  // libmilter ignores case too
         }) {
        std::string why;
        auto spec = parse_socket_spec(text, why);
        ASSERT_TRUE(spec) << text << ": " << why;
        EXPECT_EQ(spec->to_libmilter(), libmilter) << text;
    }
}

TEST(SocketSpec, EveryInterface) {
    std::string why;
    for (std::string text : {"inet:8895", "inet:8895@0.0.0.0", "inet6:8895",
                             "inet6:8895@::", "inet6:8895@[::]", "inet6:8895@0:0::0"}) {
        auto spec = parse_socket_spec(text, why);
        ASSERT_TRUE(spec) << text << ": " << why;
        EXPECT_TRUE(spec->all_interfaces()) << text;
    }
    for (std::string text :
         {"inet:8895@127.0.0.1", "inet6:8895@::1", "inet:8895@localhost", "unix:/run/x.sock"}) {
        auto spec = parse_socket_spec(text, why);
        ASSERT_TRUE(spec) << text << ": " << why;
        EXPECT_FALSE(spec->all_interfaces()) << text;
    }
}

// The issue's trap: the Postfix spelling, which libmilter reads as port 127 on every
// interface, and its relatives.
TEST(SocketSpec, PostfixSpellingIsRefusedWithTheMeantOne) {
    EXPECT_EQ(refused("inet:127.0.0.1:8895"),
              "socket 'inet:127.0.0.1:8895': libmilter reads inet:PORT@HOST and would listen on "
              "port 127 on every interface; did you mean 'inet:8895@127.0.0.1'?");
    EXPECT_EQ(refused("inet:localhost:8895"),
              "socket 'inet:localhost:8895': libmilter reads inet:PORT@HOST; did you mean "
              "'inet:8895@localhost'?");
    EXPECT_EQ(refused("inet:[::1]:8895"),
              "socket 'inet:[::1]:8895': libmilter reads inet:PORT@HOST; did you mean "
              "'inet6:8895@[::1]'?");
    EXPECT_EQ(refused("inet:127.0.0.1@8895"),
              "socket 'inet:127.0.0.1@8895': libmilter reads inet:PORT@HOST; did you mean "
              "'inet:8895@127.0.0.1'?");
}

TEST(SocketSpec, NumericHostsLibmilterWouldReadOtherwise) {
    EXPECT_EQ(refused("inet:8895@127.1"),
              "socket 'inet:8895@127.1': host '127.1' is not a dotted-quad IPv4 address "
              "(libmilter would read it as 127.0.0.1)");
    EXPECT_EQ(refused("inet:8895@010.0.0.1"),
              "socket 'inet:8895@010.0.0.1': host '010.0.0.1' is not a dotted-quad IPv4 address "
              "(libmilter would read it as 8.0.0.1)");
    EXPECT_EQ(refused("inet:8895@0x7f.1"),
              "socket 'inet:8895@0x7f.1': host '0x7f.1' is not a dotted-quad IPv4 address "
              "(libmilter would read it as 127.0.0.1)");
    EXPECT_EQ(refused("inet:8895@[127.1]"),
              "socket 'inet:8895@[127.1]': host '127.1' is not a dotted-quad IPv4 address "
              "(libmilter would read it as 127.0.0.1)");
    EXPECT_EQ(refused("inet:8895@256.1.1.1"),
              "socket 'inet:8895@256.1.1.1': host '256.1.1.1' is not a dotted-quad IPv4 address");
}

TEST(SocketSpec, WrongFamily) {
    EXPECT_EQ(refused("inet:8895@::1"),
              "socket 'inet:8895@::1': '::1' is an IPv6 address; did you mean "
              "'inet6:8895@[::1]'?");
    EXPECT_EQ(refused("inet6:8895@127.0.0.1"),
              "socket 'inet6:8895@127.0.0.1': '127.0.0.1' is an IPv4 address; did you mean "
              "'inet:8895@127.0.0.1'?");
}

TEST(SocketSpec, Ports) {
    for (std::string port : {"0", "65536", "99999", "smtp", "+25", "8895 ", "", "123456"}) {
        std::string text = "inet:" + port + "@127.0.0.1";
        EXPECT_EQ(refused(text),
                  "socket '" + text + "': " +
                      (port.empty() ? "port '' is not a number from 1 to 65535"
                                    : "port '" + port + "' is not a number from 1 to 65535"))
            << text;
    }
    EXPECT_EQ(refused("inet:"), "socket 'inet:': no port; expected inet:PORT@HOST");
}

TEST(SocketSpec, Hosts) {
    EXPECT_EQ(refused("inet:8895@"), "socket 'inet:8895@': no host after '@'");
    EXPECT_EQ(refused("inet:8895@[127.0.0.1"),
              "socket 'inet:8895@[127.0.0.1': host '[127.0.0.1' lacks its closing ']'");
    EXPECT_EQ(refused("inet:8895@[localhost]"),
              "socket 'inet:8895@[localhost]': only an IP address goes in brackets, not "
              "'localhost'");
    EXPECT_EQ(refused("inet:8895@mx_1.example"),
              "socket 'inet:8895@mx_1.example': host 'mx_1.example' is neither an IP address nor "
              "a host name");
    EXPECT_EQ(refused("inet:8895@ 127.0.0.1"),
              "socket 'inet:8895@ 127.0.0.1': host ' 127.0.0.1' is neither an IP address nor a "
              "host name");
    EXPECT_EQ(refused("inet6:8895@fe80::1%eth0"),
              "socket 'inet6:8895@fe80::1%eth0': host 'fe80::1%eth0' is not a valid IPv6 address");
}

TEST(SocketSpec, UnixPaths) {
    EXPECT_EQ(refused("unix:milter.sock"),
              "socket 'unix:milter.sock': the path must be absolute (libmilter would make it "
              "relative to the daemon's working directory)");
    EXPECT_EQ(refused("unix:"), "socket 'unix:': no path after 'unix:'");
    EXPECT_EQ(refused("/run/pm.sock"),
              "socket '/run/pm.sock': expected unix:PATH, inet:PORT@HOST or inet6:PORT@HOST; did "
              "you mean 'unix:/run/pm.sock'?");
    std::string longest = "/" + std::string(105, 'x');
    std::string why;
    EXPECT_TRUE(parse_socket_spec("unix:" + longest, why)) << why;
    EXPECT_EQ(refused("unix:" + longest + "x"),
              "socket 'unix:" + longest + "x': the path is longer than 106 bytes");
}

TEST(SocketSpec, Types) {
    EXPECT_EQ(refused("tcp:8895@127.0.0.1"),
              "socket 'tcp:8895@127.0.0.1': unknown socket type 'tcp'; expected unix:, local:, "
              "inet: or inet6:");
    EXPECT_EQ(refused("8895"),
              "socket '8895': expected unix:PATH, inet:PORT@HOST or inet6:PORT@HOST; did you mean "
              "'inet:8895@127.0.0.1'?");
    EXPECT_EQ(refused(""), "socket '': expected unix:PATH, inet:PORT@HOST or inet6:PORT@HOST");
}

}  // namespace
}  // namespace pm
