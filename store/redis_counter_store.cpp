// SPDX-License-Identifier: BSD-2-Clause
#include "store/redis_counter_store.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>

namespace pm {

namespace {

// KEYS[i]: a counter hash. ARGV[1]: "count" or "add"; ARGV[2]: the time in ms, or "" for
// the server's clock; then for each key i: ARGV[3i] the slot length in ms, ARGV[3i+1]
// the amount to add, ARGV[3i+2] the max (or "" for none).
// count returns the count of each key; add returns {0} after adding every amount, or
// {i, count of key i} for the first key whose count plus amount exceeds its max, having
// added nothing. inspect and reset take one key and return {count, ms until the oldest
// slot with a count leaves the window, ms until the newest one does} (CounterState);
// reset then deletes the key. Every argument is checked before the first write (a bad one is an
// error reply and changes nothing): numbers are 1 to 16 digits and at most LIMIT = 2^53-1, the
// largest integer a Lua number holds exactly, and counts saturate there. SLOTS and
// MAX_SLOT_MS are prepended from the sliding window's definition (policy/counter_store.h).
constexpr const char* kScriptBody = R"lua(
local LIMIT = 9007199254740991
local function num(s)
  if type(s) ~= 'string' or #s < 1 or #s > 16 or not string.find(s, '^%d+$') then return nil end
  local n = tonumber(s)
  if n > LIMIT then return nil end
  return n
end
local function bad(what) return redis.error_reply('policy-milter script: bad ' .. what) end
local mode = ARGV[1]
if mode ~= 'count' and mode ~= 'add' and mode ~= 'inspect' and mode ~= 'reset' then
  return bad('mode')
end
if (mode == 'inspect' or mode == 'reset') and #KEYS ~= 1 then return bad('key count') end
if #ARGV ~= 2 + 3 * #KEYS then return bad('argument count') end
local now = num(ARGV[2])
if ARGV[2] ~= '' and not now then return bad('time') end
local slots, amounts, maxes = {}, {}, {}
for i = 1, #KEYS do
  slots[i], amounts[i] = num(ARGV[3 * i]), num(ARGV[3 * i + 1])
  if not slots[i] or slots[i] < 1 or slots[i] > MAX_SLOT_MS then return bad('slot length') end
  if not amounts[i] then return bad('amount') end
  if ARGV[3 * i + 2] ~= '' then
    maxes[i] = num(ARGV[3 * i + 2])
    if not maxes[i] then return bad('max') end
  end
end
if redis.replicate_commands then pcall(redis.replicate_commands) end
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local totals, current, fresh, newest, oldest = {}, {}, {}, {}, {}
for i, key in ipairs(KEYS) do
  local slot = slots[i]
  local cur = math.floor(now / slot)
  current[i] = cur
  local total = 0
  if redis.call('HGET', key, 'w') == ARGV[3 * i] then
    local fields = {}
    for j = 0, SLOTS do fields[j + 1] = string.format('%d', cur - j) end
    for j, v in ipairs(redis.call('HMGET', key, unpack(fields))) do
      if v then
        local n = tonumber(v) or LIMIT
        total = math.min(total + n, LIMIT)
        if n > 0 then
          newest[i] = newest[i] or cur - (j - 1)
          oldest[i] = cur - (j - 1)
        end
      end
    end
  else
    fresh[i] = true
  end
  totals[i] = total
end
if mode == 'count' then return totals end
if mode == 'inspect' or mode == 'reset' then
  local drop, zero = 0, 0
  if totals[1] > 0 and newest[1] then
    -- slot n is counted until the current slot is n + SLOTS + 1
    drop = math.max((oldest[1] + SLOTS + 1) * slots[1] - now, 0)
    zero = math.max((newest[1] + SLOTS + 1) * slots[1] - now, 0)
  end
  if mode == 'reset' then redis.call('DEL', KEYS[1]) end
  return {totals[1], drop, zero}
end
for i = 1, #KEYS do
  if maxes[i] and totals[i] + amounts[i] > maxes[i] then return {i, totals[i]} end
end
for i, key in ipairs(KEYS) do
  local slot = slots[i]
  if fresh[i] then
    redis.call('DEL', key)
    redis.call('HSET', key, 'w', ARGV[3 * i])
  end
  local field = string.format('%d', current[i])
  local old = tonumber(redis.call('HGET', key, field) or '0') or LIMIT
  redis.call('HSET', key, field, string.format('%d', math.min(old + amounts[i], LIMIT)))
  if redis.call('HLEN', key) > SLOTS + 2 then
    for _, f in ipairs(redis.call('HKEYS', key)) do
      local n = tonumber(f)
      if f ~= 'w' and n and n < current[i] - SLOTS then redis.call('HDEL', key, f) end
    end
  end
  redis.call('PEXPIRE', key, slot * (SLOTS + 1))
end
return {0}
)lua";

const std::string& script_text() {
    static const std::string text = "local SLOTS = " + std::to_string(kSlotsPerWindow) +
                                    "\nlocal MAX_SLOT_MS = " + std::to_string(kMaxSlotMs) + "\n" +
                                    kScriptBody;
    return text;
}

// The largest count the script keeps exactly (2^53-1): amounts and maxes above it are
// sent as it, which the counts saturate at.
constexpr std::uint64_t kRedisLimit = (1ull << 53) - 1;

using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A failure of the connection itself (not a Redis error reply).
struct IoFailure {
    std::string what;
    bool timeout = false;
};

struct ReplyDeleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// What is left until the deadline, at least 1 ms: a zero timeval means "no timeout" to
// hiredis. A deadline already passed is a timeout.
timeval remaining(Steady::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Steady::now());
    if (left.count() <= 0) throw IoFailure{"timed out", true};
    left = std::max(left, std::chrono::microseconds(1000));
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(left.count() / 1'000'000);
    tv.tv_usec = static_cast<suseconds_t>(left.count() % 1'000'000);
    return tv;
}

