// SPDX-License-Identifier: BSD-2-Clause
// The counter store chosen by name (store/factory.h): the `store` value and its errors,
// exactly as the config parser reports them; the Redis URL; the password file; what a
// store says of itself. The Redis store against a real server: tests/redis.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "store/factory.h"
#include "test_util.h"

namespace pm {
namespace {

std::string url_error(const std::string& url) {
    std::string why;
    EXPECT_FALSE(parse_redis_url(url, why)) << url;
    return why;
}

TEST(StoreFactory, ParsesRedisUrls) {
    struct UrlCase {
        std::string url, host;
        int port;
        std::optional<int> db;  // unset: not checked
    };
    const std::vector<UrlCase> cases{
        {"redis://10.0.0.5:6380/2", "10.0.0.5", 6380, 2},
        {"redis://[::1]/", "::1", 6379, 0},
        {"redis://[2001:db8::5]:6390/10000", "2001:db8::5", 6390, 10000},
        {"redis://redis.example", "redis.example", 6379, std::nullopt},
    };
    for (const UrlCase& c : cases) {
        SCOPED_TRACE(c.url);
        std::string why;
        auto a = parse_redis_url(c.url, why);
        ASSERT_TRUE(a) << why;
        EXPECT_EQ(a->host, c.host);
        EXPECT_EQ(a->port, c.port);
        if (c.db) {
            EXPECT_EQ(a->db, *c.db);
        }
    }
}

// The messages are the ones the config file's diagnostics have always shown.
TEST(StoreFactory, RedisUrlErrors) {
    testing::expect_each(
        [](const std::string& in) { return url_error(in); },
        {
            {"memory", "not a redis:// URL"},
            {"redis://:secret@10.0.0.5", "put the password in redis-password-file, not in the URL"},
            {"redis://[::1", "no ']' after the IPv6 address"},
            {"redis://[::1]6379", "expected ':PORT' after ']'"},
            {"redis://[::1]:/0", "port '-' is not a number from 1 to 65535"},
            {"redis://10.0.0.5:/1", "port '-' is not a number from 1 to 65535"},
            {"redis://10.0.0.5:0", "port '0' is not a number from 1 to 65535"},
            {"redis://10.0.0.5:65536", "port '65536' is not a number from 1 to 65535"},
            {"redis://10.0.0.5:+80", "port '+80' is not a number from 1 to 65535"},
            {"redis://10.0.0.5:0000000080", "port '0000000080' is not a number from 1 to 65535"},
            {"redis://10.0.0.5/x", "database 'x' is not a number"},
            {"redis://10.0.0.5/10001", "database '10001' is not a number"},
            {"redis://10.0.0.5/-1", "database '-1' is not a number"},
            {"redis:///0", "no host"},
            {"redis://", "no host"},
            {"redis://[]:6379", "no host"},
            {"redis://:6379", "no host"},
        });
}

TEST(StoreFactory, StoreSettingProblems) {
    EXPECT_EQ(store_setting_problem("memory"), std::nullopt);
    EXPECT_EQ(store_setting_problem("Memory"),
              "store 'Memory' is not 'memory' or 'redis://HOST:PORT/DB'");
    EXPECT_EQ(store_setting_problem("rediss://10.0.0.5"),
              "store 'rediss://10.0.0.5' is not 'memory' or 'redis://HOST:PORT/DB'");
    if (redis_supported()) {
        EXPECT_EQ(store_setting_problem("redis://10.0.0.5:6379/0"), std::nullopt);
        EXPECT_EQ(store_setting_problem("redis://10.0.0.5:99999"),
                  "store 'redis://10.0.0.5:99999': port '99999' is not a number from 1 to 65535");
    } else {
        EXPECT_EQ(store_setting_problem("redis://10.0.0.5:6379/0"),
                  "store 'redis://10.0.0.5:6379/0': this build has no Redis support "
                  "(PM_WITH_REDIS=OFF)");
    }
}

TEST(StoreFactory, MemoryDescribesItselfAndHasNothingToProbe) {
    std::string why;
    auto store = make_counter_store(StoreSettings{}, why);
    ASSERT_TRUE(store) << why;
    EXPECT_EQ(store->describe(), "memory");
    EXPECT_FALSE(store->probe());
    store->add("k", 3, 60);
    EXPECT_EQ(store->count("k", 60), 3u);
}

// Made without contacting Redis: the daemon makes its store before the fork, whether
// Redis is up or not, and probes it only once it serves.
TEST(StoreFactory, RedisIsMadeWithoutContactAndDescribesItself) {
    StoreSettings s;
    s.name = "redis://[::1]:1/4";
    s.redis_prefix = "mx:";
    s.redis_timeout = std::chrono::milliseconds(80);
    std::string why;
    auto store = make_counter_store(s, why);
    if (!redis_supported()) {
        EXPECT_FALSE(store);
        EXPECT_EQ(why, "store redis://[::1]:1/4: this build has no Redis support");
        return;
    }
    ASSERT_TRUE(store) << why;
    EXPECT_EQ(store->describe(), "redis://[::1]:1/4 (prefix \"mx:\", timeout 80 ms)");
    // Nobody listens on port 1: the probe fails, with the URL in the reason.
    try {
        store->probe();
        ADD_FAILURE() << "probe of a closed port succeeded";
    } catch (const StoreError& e) {
        EXPECT_EQ(std::string(e.what()).rfind("redis://[::1]:1/4: ", 0), 0u) << e.what();
    }
    s.name = "redis://10.0.0.5:0";
    EXPECT_FALSE(make_counter_store(s, why));
    EXPECT_EQ(why, "port '0' is not a number from 1 to 65535");
}

TEST(StoreFactory, PasswordFile) {
    std::string dir = ::testing::TempDir();
    std::string good = dir + "pm-factory-good.pass", empty = dir + "pm-factory-empty.pass";
    std::ofstream(good) << "s3cret \t\r\nnot this line\n";
    std::ofstream(empty) << "  \nsecret on the second line\n";
    std::string password;
    // 127.0.0.1: the host check resolves it without DNS.
    EXPECT_TRUE(check_store_settings("redis://127.0.0.1", good, password).empty());
    EXPECT_EQ(password, "s3cret");

    auto problems = check_store_settings("redis://127.0.0.1", empty, password);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].key, "redis-password-file");
    EXPECT_EQ(problems[0].message, "redis-password-file " + empty + " has an empty first line");
    EXPECT_FALSE(problems[0].transient);

    std::string missing = dir + "pm-factory-missing.pass";
    problems = check_store_settings("redis://127.0.0.1", missing, password);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].message,
              "cannot read redis-password-file " + missing + ": No such file or directory");

    // The memory store reads no password file and resolves nothing.
    password = "unchanged";
    EXPECT_TRUE(check_store_settings("memory", missing, password).empty());
    EXPECT_EQ(password, "unchanged");
    // No file named: no password, no problem.
    password.clear();
    EXPECT_TRUE(check_store_settings("redis://127.0.0.1:6379/0", "", password).empty());
    EXPECT_EQ(password, "");
}

}  // namespace
}  // namespace pm
