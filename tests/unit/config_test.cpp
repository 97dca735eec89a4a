// SPDX-License-Identifier: BSD-2-Clause
// The daemon's config file (policy-milter.conf(5), FORMAT and DIAGNOSTICS): `key = value` lines,
// every error as FILE:LINE:COL: error: message in one run, the command line winning over the file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/config_file.h"
#include "config/options.h"
#include "store/factory.h"

namespace po = boost::program_options;

namespace pm {
namespace {

// A config file named after the running test, in GoogleTest's temporary directory.
std::string write_config(const std::string& text) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string path =
        ::testing::TempDir() + "pm-" + test->test_suite_name() + "-" + test->name() + ".conf";
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

struct Parsed {
    std::optional<int> exit_code;
    Options options;
    std::string out, err;
};

Parsed parse(std::vector<std::string> args) {
    args.insert(args.begin(), "policy-milter");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    Parsed p;
    std::ostringstream out, err;
    p.exit_code = parse_options(static_cast<int>(argv.size()), argv.data(), p.options, out, err);
    p.out = out.str();
    p.err = err.str();
    return p;
}

// Parses a config file with this text, as --config FILE.
Parsed parse_config(const std::string& text) {
    return parse({"--config", write_config(text)});
}

// The errors of a file, one per line, as the daemon prints them at start-up (exit 2).
std::string errors_of(const std::string& text) {
    std::string path = write_config(text);
    Parsed p = parse({"--config", path});
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_EQ(p.out, "");
    std::string err = p.err;
    for (std::size_t at; (at = err.find(path)) != std::string::npos;)
        err.replace(at, path.size(), "F");
    return err;
}

TEST(ConfigFile, SetsEveryKey) {
    std::string path = write_config(
        "# policy-milter.conf\n"
        "\n"
        "rules = /etc/pm/rules.conf\n"
        "  socket\t=\tinet:8895@127.0.0.1   # after the value\n"
        "foreground = yes\n"
        "log = stderr\n"
        "log-level = debug\r\n"
        "observe = no\n"
        "soft-bounce = true\n"
        "user = postfix\n"
        "socket-mode = 0600\n"
        "socket-group = postfix\n"
        "store = memory\n"
        "store-on-error = pass\n");
    Parsed p = parse({"--config", path});
    EXPECT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.err, "");
    const Options& o = p.options;
    EXPECT_EQ(o.config_file, path);
    EXPECT_EQ(o.rules_file, "/etc/pm/rules.conf");
    EXPECT_EQ(o.socket, "inet:8895@127.0.0.1");
    EXPECT_TRUE(o.foreground);
    EXPECT_EQ(o.log, "stderr");
    EXPECT_EQ(o.log_level, "debug");
    EXPECT_FALSE(o.observe);
    EXPECT_TRUE(o.soft_bounce);
    EXPECT_EQ(o.user, "postfix");
    EXPECT_EQ(o.socket_mode, 0600u);
    EXPECT_EQ(o.socket_group, "postfix");
    EXPECT_EQ(o.store, "memory");
    EXPECT_EQ(o.store_on_error, StoreErrorMode::Pass);
}

TEST(ConfigFile, CommandLineWins) {
    std::string path = write_config("rules = file.rules\nobserve = yes\nlog-level = debug\n");
    Parsed p = parse({"--config", path, "--rules", "cli.rules", "--observe=no"});
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.rules_file, "cli.rules");
    EXPECT_FALSE(p.options.observe);
    EXPECT_EQ(p.options.log_level, "debug");
}

