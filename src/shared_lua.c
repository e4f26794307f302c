/* shared_lua.c — the Lua scripts that make every cross-host decision of shared.h atomic.
 *
 * Each runs with EVALSHA (loaded with SCRIPT LOAD at connect).  Rules they keep:
 *   - every time is the server's (TIME), never a host's;
 *   - arguments are checked before the first write.  Redis refuses a script's write for
 *     maxmemory (OOM) only while the script has not written anything yet, so a script is
 *     either refused whole or completes: reserve's first write (HSETNX, or purge's
 *     HINCRBY) is one Redis refuses when full; settle's is a deletion, never refused;
 *   - numbers go back to Redis through int() (string.format %d): a Lua number passed as
 *     is would become "1e+15", which HINCRBY refuses;
 *   - amounts are integer nusd below 2^53 (Lua numbers are doubles).
 *
 * Window W has three keys (shared.h): H = P:win:W (spent, reserved, h:HOST),
 * E = P:win:W:exp (id -> expiry ms), A = P:win:W:amt (id -> amount).  `reserved` is the
 * sum of A; an id leaves A, E and `reserved` together (drop), and expired ids are
 * dropped (purge) by every script that reads the window, so the sum never counts a
 * reservation past its TTL whatever Redis's key expiry does.
 *
 * Budget scripts answer {code, idx, now_ms, then per window: spent, reserved, host}. */
#include "shared_impl.h"

#define LUA_COMMON                                                                        \
    "local function num(x) return tonumber(x or '0') or 0 end\n"                          \
    "local function int(x) return string.format('%d', x) end\n"                           \
    "local function now_ms()\n"                                                           \
    "  local t = redis.call('TIME')\n"                                                    \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                \
    "end\n"

#define LUA_WINDOW                                                                        \
    LUA_COMMON                                                                            \
    "local function drop(h, e, a, id)\n"                                                  \
    "  local amt = redis.call('HGET', a, id)\n"                                           \
    "  if amt then\n"                                                                     \
    "    redis.call('HINCRBY', h, 'reserved', int(-num(amt)))\n"                          \
    "    redis.call('HDEL', a, id)\n"                                                     \
    "  end\n"                                                                             \
    "  redis.call('ZREM', e, id)\n"                                                       \
    "end\n"                                                                               \
    "local function purge(h, e, a, now)\n"                                                \
    "  local ids = redis.call('ZRANGEBYSCORE', e, '-inf', int(now), 'LIMIT', 0, 1000)\n"  \
    "  for _, id in ipairs(ids) do drop(h, e, a, id) end\n"                               \
    "end\n"                                                                               \
    "local function totals(out, h, host)\n"                                               \
    "  out[#out + 1] = num(redis.call('HGET', h, 'spent'))\n"                             \
    "  out[#out + 1] = math.max(0, num(redis.call('HGET', h, 'reserved')))\n"             \
    "  out[#out + 1] = num(redis.call('HGET', h, 'h:' .. host))\n"                        \
    "end\n"                                                                               \
    "local function live(h, e, a, ms)\n"                                                  \
    "  redis.call('PEXPIRE', h, int(ms))\n"                                               \
    "  redis.call('PEXPIRE', e, int(ms))\n"                                               \
    "  redis.call('PEXPIRE', a, int(ms))\n"                                               \
    "end\n"

/* KEYS: H, E, A per window.  ARGV: id, amount, ttl_ms, life_ms, host, cap per window
 * (< 0 = none).  code 0 = reserved in every window; 1 = EDQUOT (spent + amount > cap);
 * 2 = EAGAIN (spent + reserved + amount > cap); idx = the window (EDQUOT first). */
