package redisstore

import "github.com/redis/go-redis/v9"

// Tag bookkeeping lives in the meta database (see the package comment): "t:<tag>" is the set of
// keys under a tag, "k:<key>" the set of a key's tags and "f:<key>" the SHA-1 of the value the
// key had when it was tagged (or last changed through Vela by INCR, APPEND…). A key carries its
// tags only while its value still has that fingerprint, so a plain SET, which Vela sends to Redis
// as a plain SET for speed, ends the tags without touching the bookkeeping; the stale entries are
// dropped by TAGINVALIDATE and the sweep.

// luaDropTags defines droptags, which removes k from all its tag sets and deletes its records
// (the meta database must be selected), and tagstate, which says whether k carries tag: 2 yes,
// 1 the tag is not among k's tags, 0 k's records are stale (k is gone or its value changed
// behind Vela). tagstate leaves the meta database selected.
const luaDropTags = `
local function droptags(k)
  local rk = 'k:' .. k
  local tags = redis.call('SMEMBERS', rk)
  for _, t in ipairs(tags) do redis.call('SREM', 't:' .. t, k) end
  redis.call('DEL', rk, 'f:' .. k)
end
local function tagstate(k, tag, meta, user)
  redis.call('SELECT', meta)
  if redis.call('SISMEMBER', 'k:' .. k, tag) == 0 then return 1 end
  local fp = redis.call('GET', 'f:' .. k)
  redis.call('SELECT', user)
  local ok, v = pcall(redis.call, 'GET', k)
  redis.call('SELECT', meta)
  if ok and v ~= false and fp == redis.sha1hex(v) then return 2 end
  return 0
end
`

// scriptSet (SET … TAGS): KEYS[1] key; ARGV meta, value, cond (NX|XX|""), get (1|0),
// ttl (PXAT|KEEPTTL|""), pxat, tags… Returns {done(1|0), old value or nil}.
var scriptSet = redis.NewScript(luaDropTags + `
local args = {KEYS[1], ARGV[2]}
if ARGV[3] ~= '' then args[#args+1] = ARGV[3] end
if ARGV[4] == '1' then args[#args+1] = 'GET' end
if ARGV[5] == 'PXAT' then args[#args+1] = 'PXAT'; args[#args+1] = ARGV[6]
elseif ARGV[5] == 'KEEPTTL' then args[#args+1] = 'KEEPTTL' end
local r = redis.call('SET', unpack(args))
local done
if ARGV[4] == '1' then
  if ARGV[3] == 'NX' then done = (r == false) elseif ARGV[3] == 'XX' then done = (r ~= false) else done = true end
else
  done = (r ~= false)
end
if not done then return {0, r} end
local live = redis.call('EXISTS', KEYS[1])
redis.call('SELECT', ARGV[1])
droptags(KEYS[1])
if live == 1 then
  local rk = 'k:' .. KEYS[1]
  for i = 7, #ARGV do
    redis.call('SADD', 't:' .. ARGV[i], KEYS[1])
    redis.call('SADD', rk, ARGV[i])
  end
  redis.call('SET', 'f:' .. KEYS[1], redis.sha1hex(ARGV[2]))
end
return {1, r}
`)

// scriptDel: KEYS[1] key; ARGV meta, getdel (1|0). Returns DEL's or GETDEL's reply.
var scriptDel = redis.NewScript(luaDropTags + `
local r
if ARGV[2] == '1' then r = redis.call('GETDEL', KEYS[1]) else r = redis.call('DEL', KEYS[1]) end
if r ~= false and r ~= 0 then
  redis.call('SELECT', ARGV[1])
  droptags(KEYS[1])
end
return r
`)

// luaRunUpdate is runupdate(key, command, argument, from), the command of an update script, whose
// further arguments are ARGV[from] on: SETRANGE's and SETBIT's second argument, or for BITFIELD
// (whose argument is the number of operations) each operation's first and last byte, then the
// writes, six arguments each (OVERFLOW how SET|INCRBY type offset value). BITFIELD answers
// whether the key existed, its length, and the bytes each operation covers as they were before
// the writes (the caller works the replies out from them: Lua's numbers are doubles, which
// would round BITFIELD's 64-bit ones). The writes go in runs short enough for Lua's stack.
const luaRunUpdate = `
local function runupdate(key, cmd, arg, from)
  if cmd ~= 'BITFIELD' then
    if ARGV[from] then return redis.call(cmd, key, arg, ARGV[from]) end
    return redis.call(cmd, key, arg)
  end
  local out = {redis.call('EXISTS', key), redis.call('STRLEN', key)}
  local n = tonumber(arg)
  for i = 0, n - 1 do
    out[#out+1] = redis.call('GETRANGE', key, ARGV[from + 2*i], ARGV[from + 2*i + 1])
  end
  local t = from + 2*n
  while t <= #ARGV do
    local last = math.min(t + 5999, #ARGV)
    redis.call('BITFIELD', key, unpack(ARGV, t, last))
    t = last + 1
  end
  return out
end
`