TEST(ConfigFile, EveryErrorInOneRun) {
    EXPECT_EQ(errors_of("# policy-milter.conf\n"
                        "rules = rules.conf\n"
                        "foregound = yes\n"
                        "foreground = maybe\n"
                        "store-on-error = later\n"
                        "socket\n"
                        "rules = other.rules\n"),
              "F:3:1: error: unknown key 'foregound'; did you mean 'foreground'?\n"
              "F:4:14: error: foreground 'maybe' is not 'yes' or 'no'\n"
              "F:5:18: error: store-on-error 'later' is not 'tempfail' or 'pass'\n"
              "F:6:1: error: expected 'key = value', got 'socket'\n"
              "F:7:1: error: 'rules' is already set on line 2\n");
}

TEST(ConfigFile, UnknownKeys) {
    EXPECT_EQ(errors_of("Observe = yes\n"
                        "soft_bounce = yes\n"
                        "log level = debug\n"
                        "  sokcet = inet:1@127.0.0.1\n"
                        "store-on-eror = pass\n"
                        "colour = blue\n"
                        "config = other.conf\n"),
              "F:1:1: error: unknown key 'Observe'; did you mean 'observe'?\n"
              "F:2:1: error: unknown key 'soft_bounce'; did you mean 'soft-bounce'?\n"
              "F:3:1: error: unknown key 'log level'; did you mean 'log-level'?\n"
              "F:4:3: error: unknown key 'sokcet'; did you mean 'socket'?\n"
              "F:5:1: error: unknown key 'store-on-eror'; did you mean 'store-on-error'?\n"
              "F:6:1: error: unknown key 'colour'\n"
              "F:7:1: error: unknown key 'config'\n");
}

TEST(ConfigFile, MalformedLines) {
    EXPECT_EQ(errors_of("[daemon]\n"
                        "\tforeground yes  # no '='\n"
                        " = stderr\n"
                        "user =\n"
                        "rules =   # a comment is no value\n"),
              "F:1:1: error: expected 'key = value', got '[daemon]'\n"
              "F:2:2: error: expected 'key = value', got 'foreground yes'\n"
              "F:3:2: error: expected a key before '='\n"
              "F:4:7: error: 'user' has no value\n"
              "F:5:8: error: 'rules' has no value\n");
}

// The build decides (store/factory.h): without Redis support, every redis:// store is an
// error of its own.
const std::string kBadRedisStore =
    redis_supported()
        ? "F:5:9: error: store 'redis://127.0.0.1:99999': port '99999' is not a number from 1 "
          "to 65535\n"
        : "F:5:9: error: store 'redis://127.0.0.1:99999': this build has no Redis support "
          "(PM_WITH_REDIS=OFF)\n";

TEST(ConfigFile, BadValues) {
    EXPECT_EQ(
        errors_of("foreground = maybe\n"
                  "observe=2\n"
                  "log = file\n"
                  "log-level = verbose\n"
                  "store = redis://127.0.0.1:99999\n"
                  "store-on-error = later\n"
                  "socket-mode = 0999\n"
                  "redis-timeout = 0\n"),
        "F:1:14: error: foreground 'maybe' is not 'yes' or 'no'\n"
        "F:2:9: error: observe '2' is not 'yes' or 'no'\n"
        "F:3:7: error: unknown log destination \"file\" (syslog or stderr)\n"
        "F:4:13: error: unknown log level \"verbose\" (debug, info, warning, error)\n" +
            kBadRedisStore +
            "F:6:18: error: store-on-error 'later' is not 'tempfail' or 'pass'\n"
            "F:7:15: error: socket-mode '0999' is not an octal mode from 0 to 0777\n"
            "F:8:17: error: redis-timeout '0' is not a number of milliseconds from 1 to 60000\n");
}

// The URL itself: tests/unit/store_factory_test.cpp.
TEST(ConfigFile, RedisStore) {
    if (!redis_supported()) GTEST_SKIP() << "built without Redis support";
    Parsed p = parse_config(
        "store = redis://127.0.0.1:6379/3\nredis-prefix = mx:\nredis-timeout = 80\n"
        "redis-password-file = /etc/policy-milter/redis.pass\n");
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.store, "redis://127.0.0.1:6379/3");
    EXPECT_EQ(p.options.redis_prefix, "mx:");
    EXPECT_EQ(p.options.redis_timeout_ms, 80u);
    EXPECT_EQ(p.options.redis_password_file, "/etc/policy-milter/redis.pass");
}

