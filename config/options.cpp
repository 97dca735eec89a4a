// SPDX-License-Identifier: BSD-2-Clause
#include "config/options.h"

#include <boost/program_options.hpp>

#include <iomanip>
#include <sstream>
#include <string_view>
#include <type_traits>

#include "config/config_file.h"
#include "config/dns_settings.h"
#include "config/greylist_options.h"
#include "config/logging.h"
#include "config/metrics_address.h"
#include "config/socket_spec.h"
#include "pm_version.h"  // generated: PM_VERSION
#include "policy/units.h"
#include "store/factory.h"

namespace po = boost::program_options;

namespace pm {

namespace {

// The greylist keys (policy-milter.conf(5)): state-dir and greylist-*.
void add_greylist_options(po::options_description& d) {
    // clang-format off
    d.add_options()
        ("state-dir", po::value<std::string>()->value_name("DIR"),
         "where the greylist's entries are saved with store = memory "
         "(default /var/lib/policy-milter)")
        ("greylist-ipv4-prefix", po::value<std::string>()->value_name("N"),
         "an IPv4 client's network in a greylist triplet, /N (default 24)")
        ("greylist-ipv6-prefix", po::value<std::string>()->value_name("N"),
         "an IPv6 client's network in a greylist triplet, /N (default 64)")
        ("greylist-auto-whitelist", po::value<std::string>()->value_name("N"),
         "passed triplets after which a client network is no more greylisted "
         "(default 5; 0: never)")
        ("greylist-max-entries", po::value<std::string>()->value_name("N"),
         "greylist entries kept in memory (default 1000000)")
        ("greylist-save-interval", po::value<std::string>()->value_name("DURATION"),
         "save the greylist to state-dir this often and at stop (default 10m; 0: at stop only)");
    // clang-format on
}

po::options_description daemon_options() {
    po::options_description d("Daemon options (also keys of the config file)");
    // One option per line reads better than the formatter's call chain.
    // clang-format off
    d.add_options()
        ("rules", po::value<std::string>()->value_name("FILE"),
         "rules file (default /etc/policy-milter/rules.conf)")
        ("socket", po::value<std::string>()->value_name("SPEC"),
         "milter socket: unix:/path, inet:PORT@HOST or inet6:PORT@HOST")
        ("foreground", po::value<bool>()->implicit_value(true)->value_name("yes|no"),
         "stay in the foreground")
        ("pid-file", po::value<std::string>()->value_name("FILE"),
         "write the daemon's process ID to FILE (default: none)")
        ("log", po::value<std::string>()->value_name("syslog|stderr"), "where to log")
        ("log-level", po::value<std::string>()->value_name("LEVEL"),
         "debug, info, warning or error (default info)")
        ("syslog-facility", po::value<std::string>()->value_name("FACILITY"),
         "syslog facility, as Postfix's syslog_facility (default mail)")
        ("syslog-name", po::value<std::string>()->value_name("NAME"),
         "syslog ident, as Postfix's syslog_name (default policy-milter)")
        ("observe", po::value<bool>()->implicit_value(true)->value_name("yes|no"),
         "every rule only logs what it would do")
        ("soft-bounce", po::value<bool>()->implicit_value(true)->value_name("yes|no"),
         "every 5xx reply becomes the stage's default 4xx")
        ("user", po::value<std::string>()->value_name("USER"),
         "drop privileges to USER after binding the socket")
        ("socket-mode", po::value<std::string>()->value_name("MODE"),
         "permissions of a unix socket, octal (default 0660)")
        ("socket-group", po::value<std::string>()->value_name("GROUP"),
         "group of a unix socket, such as postfix (default: the group of --user)")
        ("store", po::value<std::string>()->value_name("memory|redis://HOST:PORT/DB"),
         "where limit counters live: memory (the default) or a Redis shared by several MTAs")
        ("redis-password-file", po::value<std::string>()->value_name("FILE"),
         "file whose first line is the Redis password (read before dropping privileges)")
        ("redis-prefix", po::value<std::string>()->value_name("PREFIX"),
         "prefix of the counter keys in Redis (default pm:)")
        ("redis-timeout", po::value<std::string>()->value_name("MS"),
         "longest wait for Redis per lookup, in milliseconds (default 50)")
        ("store-on-error", po::value<std::string>()->value_name("tempfail|pass"),
         "what a failing counter store means: 451 4.3.0 (default) or let the event pass")
        ("control", po::value<std::string>()->value_name("unix:PATH|none"),
         "control socket for policy-milter --ctl (default unix:/run/policy-milter/control.sock)")
        ("stats-interval", po::value<std::string>()->value_name("DURATION"),
         "log the stats: lines this often and at stop, such as 30m (default 1h; 0: never)")
        ("metrics", po::value<std::string>()->value_name("HOST:PORT"),
         "serve Prometheus metrics at http://HOST:PORT/metrics, such as 127.0.0.1:9259 "
         "(default: none)")
        ("body-scan-limit", po::value<std::string>()->value_name("SIZE"),
         "bytes of each message body that body conditions scan, such as 512K (default 1MB; "
         "at most 1GB)")
        ("policy-socket", po::value<std::string>()->value_name("unix:PATH|inet:PORT@HOST"),
         "also serve the rules to Postfix's check_policy_service on this socket (default: off)")
        ("dns-servers", po::value<std::string>()->value_name("IP[:PORT],..."),
         "the DNS servers of dnsbl and rhsbl lists (default: those of /etc/resolv.conf)")
        ("dns-timeout", po::value<std::string>()->value_name("DURATION"),
         "longest wait for DNS lists per stage, such as 2s or 500ms (default 2s)");
    // clang-format on
    add_greylist_options(d);
    return d;
}

po::options_description command_options() {
    po::options_description d("Commands");
    // One option per line reads better than the formatter's call chain.
    // clang-format off
    d.add_options()
        ("help,h", "show this help and exit")
        ("version,V", "show the version and exit")
        ("config,c", po::value<std::string>()->value_name("FILE"),
         "config file (default /etc/policy-milter/policy-milter.conf)")
        ("check", "check the config file, what the start needs (user, group, socket, "
                  "files), the rules file and its lists; print every diagnostic, exit 0, "
                  "1 (rules) or 2 (config file or start-up)")
        ("dump-config", "print every effective daemon setting as a config file and exit")
        ("ctl", "the last option: the words after it are a COMMAND and its ARGs for the "
                "running daemon's control socket: stats, limit-show RULE KEY..., "
                "limit-reset RULE KEY... or reload")
        ("test", "run one transaction (the options below) through the rules and print the "
                 "decision of each stage")
        ("report", "summarise the decision lines of the syslog FILEs named after the options "
                   "(plain or gzip, '-' for stdin; default /var/log/mail.log) and exit");
    // clang-format on
    return d;
}

po::options_description test_options() {
    po::options_description d("Transaction for --test");
    // One option per line reads better than the formatter's call chain.
    // clang-format off
    d.add_options()
        ("client", po::value<std::string>()->value_name("IP"), "client IP address (required)")
        ("client-name", po::value<std::string>()->value_name("NAME"),
         "verified client host name (default unknown)")
        ("client-port", po::value<std::uint32_t>()->value_name("PORT"), "client port")
        ("helo", po::value<std::string>()->value_name("NAME"), "HELO/EHLO name")
        ("from", po::value<std::string>()->value_name("ADDR"), "MAIL FROM address ('' for <>)")
        ("auth", po::value<std::string>()->value_name("USER"), "SASL login name")
        ("tls", "the session uses TLS")
        ("rcpt", po::value<std::vector<std::string>>()->composing()->value_name("ADDR"),
         "RCPT TO address (repeat for several)")
        ("size", po::value<std::string>()->value_name("N"), "ESMTP SIZE= value (mail.size)")
        ("header", po::value<std::vector<std::string>>()->composing()->value_name("\"Name: value\""),
         "a message header (repeat for several)")
        ("message", po::value<std::string>()->value_name("FILE"),
         "a message file whose headers and size the message stage sees");
    // clang-format on
    return d;
}

// An octal file mode such as 0660 or 660, at most 0777.
std::optional<unsigned> parse_socket_mode(const std::string& text) {
    if (text.empty() || text.size() > 4) return std::nullopt;
    unsigned mode = 0;
    for (char c : text) {
        if (c < '0' || c > '7') return std::nullopt;
        mode = mode * 8 + static_cast<unsigned>(c - '0');
    }
    if (mode > 0777) return std::nullopt;
    return mode;
}

// body-scan-limit: a size as the rules write it (512K, 1MB), 0 to 1 GiB.
std::optional<std::uint64_t> parse_body_scan_limit(const std::string& text) {
    std::uint64_t n = 0;
    if (!parse_size(text, n) || n > (std::uint64_t{1} << 30)) return std::nullopt;
    return n;
}

// A size as the largest unit that divides it: 1048576 is 1MB, 1000 is 1000.
std::string size_text(std::uint64_t n) {
    constexpr std::pair<const char*, std::uint64_t> units[] = {
        {"GB", 1ull << 30}, {"MB", 1ull << 20}, {"KB", 1ull << 10}};
    for (auto [unit, size] : units)
        if (n != 0 && n % size == 0) return std::to_string(n / size) + unit;
    return std::to_string(n);
}

// A timeout in milliseconds, 1 to 60000.
std::optional<unsigned> parse_timeout_ms(const std::string& text) {
    if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != text.npos)
        return std::nullopt;
    unsigned ms = static_cast<unsigned>(std::stoul(text));
    if (ms < 1 || ms > 60000) return std::nullopt;
    return ms;
}

// state-dir and the greylist-* keys, checked by greylist_value_problem().
void apply_greylist_options(const po::variables_map& vm, Options& o) {
    if (vm.count("state-dir")) o.state_dir = vm["state-dir"].as<std::string>();
    auto number = [&](const char* key, auto& out) {
        if (vm.count(key))
            if (auto n = parse_bounded(vm[key].as<std::string>(), 0, UINT64_MAX / 1000))
                out = static_cast<std::remove_reference_t<decltype(out)>>(*n);
    };
    number("greylist-ipv4-prefix", o.greylist.ipv4_prefix);
    number("greylist-ipv6-prefix", o.greylist.ipv6_prefix);
    number("greylist-auto-whitelist", o.greylist.auto_whitelist);
    number("greylist-max-entries", o.greylist_max_entries);
    if (vm.count("greylist-save-interval")) {
        std::uint64_t s = 0;
        if (parse_duration(vm["greylist-save-interval"].as<std::string>(), s))
            o.greylist_save_interval = s;
        else if (vm["greylist-save-interval"].as<std::string>() == "0")
            o.greylist_save_interval = 0;
    }
}

void apply_daemon_options(const po::variables_map& vm, Options& o) {
    auto str = [&](const char* key, std::string& field) {
        if (vm.count(key)) field = vm[key].as<std::string>();
    };
    auto flag = [&](const char* key, bool& field) {
        if (vm.count(key)) field = vm[key].as<bool>();
    };
    str("rules", o.rules_file);
    str("socket", o.socket);
    flag("foreground", o.foreground);
    str("pid-file", o.pid_file);
    str("log", o.log);
    str("log-level", o.log_level);
    str("syslog-facility", o.syslog_facility);
    str("syslog-name", o.syslog_name);
    flag("observe", o.observe);
    flag("soft-bounce", o.soft_bounce);
    str("user", o.user);
    if (vm.count("socket-mode"))
        if (auto mode = parse_socket_mode(vm["socket-mode"].as<std::string>()))
            o.socket_mode = *mode;
    str("socket-group", o.socket_group);
    str("store", o.store);
    str("redis-password-file", o.redis_password_file);
    str("redis-prefix", o.redis_prefix);
    if (vm.count("redis-timeout"))
        if (auto ms = parse_timeout_ms(vm["redis-timeout"].as<std::string>()))
            o.redis_timeout_ms = *ms;
    str("control", o.control);
    o.control_explicit = vm.count("control") > 0;
    std::string why;
    if (vm.count("stats-interval"))
        if (auto s = parse_stats_interval(vm["stats-interval"].as<std::string>(), why))
            o.stats_interval = *s;
    str("metrics", o.metrics);
    if (vm.count("body-scan-limit"))
        if (auto n = parse_body_scan_limit(vm["body-scan-limit"].as<std::string>()))
            o.body_scan_limit = *n;
    str("policy-socket", o.policy_socket);
    apply_greylist_options(vm, o);
    str("dns-servers", o.dns_servers);
    if (vm.count("dns-timeout"))
        if (auto ms = parse_dns_timeout(vm["dns-timeout"].as<std::string>(), why))
            o.dns_timeout_ms = *ms;
}

// `none`, or unix: and an absolute path that fits a unix socket address (108 bytes).
std::string control_problem(const std::string& value) {
    if (value == "none") return {};
    if (!value.starts_with("unix:") || value.size() < 7 || value[5] != '/' || value.back() == '/')
        return "control '" + value + "' is not 'none' or unix:/absolute/path";
    if (value.size() - 5 > 107) return "control '" + value + "': the path is longer than 107 bytes";
    return {};
}

// value_problem's second half: the monitoring, DNS and greylist keys, body-scan-limit.
std::string later_value_problem(const std::string& key, const std::string& value) {
    std::string why;
    if (key == "stats-interval" && !parse_stats_interval(value, why)) return why;
    if (key == "metrics" && !parse_metrics_address(value, why)) return why;
    if (key == "dns-servers" && !parse_dns_servers(value, why)) return why;
    if (key == "dns-timeout" && !parse_dns_timeout(value, why)) return why;
    if (key == "body-scan-limit" && !parse_body_scan_limit(value))
        return "body-scan-limit '" + value + "' is not a size from 0 to 1GB, such as 512K or 1MB";
    return greylist_value_problem(key, value);
}

// `socket` and `policy-socket`, spelled alike: parse_socket_spec's reason names the key.
std::string socket_problem(const std::string& key, const std::string& value) {
    std::string why;
    if (parse_socket_spec(value, why)) return {};
    return key == "socket" ? why : "policy-" + why;  // why begins with "socket '...'"
}

// A value Boost cannot check by its type, from the command line or the config file: an
// error message, or empty.
std::string value_problem(const std::string& key, const std::string& value) {
    if (key == "log") return log_destination_problem(value).value_or("");
    if (key == "log-level") return log_level_problem(value).value_or("");
    if (key == "syslog-facility") return syslog_facility_problem(value).value_or("");
    if (key == "syslog-name") return syslog_name_problem(value).value_or("");
    if (key == "socket" || key == "policy-socket") return socket_problem(key, value);
    if (key == "socket-mode" && !parse_socket_mode(value))
        return "socket-mode '" + value + "' is not an octal mode from 0 to 0777";
    if (key == "store") return store_setting_problem(value).value_or("");
    if (key == "redis-timeout" && !parse_timeout_ms(value))
        return "redis-timeout '" + value + "' is not a number of milliseconds from 1 to 60000";
    if (key == "control") return control_problem(value);
    if (key == "store-on-error" && value != "tempfail" && value != "pass")
        return "store-on-error '" + value + "' is not 'tempfail' or 'pass'";
    return later_value_problem(key, value);
}

// Checks the values value_problem() knows; an error message, or empty.
std::string check_values(const po::variables_map& vm, Options& o) {
    for (const char* key :
         {"socket", "log", "log-level", "syslog-facility", "syslog-name", "socket-mode", "store",
          "store-on-error", "redis-timeout", "control", "stats-interval", "metrics",
          "body-scan-limit", "policy-socket", "dns-servers", "dns-timeout"}) {
        if (!vm.count(key)) continue;
        if (std::string why = value_problem(key, vm[key].as<std::string>()); !why.empty())
            return why;
    }
    for (const char* key : kGreylistKeys)
        if (vm.count(key))
            if (std::string why = value_problem(key, vm[key].as<std::string>()); !why.empty())
                return why;
    if (vm.count("store-on-error"))
        o.store_on_error = vm["store-on-error"].as<std::string>() == "pass"
                               ? StoreErrorMode::Pass
                               : StoreErrorMode::Tempfail;
    return {};
}

// Seconds as the largest unit that divides them: 3600 is 1h, 90 is 90s, 0 is 0.
std::string duration_text(std::uint64_t seconds) {
    if (seconds == 0) return "0";
    constexpr std::pair<char, std::uint64_t> units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}};
    for (auto [unit, size] : units)
        if (seconds % size == 0) return std::to_string(seconds / size) + unit;
    return std::to_string(seconds) + "s";
}

}  // namespace