void append(redisContext* ctx, const std::vector<std::string>& words) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& w : words) {
        argv.push_back(w.data());
        lens.push_back(w.size());
    }
    if (redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
        REDIS_OK)
        throw IoFailure{ctx->errstr, false};
}

// The next reply, waiting at most until the deadline.
ReplyPtr next_reply(redisContext* ctx, Steady::time_point deadline) {
    if (redisSetTimeout(ctx, remaining(deadline)) != REDIS_OK) throw IoFailure{ctx->errstr, false};
    void* reply = nullptr;
    if (redisGetReply(ctx, &reply) != REDIS_OK || !reply) {
        bool timeout = errno == EAGAIN || errno == EWOULDBLOCK || Steady::now() >= deadline;
        throw IoFailure{timeout ? std::string("timed out") : std::string(ctx->errstr), timeout};
    }
    return ReplyPtr(static_cast<redisReply*>(reply));
}

std::string reply_error(const redisReply& r) {
    return std::string(r.str, r.len);
}

std::string slot_ms_text(std::uint64_t window_seconds) {
    return std::to_string(slot_length_ms(window_seconds));
}

std::string count_text(std::uint64_t n) {
    return std::to_string(std::min(n, kRedisLimit));
}

}  // namespace

std::string RedisSettings::url() const {
    bool v6 = host.find(':') != std::string::npos;
    return "redis://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" +
           std::to_string(db);
}

struct RedisCounterStore::Connection {
    redisContext* ctx = nullptr;
    std::uint64_t generation = 0;
    std::string sha;
};

void RedisCounterStore::ConnectionDeleter::operator()(Connection* c) const {
    if (c->ctx) redisFree(c->ctx);
    delete c;
}

const char* RedisCounterStore::script() {
    return script_text().c_str();
}

RedisCounterStore::RedisCounterStore(RedisSettings settings, Clock clock)
    : settings_(std::move(settings)), clock_(std::move(clock)), backoff_(settings_.first_backoff) {}

RedisCounterStore::~RedisCounterStore() = default;

RedisCounterStore::ConnectionPtr RedisCounterStore::connect(SteadyTime deadline) {
    std::uint64_t generation = 0;
    {
        std::lock_guard lock(mutex_);
        generation = generation_;
    }
    redisContext* ctx =
        redisConnectWithTimeout(settings_.host.c_str(), settings_.port, remaining(deadline));
    ConnectionPtr c(new Connection{ctx, generation, {}});
    if (!ctx) throw IoFailure{"cannot allocate a connection", false};
    if (ctx->err) throw IoFailure{std::string("connect: ") + ctx->errstr, false};
    // The set-up goes in one round trip.
    int expected = 1;
    if (!settings_.password.empty()) {
        append(ctx, {"AUTH", settings_.password});
        ++expected;
    }
    if (settings_.db != 0) {
        append(ctx, {"SELECT", std::to_string(settings_.db)});
        ++expected;
    }
    append(ctx, {"SCRIPT", "LOAD", script_text()});
    for (int i = 0; i < expected; ++i) {
        ReplyPtr r = next_reply(ctx, deadline);
        if (r->type == REDIS_REPLY_ERROR) throw IoFailure{"set-up: " + reply_error(*r), false};
        if (i == expected - 1) c->sha.assign(r->str, r->len);
    }
    return c;
}