TEST(ConfigFile, BooleanSpellings) {
    std::string path = write_config("foreground = on\nobserve = False\nsoft-bounce = 1\n");
    Parsed p = parse({"--config", path});
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_TRUE(p.options.foreground);
    EXPECT_FALSE(p.options.observe);
    EXPECT_TRUE(p.options.soft_bounce);
}

TEST(ConfigFile, TwiceIsAnErrorEvenWithTheSameValue) {
    EXPECT_EQ(errors_of("observe = yes\nuser = a\nobserve = yes\nobserve = no\n"),
              "F:3:1: error: 'observe' is already set on line 1\n"
              "F:4:1: error: 'observe' is already set on line 1\n");
}

// The file is checked as a whole, even where the command line overrides it.
TEST(ConfigFile, ErrorsUnderTheCommandLineStillCount) {
    std::string path = write_config("foreground = maybe\n");
    Parsed p = parse({"--config", path, "--foreground"});
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_EQ(p.err, path + ":1:14: error: foreground 'maybe' is not 'yes' or 'no'\n");
}

TEST(ConfigFile, NamedFileMustExist) {
    std::string path = ::testing::TempDir() + "pm-no-such-file.conf";
    Parsed p = parse({"--config", path});
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_EQ(p.err, path + ": error: cannot read config file: No such file or directory\n");
}

TEST(ConfigFile, DirectoryIsNotAConfigFile) {
    Parsed p = parse({"--config", ::testing::TempDir()});
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_EQ(p.err, ::testing::TempDir() +
                         ": error: cannot read config file: not a regular file (a directory)\n");
}

TEST(ConfigFile, DevNullIsAnEmptyConfigFile) {
    Parsed p = parse({"--config", "/dev/null"});
    EXPECT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.rules_file, kDefaultRulesFile);
}

TEST(ConfigFile, MissingDefaultFileIsFine) {
    po::options_description keys;
    keys.add_options()("rules", po::value<std::string>());
    ConfigFile f = read_config_file(::testing::TempDir() + "pm-absent.conf", false, keys);
    EXPECT_FALSE(f.diagnostics.has_errors());
    EXPECT_TRUE(f.options.options.empty());
}

// Habits from Postfix's main.cf that do not hold here (policy-milter.conf(5)): a line
// that starts with white space is a line of its own, not a continuation of the one
// before, and a key given twice is an error, not "the last one wins".
TEST(ConfigFile, IndentedLineIsNotAContinuation) {
    EXPECT_EQ(errors_of("rules = /etc/policy-milter/rules.conf\n"
                        "    /etc/policy-milter/more.conf\n"
                        "observe = yes\n"
                        "  observe = no\n"),
              "F:2:5: error: expected 'key = value', got '/etc/policy-milter/more.conf'\n"
              "F:4:3: error: 'observe' is already set on line 3\n");
    // Indented `key = value` is a key like any other.
    std::string path = write_config("observe = yes\n    foreground = yes\n");
    Parsed p = parse({"--config", path});
    EXPECT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_TRUE(p.options.foreground);
}

TEST(ConfigFile, ByteOrderMarkIsDropped) {
    std::string path = write_config("\xEF\xBB\xBFobserve = yes\n");
    Parsed p = parse({"--config", path});
    EXPECT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_TRUE(p.options.conversation().observe_all);
}

// Anywhere else, an invisible character is named by its code point.
TEST(ConfigFile, InvisibleCharactersAreNamed) {
    EXPECT_EQ(
        errors_of("observe\xC2\xA0= yes\nsocket = inet:8895@127.0.0.1\n\xEF\xBB\xBFuser = x\n"),
        "F:1:1: error: unknown key 'observe<U+00A0>'; did you mean 'observe'?\n"
        "F:3:1: error: unknown key '<U+FEFF>user'; did you mean 'user'?\n");
}

