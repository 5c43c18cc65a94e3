package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts of Redis Cluster mode (see cluster.go for the layout and the protocol). Each
// declares its keys, all in one slot, except the two per-master scripts (count and sweep), which
// carry the allow-cross-slot-keys flag and touch only slots of the master they run on.
//
// Records are MessagePack arrays (cmsgpack, binary-safe):
//
//	tag record   r[key]   {nonce, sha1 of the value, tag, tag…}
//	pending      p[key]   {nonce, started ms, nonce, started ms…}   tagged writes in flight
//	lease        l[key]   {token, kind ("missing"|"refresh"), sha1 or "", expires ms}
//	tag hash     key → nonce of the write that added it
//
// Every script that may create or empty one of a slot's bookkeeping keys keeps the slot's index
// (the set "i": "r", "p", "l", "t:<tag>" for those that exist) in step, in the same script.

// luaClusterLib defines nowms, the Redis server's clock in milliseconds; index, which makes the
// index set i name member exactly while key exists; and takepending, which removes nonce from
// key's pending writes in hash p and says whether it was there (a tagged write whose pending
// entry is gone was given up by the sweep and must start over).
const luaClusterLib = `
local function index(i, key, member)
  if redis.call('EXISTS', key) == 1 then redis.call('SADD', i, member) else redis.call('SREM', i, member) end
end
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function takepending(p, k, nonce)
  local cur = redis.call('HGET', p, k)
  if not cur then return false end
  local list, keep, found = cmsgpack.unpack(cur), {}, false
  for i = 1, #list, 2 do
    if list[i] == nonce then found = true
    else keep[#keep+1] = list[i]; keep[#keep+1] = list[i+1] end
  end
  if not found then return false end
  if #keep == 0 then redis.call('HDEL', p, k) else redis.call('HSET', p, k, cmsgpack.pack(keep)) end
  return true
end
`

// clusterBegin (step 0 of a tagged write): KEYS the pending hash and the index of the key's
// slot; ARGV key, nonce. Records the write as in flight, at Redis's time.
var clusterBegin = redis.NewScript(luaClusterLib + `
local list = {}
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then list = cmsgpack.unpack(cur) end
list[#list+1] = ARGV[2]
list[#list+1] = nowms()
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(list))
redis.call('SADD', KEYS[2], 'p')
return 1
`)

// clusterTagAdd (step 1): KEYS[1] the index of one slot, KEYS[2…] tag hashes in that slot;
// ARGV key, nonce, then the tags in the order of KEYS[2…].
var clusterTagAdd = redis.NewScript(`
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], ARGV[1], ARGV[2])
  redis.call('SADD', KEYS[1], 't:' .. ARGV[i+1])
end
return 1
`)

// clusterSet (step 2, SET … TAGS): KEYS key, tag records, pending, index; ARGV value, cond
// (NX|XX|""), get (1|0), ttl (PXAT|KEEPTTL|""), pxat, nonce, tags… Returns {-1} when the write
// is no longer pending (start over), else {done (1|0), old value or nil}.
var clusterSet = redis.NewScript(luaClusterLib + `
if not takepending(KEYS[3], KEYS[1], ARGV[6]) then return {-1} end
local args = {KEYS[1], ARGV[1]}
if ARGV[2] ~= '' then args[#args+1] = ARGV[2] end
if ARGV[3] == '1' then args[#args+1] = 'GET' end
if ARGV[4] == 'PXAT' then args[#args+1] = 'PXAT'; args[#args+1] = ARGV[5]
elseif ARGV[4] == 'KEEPTTL' then args[#args+1] = 'KEEPTTL' end
local r = redis.call('SET', unpack(args))
local done
if ARGV[3] == '1' then
  if ARGV[2] == 'NX' then done = (r == false) elseif ARGV[2] == 'XX' then done = (r ~= false) else done = true end
else
  done = (r ~= false)
end
if done then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    local rec = {ARGV[6], redis.sha1hex(ARGV[1])}
    for i = 7, #ARGV do rec[#rec+1] = ARGV[i] end
    redis.call('HSET', KEYS[2], KEYS[1], cmsgpack.pack(rec))
  else
    redis.call('HDEL', KEYS[2], KEYS[1])
  end
end
index(KEYS[4], KEYS[2], 'r')
index(KEYS[4], KEYS[3], 'p')
if not done then return {0, r} end
return {1, r}
`)

