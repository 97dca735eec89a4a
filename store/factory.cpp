// SPDX-License-Identifier: BSD-2-Clause
#include "store/factory.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "store/greylist_store.h"
#include "store/memory_counter_store.h"

#ifdef PM_WITH_REDIS
#include "store/redis_counter_store.h"
#include "store/redis_greylist_store.h"
#endif

namespace pm {

namespace {

constexpr const char* kRedisScheme = "redis://";

bool is_redis_url(const std::string& value) {
    return value.rfind(kRedisScheme, 0) == 0;
}

// A decimal number of at most five digits up to `max`, or -1.
long small_number(const std::string& text, long max) {
    if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != text.npos)
        return -1;
    long n = std::stol(text);
    return n <= max ? n : -1;
}

// Splits HOST[:PORT] or [IPv6][:PORT] into a.host and `port` ("-" for a ':' without a
// port, empty for none); false with the reason in `why`.
bool split_host_port(const std::string& hostport, RedisAddress& a, std::string& port,
                     std::string& why) {
    if (!hostport.empty() && hostport[0] == '[') {
        auto close = hostport.find(']');
        if (close == std::string::npos) {
            why = "no ']' after the IPv6 address";
            return false;
        }
        a.host = hostport.substr(1, close - 1);
        std::string after = hostport.substr(close + 1);
        if (after.empty()) return true;
        if (after[0] != ':') {
            why = "expected ':PORT' after ']'";
            return false;
        }
        port = after.substr(1);
    } else if (auto colon = hostport.find(':'); colon != std::string::npos) {
        a.host = hostport.substr(0, colon);
        port = hostport.substr(colon + 1);
    } else {
        a.host = hostport;
        return true;
    }
    if (port.empty()) port = "-";
    return true;
}

// The port and database parts; false with the reason in `why`.
bool parse_port_and_db(const std::string& port, const std::string& db, RedisAddress& a,
                       std::string& why) {
    if (!port.empty()) {
        long p = small_number(port, 65535);
        if (p < 1) {
            why = "port '" + port + "' is not a number from 1 to 65535";
            return false;
        }
        a.port = static_cast<int>(p);
    }
    if (!db.empty()) {
        long n = small_number(db, 10000);
        if (n < 0) {
            why = "database '" + db + "' is not a number";
            return false;
        }
        a.db = static_cast<int>(n);
    }
    return true;
}

// The first line of the password file, trailing blanks removed; a problem if it cannot
// be read or is empty.
std::optional<StoreSettingProblem> read_redis_password(const std::string& path,
                                                       std::string& password) {
    std::ifstream in(path);
    std::string line;
    if (!in || !std::getline(in, line))
        return StoreSettingProblem{
            "redis-password-file",
            "cannot read redis-password-file " + path + ": " + std::strerror(errno ? errno : EIO)};
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    password = line;
    if (line.empty())
        return StoreSettingProblem{"redis-password-file",
                                   "redis-password-file " + path + " has an empty first line"};
    return std::nullopt;
}

// Whether the Redis host resolves: hiredis resolves it at every connect.
std::optional<StoreSettingProblem> redis_host_problem(const std::string& url) {
    std::string why;
    auto address = parse_redis_url(url, why);
    if (!address) return std::nullopt;  // the option parser reported it
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int rc = getaddrinfo(address->host.c_str(), nullptr, &hints, &found);
    if (rc == 0) {
        freeaddrinfo(found);
        return std::nullopt;
    }
    bool unknown = rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_ADDRFAMILY;
    return StoreSettingProblem{
        "store", "Redis host '" + address->host + "' does not resolve: " + gai_strerror(rc),
        !unknown};
}

}  // namespace

std::optional<RedisAddress> parse_redis_url(const std::string& url, std::string& why) {
    if (!is_redis_url(url)) {
        why = "not a redis:// URL";
        return std::nullopt;
    }
    std::string rest = url.substr(std::strlen(kRedisScheme));
    if (rest.find('@') != std::string::npos) {
        why = "put the password in redis-password-file, not in the URL";
        return std::nullopt;
    }
    std::string hostport = rest, db;
    if (auto slash = rest.find('/'); slash != std::string::npos) {
        hostport = rest.substr(0, slash);
        db = rest.substr(slash + 1);
    }
    RedisAddress a;
    std::string port;
    if (!split_host_port(hostport, a, port, why)) return std::nullopt;
    if (a.host.empty()) {
        why = "no host";
        return std::nullopt;
    }
    if (!parse_port_and_db(port, db, a, why)) return std::nullopt;
    return a;
}

bool redis_supported() {
#ifdef PM_WITH_REDIS
    return true;
#else
    return false;
#endif
}

std::optional<std::string> store_setting_problem(const std::string& value) {
    if (value == "memory") return std::nullopt;
    if (!is_redis_url(value))
        return "store '" + value + "' is not 'memory' or 'redis://HOST:PORT/DB'";
    if (!redis_supported())
        return "store '" + value + "': this build has no Redis support (PM_WITH_REDIS=OFF)";
    std::string why;
    if (!parse_redis_url(value, why)) return "store '" + value + "': " + why;
    return std::nullopt;
}

std::vector<StoreSettingProblem> check_store_settings(const std::string& name,
                                                      const std::string& password_file,
                                                      std::string& password) {
    std::vector<StoreSettingProblem> problems;
    if (name == "memory") return problems;
    if (!password_file.empty())
        if (auto problem = read_redis_password(password_file, password))
            problems.push_back(std::move(*problem));
    if (auto problem = redis_host_problem(name)) problems.push_back(std::move(*problem));
    return problems;
}

#ifdef PM_WITH_REDIS
namespace {
// The connection settings of `store = redis://...`, for the counter and greylist stores.
std::optional<RedisSettings> redis_settings(const StoreSettings& s, std::string& why) {
    auto address = parse_redis_url(s.name, why);
    if (!address) return std::nullopt;
    RedisSettings settings;
    settings.host = address->host;
    settings.port = address->port;
    settings.db = address->db;
    settings.prefix = s.redis_prefix;
    settings.timeout = s.redis_timeout;
    settings.password = s.redis_password;
    return settings;
}
}  // namespace
#endif

std::unique_ptr<CounterStore> make_counter_store(const StoreSettings& s, std::string& why) {
    if (s.name == "memory") return std::make_unique<MemoryCounterStore>();
#ifdef PM_WITH_REDIS
    auto settings = redis_settings(s, why);
    if (!settings) return nullptr;
    return std::make_unique<RedisCounterStore>(std::move(*settings));
#else
    why = "store " + s.name + ": this build has no Redis support";
    return nullptr;
#endif
}

std::unique_ptr<GreylistStore> make_greylist_store(const StoreSettings& s, std::size_t max_entries,
                                                   std::string& why) {
    if (s.name == "memory") return std::make_unique<MemoryGreylistStore>(max_entries);
#ifdef PM_WITH_REDIS
    auto settings = redis_settings(s, why);
    if (!settings) return nullptr;
    return std::make_unique<RedisGreylistStore>(std::move(*settings));
#else
    why = "store " + s.name + ": this build has no Redis support";
    return nullptr;
#endif
}

}  // namespace pm