TEST(ConfigFile, OnlyARegularFileIsAConfigFile) {
    std::string fifo = ::testing::TempDir() + "pm-config-fifo";
    ::unlink(fifo.c_str());
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    Parsed p = parse({"--config", fifo});  // would block for ever if it were opened blocking
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_EQ(p.err, fifo + ": error: cannot read config file: not a regular file (a FIFO)\n");
    ::unlink(fifo.c_str());
    p = parse({"--config", "/dev/zero"});
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_EQ(p.err,
              "/dev/zero: error: cannot read config file: not a regular file (a character "
              "device)\n");
    // A symlink to a regular file is fine: admins use them.
    std::string target = write_config("observe = yes\n");
    std::string link = ::testing::TempDir() + "pm-config-link.conf";
    ::unlink(link.c_str());
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    p = parse({"--config", link});
    EXPECT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_TRUE(p.options.conversation().observe_all);
    ::unlink(link.c_str());
}

TEST(ConfigFile, SizeIsBounded) {
    std::string path = write_config("");
    ASSERT_EQ(::truncate(path.c_str(), (1 << 20) + 1), 0);
    Parsed p = parse({"--config", path});
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_EQ(p.err, path + ": error: cannot read config file: larger than the limit of 1 MiB\n");
}

// --check goes on to the rules after the config file's errors, printed on stdout.
TEST(ConfigFile, CheckPrintsConfigErrorsAndGoesOn) {
    std::string path = write_config("rules = r.conf\nobserv = yes\nstore-on-error = later\n");
    Parsed p = parse({"--check", "--config", path});
    EXPECT_EQ(p.exit_code, std::nullopt);
    EXPECT_EQ(p.err, "");
    // The count line ("FILE: 2 errors") comes later, from main(), with the start-up checks'.
    EXPECT_EQ(p.out, path + ":2:1: error: unknown key 'observ'; did you mean 'observe'?\n" + path +
                         ":3:18: error: store-on-error 'later' is not 'tempfail' or 'pass'\n");
    EXPECT_EQ(p.options.mode, Mode::Check);
    EXPECT_EQ(p.options.config_errors, 2u);
    EXPECT_EQ(p.options.rules_file, "r.conf");  // the good lines still count
}

// Values Boost cannot check by type are checked on the command line too.
TEST(ConfigFile, CommandLineValues) {
    std::string empty = write_config("");
    EXPECT_EQ(parse({"--config", empty, "--store-on-error", "later"}).err,
              "policy-milter: store-on-error 'later' is not 'tempfail' or 'pass'\n");
    EXPECT_EQ(parse({"--config", empty, "--log-level", "loud"}).err,
              "policy-milter: unknown log level \"loud\" (debug, info, warning, error)\n");
}

// The reader alone, with keys of its own and an extra value check.
TEST(ConfigFile, ReaderWithOwnKeysAndCheck) {
    po::options_description keys;
    keys.add_options()("port", po::value<unsigned>())("mode", po::value<std::string>());
    auto octal = [](const std::string& key, const std::string& value) -> std::string {
        if (key == "mode" && value.find_first_not_of("01234567") != std::string::npos)
            return "mode '" + value + "' is not an octal number";
        return {};
    };
    std::istringstream in("port = 25\nport2 = 1\nmode = 0660\nmode = 9\nport = x\n");
    ConfigFile f = read_config_file(in, "t.conf", keys, octal);
    std::string all;
    for (const auto& d : f.diagnostics.all()) all += d.to_string() + "\n";
    EXPECT_EQ(all,
              "t.conf:2:1: error: unknown key 'port2'; did you mean 'port'?\n"
              "t.conf:4:1: error: 'mode' is already set on line 3\n"
              "t.conf:5:1: error: 'port' is already set on line 1\n");
    ASSERT_EQ(f.options.options.size(), 2u);
    EXPECT_EQ(f.options.options[1].string_key, "mode");
    EXPECT_EQ(f.options.options[1].value, std::vector<std::string>{"0660"});
    std::istringstream in2("port = x\nmode = 9\n");
    f = read_config_file(in2, "t.conf", keys, octal);
    all.clear();
    for (const auto& d : f.diagnostics.all()) all += d.to_string() + "\n";
    EXPECT_EQ(all,
              "t.conf:1:8: error: the argument ('x') for option 'port' is invalid\n"
              "t.conf:2:8: error: mode '9' is not an octal number\n");
    ASSERT_EQ(f.options.options.size(), 0u);
}

}  // namespace
}  // namespace pm