static const char lua_reserve[] =
    LUA_WINDOW
    "local n = #KEYS / 3\n"
    "local id, amt, ttl, life, host = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),\n"
    "  tonumber(ARGV[4]), ARGV[5]\n"
    "if n < 1 or n % 1 ~= 0 or #ARGV ~= 5 + n or not amt or amt < 0 or not ttl or\n"
    "   not life or id == '' then\n"
    "  return redis.error_reply('ERR routefs reserve: bad arguments')\n"
    "end\n"
    "local caps = {}\n"
    "for i = 1, n do\n"
    "  caps[i] = tonumber(ARGV[5 + i])\n"
    "  if not caps[i] then return redis.error_reply('ERR routefs reserve: bad cap') end\n"
    "end\n"
    "local now = now_ms()\n"
    "local code, idx = 0, 0\n"
    "for i = 1, n do\n"
    "  local h, e, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]\n"
    "  purge(h, e, a, now)\n"
    "  if caps[i] >= 0 and amt > 0 then\n"
    "    local spent = num(redis.call('HGET', h, 'spent'))\n"
    "    local resv = math.max(0, num(redis.call('HGET', h, 'reserved')))\n"
    "    if spent + amt > caps[i] then\n"
    "      if code ~= 1 then code, idx = 1, i end\n"
    "    elseif spent + resv + amt > caps[i] and code == 0 then\n"
    "      code, idx = 2, i\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if code == 0 then\n"
    "  for i = 1, n do\n"
    "    local h, e, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]\n"
    "    if redis.call('HSETNX', a, id, int(amt)) == 1 then\n"
    "      redis.call('ZADD', e, int(now + ttl), id)\n"
    "      redis.call('HINCRBY', h, 'reserved', int(amt))\n"
    "    end\n"
    "    live(h, e, a, life)\n"
    "  end\n"
    "end\n"
    "local out = {code, idx, now}\n"
    "for i = 1, n do totals(out, KEYS[3 * i - 2], host) end\n"
    "return out\n";

/* KEYS: H, E, A per window, then P:settled.  ARGV: id, actual, host, life_ms,
 * settled_life_ms, then per window '1' (charge it and drop id) or '0' (drop id only).
 * code 0 = charged; 1 = id was settled before (nothing charged again).
 * Its first write is a deletion (old settled ids), which maxmemory never refuses: money
 * already spent is recorded even when Redis is full (reserve, by contrast, is refused). */
static const char lua_settle[] =
    LUA_WINDOW
    "local n = (#KEYS - 1) / 3\n"
    "local id, amt, host = ARGV[1], tonumber(ARGV[2]), ARGV[3]\n"
    "local life, slife = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "if n < 1 or n % 1 ~= 0 or #ARGV ~= 5 + n or not amt or amt < 0 or not life or\n"
    "   not slife or id == '' then\n"
    "  return redis.error_reply('ERR routefs settle: bad arguments')\n"
    "end\n"
    "local now = now_ms()\n"
    "local sk = KEYS[#KEYS]\n"
    "redis.call('ZREMRANGEBYSCORE', sk, '-inf', int(now - slife))\n"
    "local dup = redis.call('ZSCORE', sk, id)\n"
    "for i = 1, n do\n"
    "  local h, e, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]\n"
    "  purge(h, e, a, now)\n"
    "  drop(h, e, a, id)\n"
    "end\n"
    "if not dup then\n"
    "  for i = 1, n do\n"
    "    if ARGV[5 + i] == '1' then\n"
    "      local h, e, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]\n"
    "      redis.call('HINCRBY', h, 'spent', int(amt))\n"
    "      redis.call('HINCRBY', h, 'h:' .. host, int(amt))\n"
    "      live(h, e, a, life)\n"
    "    end\n"
    "  end\n"
    "  redis.call('ZADD', sk, int(now), id)\n"
    "end\n"
    "redis.call('PEXPIRE', sk, int(slife))\n"
    "local out = {dup and 1 or 0, 0, now}\n"
    "for i = 1, n do totals(out, KEYS[3 * i - 2], host) end\n"
    "return out\n";