// clusterCheck decides about one entry of a tag hash: KEYS key, tag records, pending, index;
// ARGV tag,
// mode ("del" for TAGINVALIDATE, "clean" for the sweep). A key carries the tag when its record
// lists the tag and its value still has the record's fingerprint (a stale record is dropped on
// the way). In mode "del" a key that carries the tag is deleted. The entry must stay while the
// key still carries the tag or has a tagged write in flight (that write may not have added its
// own entry yet). Returns 1 if the key was deleted, plus 2 if the entry must stay.
var clusterCheck = redis.NewScript(luaClusterLib + `
local k = KEYS[1]
local live = false
local rec = redis.call('HGET', KEYS[2], k)
if rec then
  local d = cmsgpack.unpack(rec)
  local ok, v = pcall(redis.call, 'GET', k)
  if ok and v and redis.sha1hex(v) == d[2] then
    for i = 3, #d do if d[i] == ARGV[1] then live = true; break end end
  else
    redis.call('HDEL', KEYS[2], k)
  end
end
local deleted = 0
if live and ARGV[2] == 'del' then
  redis.call('DEL', k)
  redis.call('HDEL', KEYS[2], k)
  live, deleted = false, 1
end
index(KEYS[4], KEYS[2], 'r')
if live or redis.call('HEXISTS', KEYS[3], k) == 1 then return deleted + 2 end
return deleted
`)

// clusterTagRemove: KEYS a tag hash, its slot's index; ARGV tag, then key, nonce pairs.
// Removes each entry that still holds that nonce (one re-added since was not seen by the check
// and stays), drops the tag from the index once its hash is empty, and returns how many
// entries it removed.
var clusterTagRemove = redis.NewScript(`
local n = 0
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i+1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], 't:' .. ARGV[1]) end
return n
`)

// clusterDel: KEYS key, tag records, index; ARGV getdel (1|0). Returns DEL's or GETDEL's reply.
var clusterDel = redis.NewScript(luaClusterLib + `
local r
if ARGV[1] == '1' then r = redis.call('GETDEL', KEYS[1]) else r = redis.call('DEL', KEYS[1]) end
if r ~= false and r ~= 0 and redis.call('HDEL', KEYS[2], KEYS[1]) == 1 then index(KEYS[3], KEYS[2], 'r') end
return r
`)

// clusterUpdate: KEYS key, tag records, index; ARGV command (INCRBY|INCRBYFLOAT|APPEND|SETRANGE|
// SETBIT|BITFIELD), argument, pxat ("0": none), then the command's further arguments
// (luaRunUpdate). Runs the command, gives a key it creates the expiry, and moves a tagged key's
// fingerprint to its new value (only if the key still carried its tags).
var clusterUpdate = redis.NewScript(luaClusterLib + luaRunUpdate + `
local rec = redis.call('HGET', KEYS[2], KEYS[1])
local oldfp
if rec then
  local ok, v = pcall(redis.call, 'GET', KEYS[1])
  if ok and v then oldfp = redis.sha1hex(v) end
end
local existed = redis.call('EXISTS', KEYS[1])
local r = runupdate(KEYS[1], ARGV[1], ARGV[2], 4)
-- Lua numbers are doubles: return INCRBY's result as the exact text Redis stored.
if ARGV[1] == 'INCRBY' then r = redis.call('GET', KEYS[1]) end
if existed == 0 and ARGV[3] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
if rec then
  local d = cmsgpack.unpack(rec)
  if oldfp and d[2] == oldfp then
    d[2] = redis.sha1hex(redis.call('GET', KEYS[1]))
    redis.call('HSET', KEYS[2], KEYS[1], cmsgpack.pack(d))
  else
    redis.call('HDEL', KEYS[2], KEYS[1])
    index(KEYS[3], KEYS[2], 'r')
  end
end
return r
`)

// clusterCount runs on one master: ARGV the index keys of its slots. Returns DBSIZE minus the
// bookkeeping keys of those slots: those each index names, and the index itself.
var clusterCount = redis.NewScript(`#!lua flags=no-writes,allow-cross-slot-keys
local n = redis.call('DBSIZE')
for i = 1, #ARGV do
  local c = redis.call('SCARD', ARGV[i])
  if c > 0 then n = n - c - 1 end
end
return n
`)

// clusterSlotSweep runs on one master: ARGV grace ms, then the slot tags of some of its slots.
// Drops leases that ran out, and pending tagged writes older than the grace (their writer is
// gone, or so slow that it must start over), repairs indexes that name a key that does not
// exist, and returns the slot tag and tag of every tag hash in those slots, flattened.
var clusterSlotSweep = redis.NewScript(`#!lua flags=allow-cross-slot-keys
` + luaClusterLib + `
local now = nowms()
local oldest = now - tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  local b = '__vela:{' .. ARGV[i] .. '}:'
  local lh, ph, ix = b .. 'l', b .. 'p', b .. 'i'
  if redis.call('EXISTS', lh) == 1 then
    local all = redis.call('HGETALL', lh)
    for j = 1, #all, 2 do
      if cmsgpack.unpack(all[j+1])[4] <= now then redis.call('HDEL', lh, all[j]) end
    end
  end
  if redis.call('EXISTS', ph) == 1 then
    local all = redis.call('HGETALL', ph)
    for j = 1, #all, 2 do
      local list, keep = cmsgpack.unpack(all[j+1]), {}
      for x = 1, #list, 2 do
        if list[x+1] > oldest then keep[#keep+1] = list[x]; keep[#keep+1] = list[x+1] end
      end
      if #keep == 0 then redis.call('HDEL', ph, all[j])
      elseif #keep < #list then redis.call('HSET', ph, all[j], cmsgpack.pack(keep)) end
    end
  end
  for _, m in ipairs(redis.call('SMEMBERS', ix)) do
    if redis.call('EXISTS', b .. m) == 0 then
      redis.call('SREM', ix, m)
    elseif string.sub(m, 1, 2) == 't:' then
      out[#out+1] = ARGV[i]
      out[#out+1] = string.sub(m, 3)
    end
  end
end
return out
`)