namespace pm {
namespace {

TEST(ConfigFile, PidFileAndSyslogKeys) {
    Parsed p = parse_config(
        "pid-file = /run/policy-milter/policy-milter.pid\n"
        "syslog-facility = local3\n"
        "syslog-name = policy-milter-out\n");
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.pid_file, "/run/policy-milter/policy-milter.pid");
    EXPECT_EQ(p.options.syslog_facility, "local3");
    EXPECT_EQ(p.options.syslog_name, "policy-milter-out");
    Parsed defaults = parse({"--config", "/dev/null"});
    EXPECT_EQ(defaults.options.pid_file, "");
    EXPECT_EQ(defaults.options.syslog_facility, "mail");
    EXPECT_EQ(defaults.options.syslog_name, "policy-milter");
}

TEST(ConfigFile, BadSyslogAndSocketValues) {
    EXPECT_EQ(errors_of("syslog-facility = mial\n"
                        "syslog-name = policy milter\n"
                        "socket = inet:127.0.0.1:8895\n"),
              "F:1:19: error: syslog-facility 'mial' is not a syslog facility (mail, daemon, "
              "local0 to local7, ...)\n"
              "F:2:15: error: syslog-name 'policy milter' is not 1 to 64 printable ASCII "
              "characters without blanks, ':', '[', ']' or '%'\n"
              "F:3:10: error: socket 'inet:127.0.0.1:8895': libmilter reads inet:PORT@HOST and "
              "would listen on port 127 on every interface; did you mean "
              "'inet:8895@127.0.0.1'?\n");
    std::string empty = write_config("");
    EXPECT_EQ(parse({"--config", empty, "--socket", "inet:8895@127.1"}).err,
              "policy-milter: socket 'inet:8895@127.1': host '127.1' is not a dotted-quad IPv4 "
              "address (libmilter would read it as 127.0.0.1)\n");
}

// The DNS list keys (policy-milter.conf(5)): dns-servers a list of IP[:PORT], dns-timeout
// a duration from 1ms to 60s, each refused value at its FILE:LINE:COL.
TEST(ConfigFile, DnsServersAndDnsTimeoutKeys) {
    Parsed p = parse_config("dns-servers = 127.0.0.1:5353, [::1]:53\ndns-timeout = 500ms\n");
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.dns_servers, "127.0.0.1:5353, [::1]:53");
    EXPECT_EQ(p.options.dns_timeout_ms, 500u);
    EXPECT_EQ(p.options.conversation().dns_timeout, std::chrono::milliseconds(500));
    Parsed defaults = parse({"--config", "/dev/null"});
    EXPECT_EQ(defaults.options.dns_servers, "");
    EXPECT_EQ(defaults.options.dns_timeout_ms, 2000u);
    EXPECT_EQ(errors_of("dns-servers = dns.example.org\n"),
              "F:1:15: error: dns-servers item 'dns.example.org': not an IP address (IPv4[:PORT], "
              "[IPv6]:PORT or IPv6)\n");
    EXPECT_EQ(errors_of("dns-timeout = 2m\n"),
              "F:1:15: error: dns-timeout '2m' is not a duration from 1ms to 60s (such as 2s or "
              "500ms)\n");
}