/* KEYS: H, E, A per window.  ARGV: id, host.  Drops id. */
static const char lua_release[] =
    LUA_WINDOW
    "local n = #KEYS / 3\n"
    "local id, host = ARGV[1], ARGV[2]\n"
    "if n < 1 or n % 1 ~= 0 or #ARGV ~= 2 or id == '' then\n"
    "  return redis.error_reply('ERR routefs release: bad arguments')\n"
    "end\n"
    "local now = now_ms()\n"
    "local out = {0, 0, now}\n"
    "for i = 1, n do\n"
    "  local h, e, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]\n"
    "  purge(h, e, a, now)\n"
    "  drop(h, e, a, id)\n"
    "  totals(out, h, host)\n"
    "end\n"
    "return out\n";

/* KEYS: H, E, A of one window.  ARGV: host, floor, life_ms.  Raises h:HOST to floor
 * (and spent by the same difference) when it is lower. */
static const char lua_floor[] =
    LUA_WINDOW
    "local host, want, life = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if #KEYS ~= 3 or not want or want < 0 or not life then\n"
    "  return redis.error_reply('ERR routefs floor: bad arguments')\n"
    "end\n"
    "local h, e, a = KEYS[1], KEYS[2], KEYS[3]\n"
    "local now = now_ms()\n"
    "local cur = num(redis.call('HGET', h, 'h:' .. host))\n"
    "if want > cur then\n"
    "  redis.call('HINCRBY', h, 'spent', int(want - cur))\n"
    "  redis.call('HINCRBY', h, 'h:' .. host, int(want - cur))\n"
    "  live(h, e, a, life)\n"
    "end\n"
    "purge(h, e, a, now)\n"
    "local out = {0, 0, now}\n"
    "totals(out, h, host)\n"
    "return out\n";

/* KEYS: P:brk, then H, E, A per watched window.  ARGV: host.
 * {now, {field, value, ...} of the open breakers and of those whose time ran out less
 * than a minute ago (being probed: shared_breaker_state), {spent, reserved, host} per
 * window}; breakers whose time ran out over a minute ago are deleted. */
static const char lua_sync[] =
    LUA_WINDOW
    "local n = (#KEYS - 1) / 3\n"
    "local host = ARGV[1]\n"
    "if n % 1 ~= 0 or #ARGV ~= 1 then\n"
    "  return redis.error_reply('ERR routefs sync: bad arguments')\n"
    "end\n"
    "local now = now_ms()\n"
    "local flat = redis.call('HGETALL', KEYS[1])\n"
    "local brk = {}\n"
    "for i = 1, #flat, 2 do\n"
    "  local u = tonumber(string.match(flat[i + 1], '^1|(%d+)|'))\n"
    "  if u and u + 60000 >= now then\n"
    "    brk[#brk + 1] = flat[i]\n"
    "    brk[#brk + 1] = flat[i + 1]\n"
    "  else\n"
    "    redis.call('HDEL', KEYS[1], flat[i])\n"
    "  end\n"
    "end\n"
    "local tot = {}\n"
    "for i = 1, n do\n"
    "  local h, e, a = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]\n"
    "  purge(h, e, a, now)\n"
    "  totals(tot, h, host)\n"
    "end\n"
    "return {now, brk, tot}\n";

/* KEYS: P:rate:PROV.  ARGV: interval_us.  GCRA without burst: the key holds the
 * theoretical arrival time (TAT, server µs); the booked slot is max(TAT, now) and the
 * next TAT slot + interval.  {wait_us, slot_us}. */
static const char lua_rate[] =
    LUA_COMMON
    "local T = tonumber(ARGV[1])\n"
    "if #KEYS ~= 1 or not T or T < 1 then\n"
    "  return redis.error_reply('ERR routefs rate: bad arguments')\n"
    "end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local tat = num(redis.call('GET', KEYS[1]))\n"
    "local slot = math.max(tat, now)\n"
    "local nxt = slot + T\n"
    "redis.call('SET', KEYS[1], int(nxt), 'PX', int(math.floor((nxt - now) / 1000) + 1000))\n"
    "return {slot - now, slot}\n";