namespace {
std::map<std::string, std::string> greylist_values(const Options& o) {
    return {
        {"state-dir", o.state_dir},
        {"greylist-ipv4-prefix", std::to_string(o.greylist.ipv4_prefix)},
        {"greylist-ipv6-prefix", std::to_string(o.greylist.ipv6_prefix)},
        {"greylist-auto-whitelist", std::to_string(o.greylist.auto_whitelist)},
        {"greylist-max-entries", std::to_string(o.greylist_max_entries)},
        {"greylist-save-interval", duration_text(o.greylist_save_interval)},
    };
}
}  // namespace

bool dump_config(const Options& o, std::ostream& out, std::ostream& err) {
    auto yes_no = [](bool b) { return std::string(b ? "yes" : "no"); };
    std::ostringstream mode;
    mode << '0' << std::oct << std::setw(3) << std::setfill('0') << o.socket_mode;
    std::map<std::string, std::string> values = {
        {"rules", o.rules_file},
        {"socket", o.socket},
        {"foreground", yes_no(o.foreground)},
        {"pid-file", o.pid_file},
        {"log", o.log},
        {"log-level", o.log_level},
        {"syslog-facility", o.syslog_facility},
        {"syslog-name", o.syslog_name},
        {"observe", yes_no(o.observe)},
        {"soft-bounce", yes_no(o.soft_bounce)},
        {"user", o.user},
        {"socket-mode", mode.str()},
        {"socket-group", o.socket_group},
        {"store", o.store},
        {"redis-password-file", o.redis_password_file},
        {"redis-prefix", o.redis_prefix},
        {"redis-timeout", std::to_string(o.redis_timeout_ms)},
        {"store-on-error", o.store_on_error == StoreErrorMode::Pass ? "pass" : "tempfail"},
        {"control", o.control},
        {"stats-interval", duration_text(o.stats_interval)},
        {"metrics", o.metrics},
        {"body-scan-limit", size_text(o.body_scan_limit)},
        {"policy-socket", o.policy_socket},
        {"dns-servers", o.dns_servers},
        {"dns-timeout", std::to_string(o.dns_timeout_ms) + "ms"},
    };
    values.merge(greylist_values(o));
    bool ok = true;
    const po::options_description keys = daemon_options();
    for (const auto& option : keys.options()) {
        const std::string& key = option->long_name();
        auto it = values.find(key);
        if (it == values.end()) {  // a key added without its line here; a unit test catches it
            err << "policy-milter: --dump-config: no value for '" << key << "'\n";
            ok = false;
            continue;
        }
        const std::string& value = it->second;
        if (value.empty()) {
            out << "# " << key << " =\n";  // unset: a config file cannot say "empty"
        } else if (value.find('#') != std::string::npos || value.find_first_of(" \t") == 0 ||
                   value.find_last_of(" \t") == value.size() - 1) {
            err << "policy-milter: --dump-config: the " << key << " value '" << value
                << "' cannot be written in a config file ('#' or blanks at its ends)\n";
            out << "# " << key << " = (cannot be written)\n";
            ok = false;
        } else {
            out << key << " = " << value << '\n';
        }
    }
    return ok;
}