// The monitoring keys (policy-milter.conf(5)): stats-interval a duration or 0, metrics an IP
// address and a port, each refused value at its FILE:LINE:COL.
TEST(ConfigFile, StatsIntervalAndMetricsKeys) {
    Parsed p = parse_config("stats-interval = 90s\nmetrics = [::1]:9259\n");
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.stats_interval, 90u);
    EXPECT_EQ(p.options.metrics, "[::1]:9259");
    Parsed defaults = parse({"--config", "/dev/null"});
    EXPECT_EQ(defaults.options.stats_interval, 3600u);
    EXPECT_EQ(defaults.options.metrics, "");
    for (const char* off : {"0", "0s", "00m"})
        EXPECT_EQ(
            parse_config(std::string("stats-interval = ") + off + "\n").options.stats_interval, 0u)
            << off;
    EXPECT_EQ(parse_config("metrics = 127.0.0.1:9259\n").options.metrics, "127.0.0.1:9259");
    EXPECT_EQ(errors_of("stats-interval = 1H\n"),
              "F:1:18: error: stats-interval '1H' is not a duration such as 30s, 5m, 1h or 1d, "
              "or 0 (off): units are lower case: 1h\n");
    EXPECT_EQ(errors_of("stats-interval = 10\n"),
              "F:1:18: error: stats-interval '10' is not a duration such as 30s, 5m, 1h or 1d, "
              "or 0 (off): a duration needs a unit: s, m, h or d\n");
    // Review finding: an interval past ~292 years overflowed the clock and logged stats
    // in a busy loop.
    EXPECT_EQ(errors_of("stats-interval = 10000000000s\n"),
              "F:1:18: error: stats-interval '10000000000s' is over 365d (0 turns it off)\n");
    EXPECT_EQ(parse_config("stats-interval = 365d\n").options.stats_interval, 365u * 86400);
    EXPECT_EQ(errors_of("metrics = localhost:9259\n"),
              "F:1:11: error: metrics 'localhost:9259': 'localhost' is not an IPv4 address (host "
              "names are not accepted)\n");
    EXPECT_EQ(errors_of("metrics = 127.0.0.1:0\n"),
              "F:1:11: error: metrics '127.0.0.1:0': the port '0' is not a number from 1 to "
              "65535\n");
    EXPECT_EQ(errors_of("metrics = ::1:9259\n"),
              "F:1:11: error: metrics '::1:9259' is not HOST:PORT, such as 127.0.0.1:9259 or "
              "[::1]:9259\n");
    EXPECT_EQ(errors_of("metrics = [::1]9259\n"),
              "F:1:11: error: metrics '[::1]9259' is not [IPV6]:PORT, such as [::1]:9259\n");
    EXPECT_EQ(errors_of("metrics = 127.0.0.1:+80\n"),
              "F:1:11: error: metrics '127.0.0.1:+80': the port '+80' is not a number from 1 to "
              "65535\n");
    EXPECT_EQ(errors_of("metrics = 127.0.0.1\n"),
              "F:1:11: error: metrics '127.0.0.1' is not HOST:PORT, such as 127.0.0.1:9259 or "
              "[::1]:9259\n");
    EXPECT_EQ(parse({"--config", "/dev/null", "--metrics", "[::1:9259"}).err,
              "policy-milter: metrics '[::1:9259' is not [IPV6]:PORT, such as [::1]:9259\n");
}

