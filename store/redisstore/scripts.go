package redisstore

import "github.com/redis/go-redis/v9"

// Tag bookkeeping lives in the meta database (see the package comment): "t:<tag>" is the set of
// keys under a tag, "k:<key>" the set of a key's tags, with the key's own expiry so both vanish at
// the same millisecond. Every script that ends or changes a key's life keeps "k:<key>" in step,
// inside the script, so no other client can interleave.

// luaDropTags removes k from all its tag sets and deletes its tag record. The meta database must
// be selected.
const luaDropTags = `
local function droptags(k)
  local rk = 'k:' .. k
  local tags = redis.call('SMEMBERS', rk)
  for _, t in ipairs(tags) do redis.call('SREM', 't:' .. t, k) end
  if #tags > 0 then redis.call('DEL', rk) end
end
`

// luaFollowTTL gives k's tag record k's current expiry (or drops it if k is gone).
const luaFollowTTL = luaDropTags + `
local function followttl(k, meta)
  local at = redis.call('PEXPIRETIME', k)
  redis.call('SELECT', meta)
  local rk = 'k:' .. k
  if at == -2 then droptags(k)
  elseif at == -1 then redis.call('PERSIST', rk)
  else redis.call('PEXPIREAT', rk, at) end
end
`

// scriptSet: KEYS[1] key; ARGV meta, value, cond (NX|XX|""), get (1|0), ttl (PXAT|KEEPTTL|""),
// pxat, tags… Returns {done(1|0)} or, with get, {done, old value or nil}.
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
local at = redis.call('PEXPIRETIME', KEYS[1])
redis.call('SELECT', ARGV[1])
droptags(KEYS[1])
if #ARGV >= 7 and at ~= -2 then
  local rk = 'k:' .. KEYS[1]
  for i = 7, #ARGV do
    redis.call('SADD', 't:' .. ARGV[i], KEYS[1])
    redis.call('SADD', rk, ARGV[i])
  end
  if at > 0 then redis.call('PEXPIREAT', rk, at) end
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

// scriptExpire: KEYS[1] key; ARGV meta, pxat, conditions… Returns PEXPIREAT's reply.
var scriptExpire = redis.NewScript(luaFollowTTL + `
local r = redis.call('PEXPIREAT', KEYS[1], ARGV[2], unpack(ARGV, 3))
if r == 1 then followttl(KEYS[1], ARGV[1]) end
return r
`)

// scriptPersist: KEYS[1] key; ARGV meta. Returns PERSIST's reply.
var scriptPersist = redis.NewScript(luaFollowTTL + `
local r = redis.call('PERSIST', KEYS[1])
if r == 1 then followttl(KEYS[1], ARGV[1]) end
return r
`)

// scriptGetEx: KEYS[1] key; ARGV meta, PERSIST|PXAT, pxat. Returns GETEX's reply.
var scriptGetEx = redis.NewScript(luaFollowTTL + `
local r
if ARGV[2] == 'PERSIST' then r = redis.call('GETEX', KEYS[1], 'PERSIST')
else r = redis.call('GETEX', KEYS[1], 'PXAT', ARGV[3]) end
if r ~= false then followttl(KEYS[1], ARGV[1]) end
return r
`)

// scriptNewTTL: KEYS[1] key; ARGV command (INCRBY|INCRBYFLOAT|APPEND), argument, pxat. Runs the
// command and gives the key the expiry only if the command created it (a default TTL).
var scriptNewTTL = redis.NewScript(`
local existed = redis.call('EXISTS', KEYS[1])
local r = redis.call(ARGV[1], KEYS[1], ARGV[2])
if existed == 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
return r
`)

// scriptInspect: KEYS[1] key. Returns {PEXPIRETIME, STRLEN}.
var scriptInspect = redis.NewScript(`
local at = redis.call('PEXPIRETIME', KEYS[1])
if at == -2 then return {-2, 0} end
return {at, redis.call('STRLEN', KEYS[1])}
`)

// scriptMSet: KEYS the keys; ARGV meta ("" in cluster mode), nx (1|0), pxat (0: none), values…
// Returns 1 if written, 0 if NX found a live key.
var scriptMSet = redis.NewScript(luaDropTags + `
if ARGV[2] == '1' then
  for i = 1, #KEYS do if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end end
end
for i = 1, #KEYS do
  if ARGV[3] ~= '0' then redis.call('SET', KEYS[i], ARGV[3+i], 'PXAT', ARGV[3])
  else redis.call('SET', KEYS[i], ARGV[3+i]) end
end
if ARGV[1] ~= '' then
  redis.call('SELECT', ARGV[1])
  for i = 1, #KEYS do droptags(KEYS[i]) end
end
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
    redis.call('SELECT', ARGV[1])
    if redis.call('SISMEMBER', 'k:' .. k, ARGV[i]) == 1 then
      droptags(k)
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
// drops members that no longer carry the tag, and the tag records of keys that no longer exist
// (deleted by a client writing to Redis directly), and returns how many members it dropped.
var scriptCleanTag = redis.NewScript(luaDropTags + `
local tag = string.sub(KEYS[1], 3)
local n = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('SELECT', ARGV[2])
  local exists = redis.call('EXISTS', k)
  redis.call('SELECT', ARGV[1])
  if exists == 0 then
    droptags(k)
    redis.call('SREM', KEYS[1], k)
    n = n + 1
  elseif redis.call('SISMEMBER', 'k:' .. k, tag) == 0 then
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
