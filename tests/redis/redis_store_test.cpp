// SPDX-License-Identifier: BSD-2-Clause
// The Redis counter store against a real redis-server, started by the tests on a free
// loopback port (skipped when redis-server is not installed).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "../unit/test_util.h"
#include "store/factory.h"
#include "store/greylist_store.h"
#include "store/redis_counter_store.h"
#include "store/redis_greylist_store.h"

extern char** environ;

namespace pm {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;
using testing::must_load;
using testing::summary;

int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        close(fd);
        return 0;
    }
    close(fd);
    return ntohs(a.sin_port);
}

bool have_redis_server() {
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

// A private redis-server: no persistence, loopback only.
class RedisServer {
  public:
    explicit RedisServer(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
        port_ = free_port();
    }
    ~RedisServer() { stop(); }

    bool start() {
        std::vector<std::string> args{
            "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",  "--save", "",
            "--appendonly", "no",     "--daemonize",         "no",     "--loglevel", "warning"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        int rc = posix_spawnp(&pid_, "redis-server", &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) return false;
        auto deadline = Steady::now() + 10s;
        while (Steady::now() < deadline) {
            if (redisContext* c = redisConnect("127.0.0.1", port_)) {
                bool up = c->err == 0;
                redisFree(c);
                if (up) return true;
            }
            std::this_thread::sleep_for(20ms);
        }
        return false;
    }
    void stop() {
        if (pid_ <= 0) return;
        kill(pid_, SIGCONT);
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    void pause() { kill(pid_, SIGSTOP); }
    void resume() { kill(pid_, SIGCONT); }
    int port() const { return port_; }

    // One command on a connection of its own (for set-up and inspection): the type of its
    // reply (REDIS_REPLY_*, 0 for none) and, for an integer reply, its value.
    int command_reply(const std::vector<std::string>& words, long long& integer) {
        redisContext* c = redisConnect("127.0.0.1", port_);
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& w : words) {
            argv.push_back(w.data());
            lens.push_back(w.size());
        }
        auto* r = static_cast<redisReply*>(
            redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
        int type = r ? r->type : 0;
        integer = type == REDIS_REPLY_INTEGER ? r->integer : -1;
        if (r) freeReplyObject(r);
        redisFree(c);
        return type;
    }
    long long command_integer(const std::vector<std::string>& words) {
        long long out = -1;
        command_reply(words, out);
        return out;
    }
    void command(const std::vector<std::string>& words) { (void)command_integer(words); }

  private:
    std::vector<std::string> extra_;
    int port_ = 0;
    pid_t pid_ = -1;
};

class RedisStoreTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!have_redis_server()) GTEST_SKIP() << "redis-server is not installed";
        ASSERT_TRUE(server_.start()) << "redis-server did not start on port " << server_.port();
    }
    RedisSettings settings() {
        RedisSettings s;
        s.port = server_.port();
        s.prefix = "t:";
        return s;
    }
    RedisServer server_;
};

struct FakeClock {
    std::atomic<std::uint64_t> now_ms{1'000'000'000'000};
    Clock fn() {
        return [this] { return now_ms.load(); };
    }
};

TEST_F(RedisStoreTest, CountsWithTheServerClock) {
    RedisCounterStore store(settings());
    EXPECT_EQ(store.count("k", 3600), 0u);
    store.add("k", 3, 3600);
    store.add("k", 2, 3600);
    EXPECT_EQ(store.count("k", 3600), 5u);
    EXPECT_EQ(store.count("other", 3600), 0u);
    // The key lives under the prefix and expires with its window (+ one slot).
    EXPECT_EQ(server_.command_integer({"EXISTS", "t:k"}), 1);
    long long ttl = server_.command_integer({"PTTL", "t:k"});
    EXPECT_GT(ttl, 3600 * 1000);
    EXPECT_LE(ttl, 3960 * 1000);
}

// The same operations on the memory store and on Redis, with one injected clock, give
// the same counts: the window math is the same.
TEST_F(RedisStoreTest, WindowMatchesTheMemoryStore) {
    FakeClock clock;
    RedisCounterStore redis(settings(), clock.fn());
    MemoryCounterStore memory(clock.fn());
    std::mt19937 rng(42);
    const std::vector<std::uint64_t> windows{1, 60, 3600};
    for (int step = 0; step < 2000; ++step) {
        clock.now_ms += rng() % 700;
        std::uint64_t w = windows[rng() % windows.size()];
        std::string key = "k" + std::to_string(rng() % 3) + "/" + std::to_string(w);
        if (rng() % 3 == 0) {
            std::uint64_t amount = rng() % 5;
            std::uint64_t max = rng() % 2 ? CounterAdd::kNoMax : rng() % 40;
            std::vector<CounterAdd> adds{{key, amount, w, max}};
            ASSERT_EQ(redis.check_and_add(adds), memory.check_and_add(adds)) << "step " << step;
        }
        ASSERT_EQ(redis.count(key, w), memory.count(key, w)) << "step " << step << " " << key;
    }
}