// body-scan-limit (issue 17): a size as the rules write it, 0 to 1GB, default 1MB, and
// into the conversation's options.
TEST(ConfigFile, BodyScanLimit) {
    EXPECT_EQ(parse_config("").options.body_scan_limit, 1u << 20);
    EXPECT_EQ(parse_config("body-scan-limit = 512K\n").options.body_scan_limit, 512u << 10);
    EXPECT_EQ(parse_config("body-scan-limit = 0\n").options.conversation().body_scan_limit, 0u);
    EXPECT_EQ(parse_config("body-scan-limit = 1GB\n").options.body_scan_limit, 1u << 30);
    EXPECT_EQ(errors_of("body-scan-limit = 2GB\n"),
              "F:1:19: error: body-scan-limit '2GB' is not a size from 0 to 1GB, such as 512K "
              "or 1MB\n");
    EXPECT_EQ(errors_of("body-scan-limit = 1mb\n"),
              "F:1:19: error: body-scan-limit '1mb' is not a size from 0 to 1GB, such as 512K "
              "or 1MB\n");
    EXPECT_EQ(parse({"--config", "/dev/null", "--body-scan-limit", "64K"})
                  .options.conversation()
                  .body_scan_limit,
              64u << 10);
}

// Start-up checks name the line of the setting they are about; a command-line value wins
// and has no line.
TEST(ConfigFile, OriginsOfSettings) {
    std::string path = write_config("rules = r.conf\n  user = nobody\nsocket-group = postfix\n");
    Parsed p = parse({"--config", path, "--socket-group", "mail"});
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.origins.at("user"), path + ":2:10");
    EXPECT_EQ(p.options.origins.count("socket-group"), 0u);
    EXPECT_EQ(p.options.origins.count("socket"), 0u);
}

// --dump-config writes every daemon option, and what it writes reads back as the same
// settings.
TEST(ConfigFile, DumpConfigIsAConfigFile) {
    std::string path = write_config(
        "socket = inet:8895@127.0.0.1\nobserve = yes\nsocket-mode = 600\n"
        "store-on-error = pass\nsyslog-facility = local3\nredis-timeout = 75\n");
    Parsed p = parse({"--config", path, "--dump-config"});
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.mode, Mode::DumpConfig);
    std::ostringstream out, err;
    ASSERT_TRUE(dump_config(p.options, out, err)) << err.str();
    EXPECT_EQ(out.str(),
              "rules = /etc/policy-milter/rules.conf\n"
              "socket = inet:8895@127.0.0.1\n"
              "foreground = no\n"
              "# pid-file =\n"
              "log = syslog\n"
              "log-level = info\n"
              "syslog-facility = local3\n"
              "syslog-name = policy-milter\n"
              "observe = yes\n"
              "soft-bounce = no\n"
              "# user =\n"
              "socket-mode = 0600\n"
              "# socket-group =\n"
              "store = memory\n"
              "# redis-password-file =\n"
              "redis-prefix = pm:\n"
              "redis-timeout = 75\n"
              "store-on-error = pass\n"
              "control = unix:/run/policy-milter/control.sock\n"
              "stats-interval = 1h\n"
              "# metrics =\n"
              "body-scan-limit = 1MB\n"
              "# policy-socket =\n"
              "# dns-servers =\n"
              "dns-timeout = 2000ms\n"
              "state-dir = /var/lib/policy-milter\n"
              "greylist-ipv4-prefix = 24\n"
              "greylist-ipv6-prefix = 64\n"
              "greylist-auto-whitelist = 5\n"
              "greylist-max-entries = 1000000\n"
              "greylist-save-interval = 10m\n");
    std::string again = write_config(out.str());
    Parsed q = parse({"--config", again, "--dump-config"});
    ASSERT_EQ(q.exit_code, std::nullopt) << q.err;
    std::ostringstream out2, err2;
    ASSERT_TRUE(dump_config(q.options, out2, err2));
    EXPECT_EQ(out2.str(), out.str());
}