ConversationOptions Options::conversation() const {
    ConversationOptions c;
    c.observe_all = observe;
    c.soft_bounce = soft_bounce;
    c.on_store_error = store_on_error;
    c.body_scan_limit = body_scan_limit;
    c.greylist = greylist;
    c.dns_timeout = std::chrono::milliseconds(dns_timeout_ms);
    return c;
}

namespace {

// --help and --version print and stop: the exit code, or nullopt for neither.
std::optional<int> help_or_version(const po::variables_map& cli, const po::options_description& all,
                                   Options& o, std::ostream& out) {
    if (cli.count("help")) {
        out << "Usage: policy-milter [options]\n"
               "       policy-milter --check [--rules FILE]\n"
               "       policy-milter --test [--rules FILE] --client IP [--helo H] [--from A]\n"
               "                     [--rcpt A]... [--size N] [--header \"Name: value\"]...\n"
               "                     [--message FILE]\n"
               "       policy-milter [-c FILE] --ctl COMMAND [ARG...]\n"
               "       policy-milter --report [FILE|-]...\n\n"
            << all;
        return 0;
    }
    if (cli.count("version")) {
        out << "policy-milter " << PM_VERSION << '\n';
        o.mode = Mode::Version;  // main() adds the libmilter version
        return 0;
    }
    return std::nullopt;
}

// The config file under the command line, into `merged`, its values checked and applied
// to `o`. The config file: a missing default one is fine, a named one must exist.
std::optional<int> apply_config_file(const po::variables_map& cli, po::variables_map& merged,
                                     Options& o, std::ostream& out, std::ostream& err) {
    bool named_config = cli.count("config") > 0;
    if (named_config) o.config_file = cli["config"].as<std::string>();
    po::options_description keys = daemon_options();
    ConfigFile file = read_config_file(o.config_file, named_config, keys, value_problem);
    if (std::size_t errors = file.diagnostics.error_count()) {
        // Every error of the file. --check counts them (main() prints the count, with the
        // start-up checks' errors) and goes on to the rules (exit 2).
        bool checking = cli.count("check") > 0;
        for (const auto& d : file.diagnostics.all()) (checking ? out : err) << d << '\n';
        if (!checking) return 2;
        o.config_errors = errors;
    }
    for (const auto& [key, where] : file.locations)
        if (!cli.count(key)) o.origins[key] = where.to_string();
    try {
        po::store(file.options, merged);  // the command line wins: Boost keeps a stored value
        po::notify(merged);
    } catch (const po::error& e) {
        err << o.config_file << ": error: " << e.what() << '\n';
        return 2;
    }
    apply_daemon_options(merged, o);
    if (std::string why = check_values(merged, o); !why.empty()) {
        err << "policy-milter: " << why << '\n';
        return 2;
    }
    return std::nullopt;
}

// The transaction of --test, from its options.
std::optional<int> read_test_transaction(const po::variables_map& cli, TestTransaction& t,
                                         std::ostream& err) {
    if (!cli.count("client")) {
        err << "policy-milter: --test needs --client IP\n";
        return 2;
    }
    auto str = [&](const char* key, auto& field) {
        if (cli.count(key)) field = cli[key].as<std::string>();
    };
    auto list = [&](const char* key, std::vector<std::string>& field) {
        if (cli.count(key)) field = cli[key].as<std::vector<std::string>>();
    };
    t.client_ip = cli["client"].as<std::string>();
    str("client-name", t.client_name);
    if (cli.count("client-port")) t.client_port = cli["client-port"].as<std::uint32_t>();
    str("helo", t.helo);
    str("from", t.from);
    str("auth", t.auth_user);
    t.tls = cli.count("tls") > 0;
    list("rcpt", t.rcpts);
    list("header", t.headers);
    str("message", t.message_file);
    if (cli.count("size") && !parse_size(cli["size"].as<std::string>(), t.size)) {
        err << "policy-milter: --size \"" << cli["size"].as<std::string>()
            << "\" is not a number\n";
        return 2;
    }
    return std::nullopt;
}

// --check, --test, --dump-config or --report, at most one of them; only --report takes
// arguments (its files).
std::optional<int> choose_mode(const po::variables_map& cli, Options& o, std::ostream& err) {
    if (cli.count("check") + cli.count("test") + cli.count("dump-config") + cli.count("report") +
            (o.mode == Mode::Ctl) >
        1) {
        err << "policy-milter: --check, --test, --dump-config, --ctl and --report cannot be "
               "combined\n";
        return 2;
    }
    if (o.mode == Mode::Ctl && o.ctl.empty()) {
        err << "policy-milter: --ctl needs a command: stats, limit-show RULE KEY..., "
               "limit-reset RULE KEY... or reload\n";
        return 2;
    }
    if (cli.count("report-file"))
        o.report_files = cli["report-file"].as<std::vector<std::string>>();
    if (cli.count("report")) {
        o.mode = Mode::Report;
        return std::nullopt;
    }
    if (!o.report_files.empty()) {
        err << "policy-milter: unexpected argument '" << o.report_files.front()
            << "' (only --report takes files)\nTry 'policy-milter --help'.\n";
        return 2;
    }
    if (cli.count("check")) o.mode = Mode::Check;
    if (cli.count("dump-config")) o.mode = Mode::DumpConfig;
    if (cli.count("test")) {
        o.mode = Mode::Test;
        return read_test_transaction(cli, o.test, err);
    }
    return std::nullopt;
}

}  // namespace