TEST_F(RedisStoreTest, WindowNeverLetsMoreThroughThanTheLimit) {
    FakeClock clock;
    clock.now_ms = 0;
    RedisCounterStore store(settings(), clock.fn());
    testing::expect_window_never_lets_more_through(store, clock.now_ms);
    // A new window length starts the key afresh.
    store.add("k", 4, 60);
    EXPECT_EQ(store.count("k", 120), 0u);
    store.add("k", 1, 120);
    EXPECT_EQ(store.count("k", 120), 1u);
}

TEST_F(RedisStoreTest, InspectAndReset) {
    FakeClock clock;
    RedisCounterStore store(settings(), clock.fn());
    testing::expect_inspect_and_reset(store, clock.now_ms);
}

// The reset deletes the hash under the store's key prefix, and nothing else.
TEST_F(RedisStoreTest, ResetDeletesTheKeyUnderThePrefix) {
    RedisSettings s = settings();
    s.prefix = "other:";
    RedisCounterStore other(s);
    RedisCounterStore store(settings());
    const std::string key =
        "id\x1f"
        "a";
    store.add(key, 2, 60);
    other.add(key, 3, 60);
    EXPECT_EQ(server_.command_integer({"EXISTS", "t:" + key}), 1);
    EXPECT_EQ(store.reset(key, 60).count, 2u);
    EXPECT_EQ(server_.command_integer({"EXISTS", "t:" + key}), 0);
    EXPECT_EQ(server_.command_integer({"EXISTS", "other:" + key}), 1);
    EXPECT_EQ(other.count(key, 60), 3u);
}

TEST_F(RedisStoreTest, OldSlotsAreDeleted) {
    FakeClock clock;
    RedisCounterStore store(settings(), clock.fn());
    for (int i = 0; i < 50; ++i) {
        store.add("k", 1, 10);  // 1 s slots
        clock.now_ms += 1000;
    }
    EXPECT_LE(server_.command_integer({"HLEN", "t:k"}), 13);
    EXPECT_EQ(store.count("k", 10), 10u);
}

TEST_F(RedisStoreTest, CheckAndAddIsAllOrNothing) {
    RedisCounterStore store(settings());
    testing::expect_check_and_add_is_all_or_nothing(store);
}

TEST_F(RedisStoreTest, CountsSaturate) {
    RedisCounterStore store(settings());
    testing::expect_counts_saturate(store);
}