TEST(ConfigFile, DumpConfigRefusesWhatAFileCannotHold) {
    Parsed p = parse({"--config", "/dev/null", "--rules", "a#b.rules"});
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    std::ostringstream out, err;
    EXPECT_FALSE(dump_config(p.options, out, err));
    EXPECT_NE(out.str().find("# rules = (cannot be written)\n"), std::string::npos) << out.str();
    EXPECT_EQ(err.str(),
              "policy-milter: --dump-config: the rules value 'a#b.rules' cannot be written in a "
              "config file ('#' or blanks at its ends)\n");
}

TEST(ConfigFile, DumpConfigIsNotCombinedWithCheck) {
    Parsed p = parse({"--config", "/dev/null", "--dump-config", "--check"});
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_EQ(p.err,
              "policy-milter: --check, --test, --dump-config, --ctl and --report cannot be "
              "combined\n");
}

// `control`: none or unix:/absolute/path; the built-in default is not "set" (a failure to
// open it does not stop the start), any setting is.
TEST(ConfigFile, ControlSetting) {
    Parsed p = parse({"--config", "/dev/null"});
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.control, "unix:/run/policy-milter/control.sock");
    EXPECT_FALSE(p.options.control_explicit);
    p = parse_config("control = unix:/var/run/pm/ctl.sock\n");
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.control, "unix:/var/run/pm/ctl.sock");
    EXPECT_TRUE(p.options.control_explicit);
    p = parse({"--config", "/dev/null", "--control", "none"});
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.control, "none");
    for (std::string bad :
         std::vector<std::string>{"unix:relative.sock", "inet:8000", "unix:/run/dir/",
                                  "/run/x.sock", "unix:/" + std::string(120, 'x')}) {
        p = parse({"--config", "/dev/null", "--control", bad});
        EXPECT_EQ(p.exit_code, 2) << bad;
        EXPECT_NE(p.err.find("control '"), std::string::npos) << p.err;
    }
}

// Every word after --ctl is the command's, as written, even one that looks like an option;
// the options before it still apply (-c finds `control`).
TEST(ConfigFile, CtlTakesEveryWordAfterIt) {
    std::string path = write_config("control = unix:/tmp/c.sock\n");
    Parsed p = parse({"-c", path, "--ctl", "limit-show", "r", "--check", "-x", ""});
    ASSERT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.mode, Mode::Ctl);
    EXPECT_EQ(p.options.ctl, (std::vector<std::string>{"limit-show", "r", "--check", "-x", ""}));
    EXPECT_EQ(p.options.control, "unix:/tmp/c.sock");
    p = parse({"--config", "/dev/null", "--ctl"});
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_NE(p.err.find("--ctl needs a command"), std::string::npos) << p.err;
    p = parse({"--config", "/dev/null", "--check", "--ctl", "stats"});
    EXPECT_EQ(p.exit_code, 2);
}

// --report takes the files after the options, "-" among them; nothing else takes arguments.
TEST(ConfigFile, ReportTakesFilesAndOnlyItDoes) {
    Parsed p = parse({"--config", "/dev/null", "--report", "mail.log", "-", "mail.log.1.gz",
                      "--syslog-name", "pm2"});
    EXPECT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_EQ(p.options.mode, Mode::Report);
    EXPECT_EQ(p.options.report_files, (std::vector<std::string>{"mail.log", "-", "mail.log.1.gz"}));
    EXPECT_EQ(p.options.syslog_name, "pm2");
    p = parse({"--config", "/dev/null", "--report"});
    EXPECT_EQ(p.exit_code, std::nullopt) << p.err;
    EXPECT_TRUE(p.options.report_files.empty());
    p = parse({"--config", "/dev/null", "--report", "--check"});
    EXPECT_EQ(p.exit_code, 2);
    p = parse({"--config", "/dev/null", "--check", "stray"});
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_EQ(p.err,
              "policy-milter: unexpected argument 'stray' (only --report takes files)\n"
              "Try 'policy-milter --help'.\n");
}

}  // namespace
}  // namespace pm