std::optional<int> parse_options(int argc, const char* const argv[], Options& o, std::ostream& out,
                                 std::ostream& err) {
    po::options_description all;
    all.add(command_options()).add(daemon_options()).add(test_options());
    // Every word after --ctl is the command's, as it is (a key value may start with '-'):
    // only the words before it are options.
    int options_end = argc;
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "--ctl") {
            options_end = i;
            o.mode = Mode::Ctl;
            o.ctl.assign(argv + i + 1, argv + argc);
            break;
        }
    // The files of --report: every word before --ctl that is not an option.
    po::options_description hidden;
    hidden.add_options()("report-file", po::value<std::vector<std::string>>());
    po::options_description parsed;
    parsed.add(all).add(hidden);
    po::positional_options_description positional;
    positional.add("report-file", -1);
    po::variables_map cli;
    try {
        po::store(
            po::command_line_parser(options_end, argv).options(parsed).positional(positional).run(),
            cli);
        po::notify(cli);
    } catch (const po::error& e) {
        err << "policy-milter: " << e.what() << "\nTry 'policy-milter --help'.\n";
        return 2;
    }
    if (auto code = help_or_version(cli, all, o, out)) return code;
    po::variables_map merged = cli;
    if (auto code = apply_config_file(cli, merged, o, out, err)) return code;
    return choose_mode(cli, o, err);
}

}  // namespace pm