// scriptUpdate: KEYS[1] key; ARGV meta, command (INCRBY|INCRBYFLOAT|APPEND|SETRANGE|SETBIT|
// BITFIELD), argument, pxat ("0": none), user database, then the command's further arguments
// (luaRunUpdate). Runs the command, gives the key the expiry if the command created it
// (a default TTL), and moves a tagged key's fingerprint to its new value so that it keeps its
// tags — only if it still carried them: a key whose tags a plain write ended does not get them
// back (its stale records are dropped instead).
var scriptUpdate = redis.NewScript(luaDropTags + luaRunUpdate + `
redis.call('SELECT', ARGV[1])
local fp = redis.call('GET', 'f:' .. KEYS[1])
redis.call('SELECT', ARGV[5])
local carried = false
if fp then
  local ok, v = pcall(redis.call, 'GET', KEYS[1])
  carried = ok and v and redis.sha1hex(v) == fp
end
local existed = redis.call('EXISTS', KEYS[1])
local r = runupdate(KEYS[1], ARGV[2], ARGV[3], 6)
-- Lua numbers are doubles: return INCRBY's result as the exact text Redis stored.
if ARGV[2] == 'INCRBY' then r = redis.call('GET', KEYS[1]) end
if existed == 0 and ARGV[4] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
if fp then
  local v = redis.call('GET', KEYS[1])
  redis.call('SELECT', ARGV[1])
  if carried then redis.call('SET', 'f:' .. KEYS[1], redis.sha1hex(v)) else droptags(KEYS[1]) end
end
return r
`)

// scriptMSet: KEYS the keys; ARGV nx (1|0), pxat, values… MSET/MSETNX with an expiry. Returns 1
// if written, 0 if NX found a live key.
var scriptMSet = redis.NewScript(`
if ARGV[1] == '1' then
  for i = 1, #KEYS do if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end end
end
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[2+i], 'PXAT', ARGV[2]) end
return 1
`)

// scriptInvalidate: ARGV meta, user database, tags… Deletes every key that carries one of the
// tags and returns the keys deleted; members of the tag sets that no longer carry the tag (the
// key was overwritten or expired) are dropped on the way.
var scriptInvalidate = redis.NewScript(luaDropTags + `
local out = {}
for i = 3, #ARGV do
  redis.call('SELECT', ARGV[1])
  local tk = 't:' .. ARGV[i]
  local members = redis.call('SMEMBERS', tk)
  for _, k in ipairs(members) do
    local st = tagstate(k, ARGV[i], ARGV[1], ARGV[2])
    if st ~= 1 then droptags(k) end
    if st == 2 then
      redis.call('SELECT', ARGV[2])
      if redis.call('DEL', k) == 1 then out[#out+1] = k end
    end
  end
  redis.call('SELECT', ARGV[1])
  redis.call('DEL', tk)
end
return out
`)

// scriptCleanTag runs in the meta database: KEYS[1] a tag set; ARGV meta, user database. It
// drops the members that no longer carry the tag (with their records) and returns how many.
var scriptCleanTag = redis.NewScript(luaDropTags + `
local tag = string.sub(KEYS[1], 3)
local n = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local st = tagstate(k, tag, ARGV[1], ARGV[2])
  if st == 0 then droptags(k) end
  if st ~= 2 then
    redis.call('SREM', KEYS[1], k)
    n = n + 1
  end
end
return n
`)

// scriptFlush: ARGV meta. Empties the user database and the meta database together.
var scriptFlush = redis.NewScript(`
redis.call('FLUSHDB')
redis.call('SELECT', ARGV[1])
redis.call('FLUSHDB')
return 1
`)

// scriptMove: KEYS src, dst; ARGV meta, user database, command (RENAME|RENAMENX|COPY), replace
// (1|0). Runs RENAME, RENAMENX or COPY in the user database and, when it moved or copied the key,
// gives dst the tags src carried (its records are dropped first: dst was replaced), dropping
// src's records on a rename. Returns 1 done, 0 not (the destination exists), -1 no such key (a
// rename of a missing key).
var scriptMove = redis.NewScript(luaDropTags + `
local src, dst = KEYS[1], KEYS[2]
redis.call('SELECT', ARGV[2])
if redis.call('EXISTS', src) == 0 then
  if ARGV[3] == 'COPY' then return 0 end
  return -1
end
if src == dst then return 0 end
local ok, v = pcall(redis.call, 'GET', src)
local r
if ARGV[3] == 'COPY' then
  if ARGV[4] == '1' then r = redis.call('COPY', src, dst, 'REPLACE') else r = redis.call('COPY', src, dst) end
elseif ARGV[3] == 'RENAMENX' then
  r = redis.call('RENAMENX', src, dst)
else
  redis.call('RENAME', src, dst)
  r = 1
end
if r == 0 then return 0 end
redis.call('SELECT', ARGV[1])
droptags(dst)
local fp = redis.call('GET', 'f:' .. src)
if ok and v and fp and fp == redis.sha1hex(v) then
  local tags = redis.call('SMEMBERS', 'k:' .. src)
  for _, t in ipairs(tags) do
    redis.call('SADD', 't:' .. t, dst)
    redis.call('SADD', 'k:' .. dst, t)
  end
  if #tags > 0 then redis.call('SET', 'f:' .. dst, fp) end
end
if ARGV[3] ~= 'COPY' then droptags(src) end
return 1
`)