// clusterLock (FETCHLOCK): KEYS key, leases, index; ARGV token, lease ms, refresh ms, channel. Returns
// {"HIT", value}, {"REFRESH", value}, {"LOCKED"} or {"WAIT", ms left on the lease}.
var clusterLock = redis.NewScript(luaClusterLib + luaLeaseEvents + `
local key, lh = KEYS[1], KEYS[2]
local now = nowms()
local d
local rec = redis.call('HGET', lh, key)
if rec then
  d = cmsgpack.unpack(rec)
  if d[4] <= now then redis.call('HDEL', lh, key); index(KEYS[3], lh, 'l'); d = nil end
end
local v = redis.call('GET', key)
if v then
  local pttl = redis.call('PTTL', key)
  if d and (d[2] == 'missing' or (d[2] == 'refresh' and d[3] ~= redis.sha1hex(v))) then
    -- the key was written since this lease was granted: the write ended it
    redis.call('HDEL', lh, key)
    index(KEYS[3], lh, 'l')
    ended(ARGV[4], d[1], key)
    d = nil
  end
  local refresh = tonumber(ARGV[3])
  if refresh > 0 and pttl >= 0 and pttl <= refresh and not d then
    redis.call('HSET', lh, key, cmsgpack.pack({ARGV[1], 'refresh', redis.sha1hex(v), now + tonumber(ARGV[2])}))
    redis.call('SADD', KEYS[3], 'l')
    granted(ARGV[4], ARGV[1], ARGV[2], key)
    return {'REFRESH', v}
  end
  return {'HIT', v}
end
if not d then
  redis.call('HSET', lh, key, cmsgpack.pack({ARGV[1], 'missing', '', now + tonumber(ARGV[2])}))
  redis.call('SADD', KEYS[3], 'l')
  granted(ARGV[4], ARGV[1], ARGV[2], key)
  return {'LOCKED'}
end
return {'WAIT', d[4] - now}
`)

// clusterFill (FETCHFILL): KEYS key, leases, tag records, pending, index; ARGV token, value, pxat ("0":
// none), channel, nonce ("" without tags), tags… Returns "OK", "NOTHELD", "CHANGED" or "RETRY"
// (the tagged write is no longer pending: start it over; the lease is untouched).
var clusterFill = redis.NewScript(luaClusterLib + luaLeaseEvents + `
local key, lh = KEYS[1], KEYS[2]
local rec = redis.call('HGET', lh, key)
if not rec then return 'NOTHELD' end
local d = cmsgpack.unpack(rec)
if d[1] ~= ARGV[1] or d[4] <= nowms() then return 'NOTHELD' end
if ARGV[5] ~= '' and not takepending(KEYS[4], key, ARGV[5]) then return 'RETRY' end
redis.call('HDEL', lh, key)
ended(ARGV[4], ARGV[1], key)
local cur = redis.call('GET', key)
local res = 'OK'
if d[2] == 'missing' then
  if cur then res = 'CHANGED' end
elseif not cur or redis.sha1hex(cur) ~= d[3] then
  res = 'CHANGED'
end
if res == 'OK' then
  if ARGV[3] ~= '0' then redis.call('SET', key, ARGV[2], 'PXAT', ARGV[3])
  else redis.call('SET', key, ARGV[2]) end
  if ARGV[5] ~= '' and redis.call('EXISTS', key) == 1 then
    local r = {ARGV[5], redis.sha1hex(ARGV[2])}
    for i = 6, #ARGV do r[#r+1] = ARGV[i] end
    redis.call('HSET', KEYS[3], key, cmsgpack.pack(r))
  else
    redis.call('HDEL', KEYS[3], key)
  end
end
index(KEYS[5], lh, 'l')
index(KEYS[5], KEYS[3], 'r')
index(KEYS[5], KEYS[4], 'p')
return res
`)

// clusterRelease (FETCHRELEASE): KEYS leases, index; ARGV key, token, channel. Returns 1 if the
// token held a lease that had not run out.
var clusterRelease = redis.NewScript(luaClusterLib + luaLeaseEvents + `
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
local d = cmsgpack.unpack(rec)
if d[1] ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
index(KEYS[2], KEYS[1], 'l')
if d[4] <= nowms() then return 0 end
ended(ARGV[3], ARGV[2], ARGV[1])
return 1
`)
