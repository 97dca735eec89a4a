// SPDX-License-Identifier: BSD-2-Clause
#include "store/redis_greylist_store.h"

#include <algorithm>

namespace pm {

namespace {

// KEYS: the triplet, the client network. ARGV: now in ms (empty: Redis's TIME), delay,
// window, expire (ms), auto-whitelist count. Returns {pass, why, remaining ms}, `why`
// as GreylistAnswer::Why counts: new 0, early 1, retried 2, passed 3, whitelisted 4.
constexpr const char* kScript = R"lua(
local function num(s)
  if type(s) ~= 'string' or #s < 1 or #s > 16 or not string.find(s, '^%d+$') then return nil end
  return tonumber(s)
end
local now = num(ARGV[1])
if ARGV[1] ~= '' and not now then return redis.error_reply('policy-milter greylist: bad time') end
local delay, window, expire, awl = num(ARGV[2]), num(ARGV[3]), num(ARGV[4]), num(ARGV[5])
if not (delay and window and expire and awl) or window < 1 or expire < 1 then
  return redis.error_reply('policy-milter greylist: bad argument')
end
if redis.replicate_commands then pcall(redis.replicate_commands) end
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- An entry past its dead time (d) is gone, whatever its TTL says (the TTL only frees it).
local function fmt(n) return string.format('%d', n) end
local c = redis.call('HMGET', KEYS[2], 'n', 'd')
local client_live = awl > 0 and c[1] and (tonumber(c[2]) or 0) > now
local function refresh_client()
  redis.call('HSET', KEYS[2], 'd', fmt(now + expire))
  redis.call('PEXPIRE', KEYS[2], expire)
end
if client_live and (tonumber(c[1]) or 0) >= awl then
  refresh_client()
  return {1, 4, 0}
end
local e = redis.call('HMGET', KEYS[1], 'f', 'p', 'd')
-- First seen after now (the clock stepped back): it starts over, as greylist_step() does.
if not e[1] or (tonumber(e[3]) or 0) <= now or (e[2] ~= '1' and (tonumber(e[1]) or 0) > now) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'f', fmt(now), 'p', '0', 'd', fmt(now + window))
  redis.call('PEXPIRE', KEYS[1], window)
  return {0, 0, delay}
end
if e[2] == '1' then
  redis.call('HSET', KEYS[1], 'd', fmt(now + expire))
  redis.call('PEXPIRE', KEYS[1], expire)
  if client_live then refresh_client() end
  return {1, 3, 0}
end
local waited = now - (tonumber(e[1]) or now)
if waited < delay then return {0, 1, delay - waited} end
redis.call('HSET', KEYS[1], 'p', '1', 'd', fmt(now + expire))
redis.call('PEXPIRE', KEYS[1], expire)
if awl > 0 then
  if not client_live then redis.call('HSET', KEYS[2], 'n', '0') end
  redis.call('HINCRBY', KEYS[2], 'n', 1)
  refresh_client()
end
return {1, 2, 0}
)lua";

// Durations beyond what Redis's PEXPIRE and the script's numbers take exactly.
constexpr std::uint64_t kMaxMs = (1ull << 53) - 1;

std::string ms_text(std::uint64_t ms) {
    return std::to_string(std::min(ms, kMaxMs));
}

}  // namespace

const char* RedisGreylistStore::script() {
    return kScript;
}

RedisGreylistStore::RedisGreylistStore(RedisSettings settings, Clock clock)
    : redis_(std::move(settings), std::move(clock)) {}

GreylistAnswer RedisGreylistStore::check(const GreylistRequest& r) {
    static const std::string script = kScript;
    auto out = redis_.eval(
        script, {"gl:" + greylist_key_hex(r.triplet), "gw:" + greylist_key_hex(r.client)},
        {ms_text(r.delay_ms), ms_text(r.window_ms), ms_text(r.expire_ms),
         std::to_string(r.auto_whitelist)});
    if (out.size() != 3 || out[1] < 0 || out[1] > 4 || out[2] < 0)
        throw StoreError(describe() + ": unexpected greylist reply");
    GreylistAnswer a;
    a.pass = out[0] == 1;
    a.why = static_cast<GreylistAnswer::Why>(out[1]);
    a.remaining_ms = static_cast<std::uint64_t>(out[2]);
    return a;
}

}  // namespace pm