// Long key parts are hashed in the Redis key too: a 100 KB header value costs a key of
// about 50 bytes.
TEST_F(RedisStoreTest, LongKeysCountApart) {
    RedisCounterStore store(settings());
    testing::expect_long_keys_count_apart(store);
    std::string a = "from-limit\x1f" + std::string(100'000, 'x') + "a";
    std::string stored = "t:" + storage_key(a);
    EXPECT_EQ(stored, "t:from-limit\x1f#" + storage_key(a).substr(12));
    EXPECT_EQ(stored.size(), 2u + 10 + 1 + 33);
    EXPECT_EQ(server_.command_integer({"EXISTS", stored}), 1);
    EXPECT_EQ(server_.command_integer({"DBSIZE"}), 3);  // with the split key's
}

// The script checks all of its arguments before its first write: a bad one is an error
// reply, and no key is created or changed (before, the first key was written and the
// second add failed half-way, or a negative amount decremented a count).
TEST_F(RedisStoreTest, ScriptChecksEveryArgumentBeforeWriting) {
    auto eval = [&](const std::vector<std::string>& argv_tail) {
        std::vector<std::string> words{
            "EVAL", RedisCounterStore::script(), "2", "t:one", "t:two", "add", ""};
        words.insert(words.end(), argv_tail.begin(), argv_tail.end());
        long long ignored = 0;
        return server_.command_reply(words, ignored) == REDIS_REPLY_ERROR;
    };
    const std::vector<std::vector<std::string>> bad = {
        {"1000", "1", "", "1000", "x", ""},                     // amount not a number
        {"1000", "1", "", "1000", "-1", ""},                    // negative amount
        {"1000", "1", "", "1000", "+1", ""},                    // sign
        {"1000", "1", "", "1000", "1", "-5"},                   // negative max
        {"1000", "1", "", "0", "1", ""},                        // zero slot length
        {"1000", "1", "", "1000", "1e3", ""},                   // exponent
        {"1000", "1", "", "1000", "18446744073709551615", ""},  // over 2^53-1
        {"1000", "1", "", "1000", "1"},                         // an argument missing
    };
    for (const auto& args : bad) {
        EXPECT_TRUE(eval(args)) << args[4];
        EXPECT_EQ(server_.command_integer({"DBSIZE"}), 0) << args[4];
    }
    EXPECT_FALSE(eval({"1000", "1", "", "1000", "1", "5"}));
    EXPECT_EQ(server_.command_integer({"DBSIZE"}), 2);
}

// Two "MTAs" (two stores, as two daemons would have), many threads each: exactly the
// limit is taken.
TEST_F(RedisStoreTest, TwoStoresManyThreadsNeverOverAdmit) {
    RedisSettings s = settings();
    s.timeout = 2000ms;  // a loaded test machine (sanitizers) must not time out here
    RedisCounterStore a(s), b(s);
    std::atomic<int> taken{0}, errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            RedisCounterStore& store = t % 2 ? a : b;
            for (int i = 0; i < 40; ++i) {
                std::vector<CounterAdd> adds{{"shared", 1, 3600, 100}};
                try {
                    if (!store.check_and_add(adds)) ++taken;
                } catch (const StoreError&) {
                    ++errors;
                }
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(taken.load(), 100);
    EXPECT_EQ(a.count("shared", 3600), 100u);
}

TEST_F(RedisStoreTest, ScriptFlushIsSurvived) {
    RedisCounterStore store(settings());
    store.add("k", 1, 60);
    server_.command({"SCRIPT", "FLUSH"});
    store.add("k", 1, 60);
    EXPECT_EQ(store.count("k", 60), 2u);
}

// Made by name, as the daemon makes it (store/factory.h), with the password read from a
// file as the start-up checks read it: it describes itself and answers a probe, and a
// store whose server has gone says so (the daemon's "not reachable at start" warning).
TEST_F(RedisStoreTest, FromTheFactoryDescribesAndProbes) {
    server_.command({"CONFIG", "SET", "requirepass", "s3cret"});
    std::string password_file = ::testing::TempDir() + "pm-redis-factory.pass";
    std::ofstream(password_file) << "s3cret \nsecond line\n";
    StoreSettings s;
    s.name = "redis://127.0.0.1:" + std::to_string(server_.port()) + "/2";
    s.redis_prefix = "f:";
    s.redis_timeout = std::chrono::milliseconds(200);
    EXPECT_TRUE(check_store_settings(s.name, password_file, s.redis_password).empty());
    EXPECT_EQ(s.redis_password, "s3cret");
    std::string why;
    auto store = make_counter_store(s, why);
    ASSERT_TRUE(store) << why;
    EXPECT_EQ(store->describe(), "redis://127.0.0.1:" + std::to_string(server_.port()) +
                                     "/2 (prefix \"f:\", timeout 200 ms)");
    EXPECT_TRUE(store->probe());
    store->add("k", 2, 60);
    EXPECT_EQ(store->count("k", 60), 2u);
    server_.stop();
    EXPECT_THROW(store->probe(), StoreError);
}

TEST_F(RedisStoreTest, DatabaseAndPassword) {
    server_.command({"CONFIG", "SET", "requirepass", "s3cret"});
    RedisSettings s = settings();
    s.db = 3;
    s.password = "wrong";
    RedisCounterStore bad(s);
    EXPECT_THROW(bad.count("k", 60), StoreError);
    s.password = "s3cret";
    RedisCounterStore good(s);
    good.add("k", 7, 60);
    EXPECT_EQ(good.count("k", 60), 7u);
    redisContext* c = redisConnect("127.0.0.1", server_.port());
    auto* r = static_cast<redisReply*>(redisCommand(c, "AUTH s3cret"));
    freeReplyObject(r);
    r = static_cast<redisReply*>(redisCommand(c, "SELECT 3"));
    freeReplyObject(r);
    r = static_cast<redisReply*>(redisCommand(c, "EXISTS t:k"));
    EXPECT_EQ(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
}

// A Redis that does not answer: the call fails within the timeout, later calls fail at
// once during the backoff, and it works again once Redis answers.
TEST_F(RedisStoreTest, HungRedisTimesOut) {
    RedisSettings s = settings();
    s.timeout = 50ms;
    RedisCounterStore store(s);
    store.add("k", 1, 60);
    server_.pause();
    auto start = Steady::now();
    EXPECT_THROW(store.count("k", 60), StoreError);
    auto took = Steady::now() - start;
    EXPECT_LT(took, 250ms);  // 50 ms, with room for a loaded machine
    start = Steady::now();
    EXPECT_THROW(store.count("k", 60), StoreError);  // in the backoff: no wait at all
    EXPECT_LT(Steady::now() - start, 20ms);
    server_.resume();
    auto deadline = Steady::now() + 1500ms;
    bool back = false;
    while (!back && Steady::now() < deadline) {
        try {
            back = store.count("k", 60) == 1;
        } catch (const StoreError&) {
            std::this_thread::sleep_for(10ms);
        }
    }
    EXPECT_TRUE(back);
}

TEST_F(RedisStoreTest, RedisGoneAndBack) {
    RedisCounterStore store(settings());
    store.add("k", 1, 60);
    server_.stop();
    EXPECT_THROW(store.count("k", 60), StoreError);
    EXPECT_THROW(store.add("k", 1, 60), StoreError);
    std::this_thread::sleep_for(700ms);  // the backoff grows meanwhile
    for (int i = 0; i < 3; ++i) {
        EXPECT_THROW(store.count("k", 60), StoreError);
        std::this_thread::sleep_for(300ms);
    }
    ASSERT_TRUE(server_.start());  // same port, empty (no persistence)
    auto back_at = Steady::now();
    bool back = false;
    while (!back && Steady::now() < back_at + 3s) {
        try {
            back = store.count("k", 60) == 0;
        } catch (const StoreError&) {
            std::this_thread::sleep_for(10ms);
        }
    }
    EXPECT_TRUE(back);
    EXPECT_LT(Steady::now() - back_at, 1000ms) << "limits must work again within a second";
    store.add("k", 2, 60);
    EXPECT_EQ(store.count("k", 60), 2u);
}

TEST_F(RedisStoreTest, RestartedRedisCostsNoError) {
    RedisCounterStore store(settings());
    store.add("k", 1, 60);
    server_.stop();
    ASSERT_TRUE(server_.start());
    // The pooled connection is dead; the store retries once on a fresh one.
    EXPECT_EQ(store.count("k", 60), 0u);
}

// Two conversations, as on two MTAs sharing one Redis: one combined limit, and a
// transaction that lost the race is refused at its end.
TEST_F(RedisStoreTest, ConversationsShareOneLimit) {
    RedisCounterStore mta1(settings()), mta2(settings());
    auto p = must_load(
        "limit \"sender-hourly\" at mail key sender max 3 per 1h\n"
        "    tempfail 452 4.7.1 \"Too many messages from {sender}\"\n");
    auto send = [&](CounterStore& store) {
        Conversation c(p, store);
        c.connect(parse_ip("192.0.2.1"), "unknown", 1);
        Decision d = c.mail("<a@x>", "", 0, false);
        if (d.refused()) return summary(d);
        c.rcpt("<b@y>");
        c.data();
        return summary(c.message());
    };
    EXPECT_EQ(send(mta1), "continue");
    EXPECT_EQ(send(mta2), "continue");
    // Two in parallel for the last one.
    Conversation x(p, mta1), y(p, mta2);
    for (Conversation* c : {&x, &y}) {
        c->connect(parse_ip("192.0.2.1"), "unknown", 1);
        EXPECT_EQ(c->mail("<a@x>", "", 0, false).verdict, Verdict::Continue);
        c->rcpt("<b@y>");
        c->data();
    }
    EXPECT_EQ(summary(y.message()), "continue");
    EXPECT_EQ(summary(x.message()), "tempfail 452 4.7.1 Too many messages from a@x");
    EXPECT_EQ(send(mta1), "tempfail 452 4.7.1 Too many messages from a@x");
    EXPECT_EQ(send(mta2), "tempfail 452 4.7.1 Too many messages from a@x");
    EXPECT_EQ(mta1.count("sender-hourly\x1f"
                         "a@x",
                         3600),
              3u);
}

// --- the greylist in Redis (store/redis_greylist_store.h) -----------------------------------

GreylistRequest grey_request(const std::string& sender, std::uint32_t auto_whitelist = 0) {
    GreylistRequest r;
    r.triplet = greylist_triplet_key("192.0.2.0/24", sender, "rcpt@example.org");
    r.client = greylist_client_key("192.0.2.0/24");
    r.delay_ms = 300'000;
    r.window_ms = 3'600'000;
    r.expire_ms = 7'200'000;
    r.auto_whitelist = auto_whitelist;
    return r;
}

// The same sequence on the memory store and on Redis, with one injected clock, gives the
// same answers: the Lua script is greylist_step().
TEST_F(RedisStoreTest, GreylistMatchesTheMemoryStore) {
    FakeClock clock;
    RedisGreylistStore redis(settings(), clock.fn());
    MemoryGreylistStore memory(1000, clock.fn());
    const std::uint64_t steps[] = {0, 100'000, 200'000, 1'000, 3'000'000, 7'300'000, 10};
    for (std::uint32_t awl : {0u, 2u}) {
        for (std::uint64_t step : steps) {
            clock.now_ms += step;
            for (const char* sender : {"a@x", "b@x", "c@x"}) {
                GreylistAnswer m = memory.check(grey_request(sender, awl));
                GreylistAnswer r = redis.check(grey_request(sender, awl));
                EXPECT_EQ(r.pass, m.pass) << sender << " +" << step;
                EXPECT_EQ(greylist_why_name(r.why), greylist_why_name(m.why)) << sender;
                EXPECT_EQ(r.remaining_ms, m.remaining_ms) << sender;
            }
        }
        clock.now_ms += 100'000'000;  // everything expired
    }
}

// Review finding: a clock stepped back made an early retry pass (the memory store's
// now - first wrapped); Redis's script refused it until the clock caught up again. Both
// now start the triplet over.
TEST_F(RedisStoreTest, GreylistClockSteppedBackStartsOver) {
    FakeClock clock;
    clock.now_ms = 1'000'000'000;
    RedisGreylistStore redis(settings(), clock.fn());
    MemoryGreylistStore memory(1000, clock.fn());
    const std::int64_t steps[] = {0, -1'800'000, 100'000, 200'000, -10'000'000, 1};
    for (std::int64_t step : steps) {
        clock.now_ms = static_cast<std::uint64_t>(static_cast<std::int64_t>(clock.now_ms) + step);
        GreylistAnswer m = memory.check(grey_request("a@x"));
        GreylistAnswer r = redis.check(grey_request("a@x"));
        EXPECT_EQ(r.pass, m.pass) << step;
        EXPECT_EQ(greylist_why_name(r.why), greylist_why_name(m.why)) << step;
        EXPECT_EQ(r.remaining_ms, m.remaining_ms) << step;
    }
}

// Two daemons sharing one Redis: a retry through the other passes; expiry is Redis's TTL.
TEST_F(RedisStoreTest, GreylistSharedByTwoStoresWithTheServerClock) {
    RedisGreylistStore one(settings()), two(settings());
    GreylistRequest r = grey_request("a@x");
    r.delay_ms = 300;
    EXPECT_FALSE(one.check(r).pass);
    EXPECT_EQ(two.check(r).why, GreylistAnswer::Why::Early);
    std::this_thread::sleep_for(400ms);
    EXPECT_EQ(two.check(r).why, GreylistAnswer::Why::Retried);
    EXPECT_EQ(one.check(r).why, GreylistAnswer::Why::Passed);
    std::string key = "t:gl:" + greylist_key_hex(r.triplet);
    long long ttl = server_.command_integer({"PTTL", key});
    EXPECT_GT(ttl, 7'000'000);
    EXPECT_LE(ttl, 7'200'000);
}

// Redis down: the store throws StoreError, and store-on-error decides the recipient.
TEST_F(RedisStoreTest, GreylistWithRedisDownFollowsStoreOnError) {
    RedisGreylistStore store(settings());
    MemoryCounterStore counters;
    auto policy = must_load("rule \"g\" at rcpt greylist delay 5m\n");
    server_.stop();
    EXPECT_THROW(store.check(grey_request("a@x")), StoreError);
    ConversationOptions o;
    Conversation tempfail(policy, counters, o, &store);
    testing::start_mail(tempfail, "<a@x>");
    EXPECT_EQ(summary(tempfail.rcpt("<b@y>")),
              "tempfail 451 4.3.0 Local error in processing, try again later");
    o.on_store_error = StoreErrorMode::Pass;
    Conversation pass(policy, counters, o, &store);
    testing::start_mail(pass, "<a@x>");
    EXPECT_EQ(summary(pass.rcpt("<b@y>")), "continue");
}

}  // namespace
}  // namespace pm