/* KEYS: P:slots:PROV.  ARGV: lease_id, max, lease_ms.  {granted, in use, retry_ms}. */
static const char lua_slot[] =
    LUA_COMMON
    "local id, max, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if #KEYS ~= 1 or id == '' or not max or max < 1 or not lease or lease < 1 then\n"
    "  return redis.error_reply('ERR routefs slot: bad arguments')\n"
    "end\n"
    "local k = KEYS[1]\n"
    "local now = now_ms()\n"
    "local n = redis.call('ZCARD', k)\n"
    "if n > 0 and redis.call('ZCOUNT', k, '-inf', int(now)) > 0 then\n"
    "  redis.call('ZREMRANGEBYSCORE', k, '-inf', int(now))\n"
    "  n = redis.call('ZCARD', k)\n"
    "end\n"
    "if redis.call('ZSCORE', k, id) or n < max then\n"
    "  redis.call('ZADD', k, int(now + lease), id)\n"
    "  if redis.call('PTTL', k) < lease + 1000 then\n"
    "    redis.call('PEXPIRE', k, int(lease + 1000))\n"
    "  end\n"
    "  return {1, redis.call('ZCARD', k), 0}\n"
    "end\n"
    "local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')\n"
    "return {0, n, math.max(0, num(first[2]) - now)}\n";

/* KEYS: P:probe:FIELD, P:brk.  ARGV: field, host, lease_ms.  The half-open probe goes
 * to one host, and only while the breaker's open period is over: a probe that failed
 * re-opens the breaker before it gives the claim back, so a host claiming right after
 * does not probe again.  OK, or nil when not granted. */
static const char lua_probe_claim[] =
    LUA_COMMON
    "if #KEYS ~= 2 or #ARGV ~= 3 or not tonumber(ARGV[3]) then\n"
    "  return redis.error_reply('ERR routefs probe: bad arguments')\n"
    "end\n"
    "local v = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "if v then\n"
    "  local u = tonumber(string.match(v, '^1|(%d+)|'))\n"
    "  if u and u > now_ms() then\n"
    "    return false\n"
    "  end\n"
    "end\n"
    "return redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3])\n";

/* KEYS: P:probe:FIELD.  ARGV: host.  Deletes the claim if host holds it. */
static const char lua_probe_release[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

/* KEYS: P:brk.  ARGV: field, open ('1'/'0'), remaining_ms, host, reason.  An open
 * breaker is stored with its end on the server's clock.  Returns now. */
static const char lua_breaker[] =
    LUA_COMMON
    "local rem = tonumber(ARGV[3])\n"
    "if #KEYS ~= 1 or #ARGV ~= 5 or not rem or ARGV[1] == '' then\n"
    "  return redis.error_reply('ERR routefs breaker: bad arguments')\n"
    "end\n"
    "local now = now_ms()\n"
    "if ARGV[2] == '1' then\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], '1|' .. int(now + rem) .. '|' .. int(now) ..\n"
    "             '|' .. ARGV[4] .. '|' .. ARGV[5])\n"
    "else\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "end\n"
    "return now\n";

static const struct {
    const char *name, *text;
} scripts[LUA__COUNT] = {
    [LUA_RESERVE] = {"reserve", lua_reserve},
    [LUA_SETTLE] = {"settle", lua_settle},
    [LUA_RELEASE] = {"release", lua_release},
    [LUA_FLOOR] = {"floor", lua_floor},
    [LUA_SYNC] = {"sync", lua_sync},
    [LUA_RATE] = {"rate", lua_rate},
    [LUA_SLOT] = {"slot", lua_slot},
    [LUA_PROBE_CLAIM] = {"probe claim", lua_probe_claim},
    [LUA_PROBE_RELEASE] = {"probe release", lua_probe_release},
    [LUA_BREAKER] = {"breaker", lua_breaker},
};

const char *shared_lua_text(shared_lua which)
{
    return which < LUA__COUNT ? scripts[which].text : NULL;
}

const char *shared_lua_name(shared_lua which)
{
    return which < LUA__COUNT ? scripts[which].name : "?";
}