RedisCounterStore::ConnectionPtr RedisCounterStore::acquire(SteadyTime deadline, bool& reused) {
    {
        std::lock_guard lock(mutex_);
        if (!idle_.empty()) {
            ConnectionPtr c = std::move(idle_.back());
            idle_.pop_back();
            reused = true;
            return c;
        }
        auto now = Steady::now();
        if (down_) {
            if (now < next_attempt_) {
                auto wait = std::chrono::duration_cast<milliseconds>(next_attempt_ - now);
                throw StoreError(settings_.url() + " unavailable (" + last_error_ +
                                 "), next attempt in " + std::to_string(wait.count()) + " ms");
            }
            // This caller makes the attempt; the others keep failing fast meanwhile.
            next_attempt_ = now + backoff_;
            backoff_ = std::min(backoff_ * 2, settings_.max_backoff);
        }
    }
    reused = false;
    try {
        ConnectionPtr c = connect(deadline);
        note_success();
        return c;
    } catch (const IoFailure& f) {
        note_failure(f.what);
        throw StoreError(settings_.url() + ": " + f.what);
    }
}

void RedisCounterStore::release(ConnectionPtr c) {
    std::lock_guard lock(mutex_);
    if (c->generation == generation_ && idle_.size() < settings_.max_idle_connections)
        idle_.push_back(std::move(c));
}

void RedisCounterStore::note_failure(const std::string& why) {
    std::vector<ConnectionPtr> dropped;
    bool first = false;
    {
        std::lock_guard lock(mutex_);
        ++generation_;
        dropped.swap(idle_);
        last_error_ = why;
        if (!down_) {
            first = true;
            down_ = true;
            backoff_ = settings_.first_backoff;
            next_attempt_ = Steady::now() + backoff_;
            backoff_ = std::min(backoff_ * 2, settings_.max_backoff);
        }
    }
    if (first) spdlog::warn("counter store {}: {}; retrying with backoff", settings_.url(), why);
}

void RedisCounterStore::note_success() {
    bool was_down = false;
    {
        std::lock_guard lock(mutex_);
        was_down = down_;
        down_ = false;
        backoff_ = settings_.first_backoff;
    }
    if (was_down) spdlog::info("counter store {}: connected again", settings_.url());
}

std::vector<long long> RedisCounterStore::run(const char* mode,
                                              const std::vector<std::string>& keys,
                                              const std::vector<std::string>& args) {
    std::vector<std::string> words;
    words.reserve(5 + keys.size() + args.size());
    words.emplace_back("EVALSHA");
    words.emplace_back();  // the SHA1, per connection
    words.push_back(std::to_string(keys.size()));
    for (const auto& k : keys) words.push_back(settings_.prefix + storage_key(k));
    words.emplace_back(mode);
    words.push_back(clock_ ? std::to_string(clock_()) : std::string());
    words.insert(words.end(), args.begin(), args.end());
    return execute(words, nullptr);
}

std::vector<long long> RedisCounterStore::eval(const std::string& script,
                                               const std::vector<std::string>& keys,
                                               const std::vector<std::string>& args) {
    std::vector<std::string> words{"EVAL", script, std::to_string(keys.size())};
    for (const auto& k : keys) words.push_back(settings_.prefix + k);
    words.push_back(clock_ ? std::to_string(clock_()) : std::string());
    words.insert(words.end(), args.begin(), args.end());
    return execute(words, &script);
}

