// SPDX-License-Identifier: BSD-2-Clause
#include "config/socket_spec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/un.h>

#include <cctype>
#include <cstdlib>
#include <cstring>

#include "policy/ip.h"

namespace pm {

namespace {

// sockaddr_un's sun_path less the NUL; libmilter refuses one byte earlier still.
constexpr std::size_t kMaxUnixPath = sizeof(sockaddr_un{}.sun_path) - 2;

bool all_digits(std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

std::optional<unsigned> parse_port(std::string_view s) {
    if (!all_digits(s) || s.size() > 5) return std::nullopt;
    unsigned port = static_cast<unsigned>(std::atoi(std::string(s).c_str()));
    if (port < 1 || port > 65535) return std::nullopt;
    return port;
}

bool is_ipv6(std::string_view s) {
    in6_addr a;
    return inet_pton(AF_INET6, std::string(s).c_str(), &a) == 1;
}

bool is_ipv4(std::string_view s) {
    auto ip = parse_ip(s);  // strict: no leading zeros, no short forms
    return ip && !ip->v6;
}

// What inet_aton(), which libmilter's resolver calls use, makes of a numeric host such
// as "127.1" or "010.0.0.1": the dotted quad, or empty.
std::string libmilter_reading(std::string_view s) {
    in_addr a;
    if (inet_aton(std::string(s).c_str(), &a) == 0) return {};
    char text[INET_ADDRSTRLEN];
    return inet_ntop(AF_INET, &a, text, sizeof text) ? text : "";
}

// RFC 1123 host name: dot-separated labels of letters, digits and hyphens.
bool is_host_name(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    if (s.back() == '.') s.remove_suffix(1);
    bool last_label_numeric = true;
    std::size_t start = 0;
    while (start <= s.size()) {
        std::size_t dot = s.find('.', start);
        std::string_view label = s.substr(start, dot == s.npos ? s.npos : dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
            return false;
        for (char c : label)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
        last_label_numeric = all_digits(label);
        if (dot == s.npos) break;
        start = dot + 1;
    }
    return !last_label_numeric;  // "1.2.3" is an address, however short
}

std::string strip_brackets(std::string_view s) {
    if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
    return std::string(s);
}

// The spec meant by a host and a port: inet6 with brackets for an IPv6 address.
std::string spec_for(std::string_view host, unsigned port) {
    std::string h = strip_brackets(host);
    if (is_ipv6(h)) return "inet6:" + std::to_string(port) + "@[" + h + "]";
    return "inet:" + std::to_string(port) + "@" + h;
}

// Whether a host that goes with a port is one: an address (`ip_text`, brackets removed)
// or a host name (`name_text`).
bool is_host(const std::string& ip_text, std::string_view name_text) {
    return is_ipv4(ip_text) || is_ipv6(ip_text) || is_host_name(name_text);
}

// HOST:PORT, as Postfix writes it: what libmilter makes of it and the spec meant, or
// empty if `rest` is not of that form.
std::string host_colon_port_problem(std::string_view rest, const std::string& type) {
    std::size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return {};
    std::string host = strip_brackets(rest.substr(0, colon));
    auto port = parse_port(rest.substr(colon + 1));
    if (!port || !is_host(host, host)) return {};
    std::string message = "libmilter reads " + type + ":PORT@HOST";
    if (std::isdigit(static_cast<unsigned char>(rest.front())))
        message +=
            " and would listen on port " +
            std::to_string(static_cast<unsigned short>(std::atoi(std::string(rest).c_str()))) +
            " on every interface";
    return message + "; did you mean '" + spec_for(host, *port) + "'?";
}

// The PORT of PORT[@HOST], or nullopt with what is wrong in `message`.
std::optional<unsigned> inet_port(std::string_view rest, const std::string& type,
                                  std::string& message) {
    if (rest.empty()) {
        message = "no port; expected " + type + ":PORT@HOST";
        return std::nullopt;
    }
    std::size_t at = rest.find('@');
    if (at == std::string_view::npos) {
        message = host_colon_port_problem(rest, type);
        if (!message.empty()) return std::nullopt;
    }
    std::string_view port_text = rest.substr(0, at);
    if (auto port = parse_port(port_text)) return port;
    if (at != std::string_view::npos)
        if (auto swapped = parse_port(rest.substr(at + 1));  // HOST@PORT
            swapped && is_host(strip_brackets(port_text), port_text)) {
            message = "libmilter reads " + type + ":PORT@HOST; did you mean '" +
                      spec_for(port_text, *swapped) + "'?";
            return std::nullopt;
        }
    message = "port '" + std::string(port_text) + "' is not a number from 1 to 65535";
    return std::nullopt;
}

// A numeric HOST: a dotted-quad IPv4 address of `family` inet; what is wrong, or empty.
std::string ipv4_host_problem(const std::string& host, SocketFamily family, unsigned port) {
    if (!is_ipv4(host)) {
        std::string reading = libmilter_reading(host);
        return "host '" + host + "' is not a dotted-quad IPv4 address" +
               (reading.empty() ? std::string() : " (libmilter would read it as " + reading + ")");
    }
    if (family == SocketFamily::Inet6)
        return "'" + host + "' is an IPv4 address; did you mean '" + spec_for(host, port) + "'?";
    return {};
}

// A HOST with a ':': an IPv6 address of `family` inet6; what is wrong, or empty.
std::string ipv6_host_problem(const std::string& host, SocketFamily family, unsigned port) {
    if (!is_ipv6(host)) return "host '" + host + "' is not a valid IPv6 address";
    if (family == SocketFamily::Inet)
        return "'" + host + "' is an IPv6 address; did you mean '" + spec_for(host, port) + "'?";
    return {};
}

// The HOST of PORT@HOST, as written, into s.host; what is wrong, or empty.
std::string inet_host_problem(std::string_view written, SocketSpec& s) {
    if (written.empty()) return "no host after '@'";
    bool bracketed = written.front() == '[';
    if (bracketed && (written.size() < 3 || written.back() != ']'))
        return "host '" + std::string(written) + "' lacks its closing ']'";
    std::string host = strip_brackets(written);
    std::string problem;
    if (host.find(':') != std::string::npos) {
        problem = ipv6_host_problem(host, s.family, s.port);
        s.host_is_address = true;
    } else if (host.find_first_not_of("0123456789.") == std::string::npos ||
               !libmilter_reading(host).empty()) {
        problem = ipv4_host_problem(host, s.family, s.port);
        s.host_is_address = true;
    } else if (bracketed) {
        problem = "only an IP address goes in brackets, not '" + host + "'";
    } else if (!is_host_name(host)) {
        problem = "host '" + host + "' is neither an IP address nor a host name";
    }
    s.host = host;
    return problem;
}

std::optional<SocketSpec> parse_inet(std::string_view text, SocketFamily family,
                                     std::string_view rest, std::string& why) {
    const std::string type = family == SocketFamily::Inet ? "inet" : "inet6";
    std::string message;
    SocketSpec s;
    s.family = family;
    if (auto port = inet_port(rest, type, message)) {
        s.port = *port;
        if (std::size_t at = rest.find('@'); at != std::string_view::npos)
            message = inet_host_problem(rest.substr(at + 1), s);
    }
    if (message.empty()) return s;
    why = "socket '" + std::string(text) + "': " + message;
    return std::nullopt;
}

}  // namespace

std::string SocketSpec::to_libmilter() const {
    if (family == SocketFamily::Unix) return "unix:" + path;
    std::string out = (family == SocketFamily::Inet ? "inet:" : "inet6:") + std::to_string(port);
    // Addresses go in brackets: libmilter then converts them exactly, without a resolver.
    if (!host.empty()) out += host_is_address ? "@[" + host + "]" : "@" + host;
    return out;
}

bool SocketSpec::all_interfaces() const {
    if (family == SocketFamily::Unix) return false;
    if (host.empty()) return true;
    if (family == SocketFamily::Inet) return host == "0.0.0.0";
    in6_addr a;
    return inet_pton(AF_INET6, host.c_str(), &a) == 1 &&
           std::memcmp(&a, &in6addr_any, sizeof a) == 0;
}

std::optional<SocketSpec> parse_socket_spec(std::string_view text, std::string& why) {
    const std::string spec = "socket '" + std::string(text) + "': ";
    std::size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
        why = spec + "expected unix:PATH, inet:PORT@HOST or inet6:PORT@HOST";
        if (!text.empty() && text.front() == '/')
            why += "; did you mean 'unix:" + std::string(text) + "'?";
        else if (parse_port(text))
            why += "; did you mean 'inet:" + std::string(text) + "@127.0.0.1'?";
        return std::nullopt;
    }
    std::string type(text.substr(0, colon));
    std::string_view rest = text.substr(colon + 1);
    if (strcasecmp(type.c_str(), "unix") == 0 || strcasecmp(type.c_str(), "local") == 0) {
        if (rest.empty()) {
            why = spec + "no path after '" + type + ":'";
            return std::nullopt;
        }
        if (rest.front() != '/') {
            why = spec +
                  "the path must be absolute (libmilter would make it relative to the "
                  "daemon's working directory)";
            return std::nullopt;
        }
        if (rest.size() > kMaxUnixPath) {
            why = spec + "the path is longer than " + std::to_string(kMaxUnixPath) + " bytes";
            return std::nullopt;
        }
        SocketSpec s;
        s.path = std::string(rest);
        return s;
    }
    if (strcasecmp(type.c_str(), "inet") == 0)
        return parse_inet(text, SocketFamily::Inet, rest, why);
    if (strcasecmp(type.c_str(), "inet6") == 0)
        return parse_inet(text, SocketFamily::Inet6, rest, why);
    why = spec + "unknown socket type '" + type + "'; expected unix:, local:, inet: or inet6:";
    return std::nullopt;
}

}  // namespace pm