// `script` null: the counter script, by the SHA1 each connection loaded (EVAL again after
// a SCRIPT FLUSH); else the words are sent as they are.
std::vector<long long> RedisCounterStore::execute(std::vector<std::string>& words,
                                                  const std::string* script) {
    auto deadline = Steady::now() + settings_.timeout;
    for (int attempt = 0;; ++attempt) {
        bool reused = false;
        ConnectionPtr c = acquire(deadline, reused);
        ReplyPtr r;
        try {
            if (!script) {
                words[0] = "EVALSHA";
                words[1] = c->sha;
            }
            append(c->ctx, words);
            r = next_reply(c->ctx, deadline);
            if (!script && r->type == REDIS_REPLY_ERROR &&
                reply_error(*r).rfind("NOSCRIPT", 0) == 0) {
                // SCRIPT FLUSH on the server: EVAL loads it again.
                words[0] = "EVAL";
                words[1] = script_text();
                append(c->ctx, words);
                r = next_reply(c->ctx, deadline);
            }
        } catch (const IoFailure& f) {
            c.reset();
            // A pooled connection that Redis closed (a restart): once more, afresh.
            if (reused && !f.timeout && attempt == 0 && Steady::now() < deadline) {
                std::lock_guard lock(mutex_);
                ++generation_;
                idle_.clear();
                continue;
            }
            note_failure(f.what);
            throw StoreError(settings_.url() + ": " + f.what);
        }
        release(std::move(c));
        return integers(*r);
    }
}

std::vector<long long> RedisCounterStore::integers(const redisReply& r) const {
    if (r.type == REDIS_REPLY_ERROR) throw StoreError(settings_.url() + ": " + reply_error(r));
    if (r.type != REDIS_REPLY_ARRAY) throw StoreError(settings_.url() + ": unexpected reply");
    std::vector<long long> out;
    out.reserve(r.elements);
    for (std::size_t i = 0; i < r.elements; ++i) {
        const redisReply* e = r.element[i];
        if (e->type != REDIS_REPLY_INTEGER)
            throw StoreError(settings_.url() + ": unexpected reply");
        out.push_back(e->integer);
    }
    return out;
}

std::uint64_t RedisCounterStore::count(const std::string& key, std::uint64_t window_seconds) {
    auto out = run("count", {key}, {slot_ms_text(window_seconds), "0", ""});
    if (out.size() != 1 || out[0] < 0) throw StoreError(settings_.url() + ": unexpected reply");
    return static_cast<std::uint64_t>(out[0]);
}

CounterState RedisCounterStore::state(const char* mode, const std::string& key,
                                      std::uint64_t window_seconds) {
    auto out = run(mode, {key}, {slot_ms_text(window_seconds), "0", ""});
    if (out.size() != 3 || out[0] < 0 || out[1] < 0 || out[2] < 0)
        throw StoreError(settings_.url() + ": unexpected reply");
    return {static_cast<std::uint64_t>(out[0]), static_cast<std::uint64_t>(out[1]),
            static_cast<std::uint64_t>(out[2])};
}

CounterState RedisCounterStore::inspect(const std::string& key, std::uint64_t window_seconds) {
    return state("inspect", key, window_seconds);
}

CounterState RedisCounterStore::reset(const std::string& key, std::uint64_t window_seconds) {
    return state("reset", key, window_seconds);
}

std::optional<std::size_t> RedisCounterStore::check_and_add(std::span<const CounterAdd> adds) {
    if (adds.empty()) return std::nullopt;
    std::vector<std::string> keys, args;
    keys.reserve(adds.size());
    args.reserve(adds.size() * 3);
    for (const auto& a : adds) {
        keys.push_back(a.key);
        args.push_back(slot_ms_text(a.window_seconds));
        args.push_back(count_text(a.amount));
        args.push_back(a.max == CounterAdd::kNoMax ? std::string() : count_text(a.max));
    }
    auto out = run("add", keys, args);
    if (out.empty() || out[0] < 0 || static_cast<std::size_t>(out[0]) > adds.size())
        throw StoreError(settings_.url() + ": unexpected reply");
    if (out[0] == 0) return std::nullopt;
    return static_cast<std::size_t>(out[0] - 1);
}

std::string RedisCounterStore::describe() const {
    return settings_.url() + " (prefix \"" + settings_.prefix + "\", timeout " +
           std::to_string(settings_.timeout.count()) + " ms)";
}

bool RedisCounterStore::probe() {
    auto deadline = Steady::now() + settings_.timeout;
    bool reused = false;
    ConnectionPtr c = acquire(deadline, reused);
    try {
        append(c->ctx, {"PING"});
        ReplyPtr r = next_reply(c->ctx, deadline);
        if (r->type == REDIS_REPLY_ERROR) throw IoFailure{reply_error(*r), false};
    } catch (const IoFailure& f) {
        c.reset();
        note_failure(f.what);
        throw StoreError(settings_.url() + ": " + f.what);
    }
    release(std::move(c));
    return true;
}

}  // namespace pm
