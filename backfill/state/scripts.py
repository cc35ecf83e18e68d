"""The Lua scripts behind the Redis state store's atomic steps.

Each script gets the run's key prefix (`backfill:run:<id>`) and builds the per-run keys from
it, so one call can touch a task's children, whatever their number. That suits a single
Redis (Memorystore standard tier, a local redis-server); a Redis Cluster would need the
run's keys in one hash slot.
"""

# Refuse if any lock is held by another run (return its id), else take all of them.
ACQUIRE = """
for i = 1, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder and holder ~= ARGV[1] then return holder end
end
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end
return false
"""

# Release only the locks this run holds.
RELEASE = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 0
"""

# KEYS: guard; ARGV: now, stale_after ('' = never), ttl. Free, or stale and not done -> take it.
CLAIM = """
local v = redis.call('GET', KEYS[1])
if v and (v == 'done' or ARGV[2] == '' or tonumber(ARGV[1]) - tonumber(v) <= tonumber(ARGV[2])) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""

# ARGV: prefix, task, now, holder, lease ttl (ms), takeover ('1': the broker says the message's
# previous consumer is gone, e.g. RabbitMQ's redelivered flag; its lease may be taken over).
# One round trip before a task starts: it cannot race a cancel, a second delivery (the lease)
# or a retry that reset its upstream tasks (remaining > 0).
BEGIN = """
local P, tid = ARGV[1], ARGV[2]
if redis.call('EXISTS', P) == 0 then return {'unknown', 0} end
local run = redis.call('HMGET', P, 'status', 'pipeline', 'noop')
if run[1] == 'cancelled' then return {'cancelled', 0} end
local st = redis.call('HGET', P .. ':states', tid)
if not st then return {'unknown', 0} end
if st ~= 'pending' and st ~= 'running' then return {'finished', 0} end
local lease = P .. ':lease:' .. tid
if redis.call('EXISTS', lease) == 1 and ARGV[6] ~= '1' then return {'busy', 0} end
if tonumber(redis.call('HGET', P .. ':remaining', tid) or '0') > 0 then return {'early', 0} end
if run[1] == 'paused' then
  -- Nothing new starts while paused: back to the ready set, sent again when the run resumes.
  redis.call('HSET', P .. ':states', tid, 'pending')
  redis.call('ZREM', P .. ':inflight', tid)
  redis.call('ZADD', P .. ':ready', redis.call('HGET', P .. ':prio', tid) or 0, tid)
  return {'paused', 0}
end
local task = redis.call('HGET', P .. ':tasks', tid)
local n = redis.call('HINCRBY', P .. ':attempts', tid, 1)
redis.call('HSET', P .. ':states', tid, 'running')
redis.call('HSET', P .. ':started', tid, ARGV[3])
redis.call('SET', lease, ARGV[4] .. ':' .. n, 'PX', ARGV[5])
redis.call('ZREM', P .. ':ready', tid)
redis.call('ZADD', P .. ':inflight', ARGV[3], tid)
return {'run', n, task, run[2], run[3], lease}
"""

_PUMP_BODY = """
local function pump(P, window, now)
  local out = {}
  if redis.call('HGET', P, 'status') ~= 'running' then return out end
  local room = window - redis.call('ZCARD', P .. ':inflight')
  if room <= 0 then return out end
  local ids = redis.call('ZRANGE', P .. ':ready', 0, room - 1)
  for _, id in ipairs(ids) do
    redis.call('ZREM', P .. ':ready', id)
    redis.call('ZADD', P .. ':inflight', now, id)
    table.insert(out, id)
  end
  return out
end
"""

# ARGV: prefix, window, now. Returns the ids to send.
PUMP = _PUMP_BODY + """
return pump(ARGV[1], tonumber(ARGV[2]), ARGV[3])
"""

# ARGV: prefix, task, attempt ('' = the current one, a revoke), status, result json ('' = none),
#       parts json {processor@date: status}, now, window, blocks ('1' = block the dependents).
# Returns {outcome, open, unflushed, oldest unflushed score, ids to send...}.
FINISH = _PUMP_BODY + """
local P, tid, now = ARGV[1], ARGV[2], ARGV[7]
local states = P .. ':states'
local st = redis.call('HGET', states, tid)
if not st then return {'unknown', 0, 0, ''} end
if st ~= 'pending' and st ~= 'running' then return {'stale', 0, 0, ''} end
if ARGV[3] ~= '' and (st ~= 'running' or redis.call('HGET', P .. ':attempts', tid) ~= ARGV[3]) then
  return {'stale', 0, 0, ''}
end
if ARGV[5] ~= '' then redis.call('HSET', P .. ':results', tid, ARGV[5]) end
redis.call('HSET', states, tid, ARGV[4])
for k, v in pairs(cjson.decode(ARGV[6])) do redis.call('HSET', P .. ':parts', k, v) end
redis.call('ZREM', P .. ':inflight', tid)
redis.call('ZREM', P .. ':ready', tid)
redis.call('DEL', P .. ':lease:' .. tid)
redis.call('ZADD', P .. ':unflushed', now, tid)
local settled = 1
local kids = redis.call('HGET', P .. ':children', tid)
if kids then
  local stack = cjson.decode(kids)
  if ARGV[9] == '1' then
    while #stack > 0 do
      local c = table.remove(stack)
      if redis.call('HGET', states, c) == 'pending' then
        redis.call('HSET', states, c, 'blocked')
        redis.call('HSET', P .. ':blocked_by', c, tid)
        redis.call('ZREM', P .. ':ready', c)
        redis.call('ZREM', P .. ':inflight', c)
        redis.call('ZADD', P .. ':unflushed', now, c)
        local t = cjson.decode(redis.call('HGET', P .. ':tasks', c))
        for _, d in ipairs(t['dates']) do redis.call('HSET', P .. ':parts', t['processor'] .. '@' .. d, 'blocked') end
        settled = settled + 1
        local more = redis.call('HGET', P .. ':children', c)
        if more then for _, g in ipairs(cjson.decode(more)) do table.insert(stack, g) end end
      end
    end
  else
    for _, c in ipairs(stack) do
      local left = redis.call('HINCRBY', P .. ':remaining', c, -1)
      if left <= 0 and redis.call('HGET', states, c) == 'pending'
          and not redis.call('ZSCORE', P .. ':inflight', c) then
        redis.call('ZADD', P .. ':ready', redis.call('HGET', P .. ':prio', c) or 0, c)
      end
    end
  end
end
local open = redis.call('HINCRBY', P, 'open', -settled)
redis.call('HSET', P, 'progress_at', now)
local send = pump(P, tonumber(ARGV[8]), now)
local oldest = redis.call('ZRANGE', P .. ':unflushed', 0, 0, 'WITHSCORES')
local out = {'ok', open, redis.call('ZCARD', P .. ':unflushed'), oldest[2] or ''}
for _, id in ipairs(send) do table.insert(out, id) end
return out
"""

# ARGV: prefix, task, attempt, due. A transient failure: pending again, due at `due`.
RELEASE_FOR_RETRY = """
local P, tid = ARGV[1], ARGV[2]
if redis.call('HGET', P .. ':states', tid) ~= 'running' then return 0 end
if redis.call('HGET', P .. ':attempts', tid) ~= ARGV[3] then return 0 end
redis.call('HSET', P .. ':states', tid, 'pending')
redis.call('DEL', P .. ':lease:' .. tid)
redis.call('ZADD', P .. ':inflight', ARGV[4], tid)
return 1
"""

# ARGV: prefix, now. Running tasks without a lease (their worker died) -> pending, to re-send.
REAP = """
local P = ARGV[1]
local out = {}
for _, tid in ipairs(redis.call('ZRANGE', P .. ':inflight', 0, -1)) do
  if redis.call('HGET', P .. ':states', tid) == 'running' and redis.call('EXISTS', P .. ':lease:' .. tid) == 0 then
    redis.call('HSET', P .. ':states', tid, 'pending')
    redis.call('ZADD', P .. ':inflight', ARGV[2], tid)
    table.insert(out, tid)
  end
end
if #out > 0 then redis.call('HINCRBY', P, 'resent', #out) end
return out
"""

# ARGV: prefix. How many in-flight tasks run under a live lease.
LIVE_LEASES = """
local P = ARGV[1]
local n = 0
for _, tid in ipairs(redis.call('ZRANGE', P .. ':inflight', 0, -1)) do
  n = n + redis.call('EXISTS', P .. ':lease:' .. tid)
end
return n
"""

# KEYS: lease keys; ARGV: values (ours), ttl ms. Extend only leases still ours.
RENEW = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    redis.call('PEXPIRE', KEYS[i], ARGV[#ARGV])
    n = n + 1
  end
end
return n
"""

# KEYS: unflushed zset; ARGV: id, score, id, score ... Remove only entries not settled again since.
DROP_UNFLUSHED = """
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return 0
"""

# KEYS: the season's list of unsettled tasks (in dispatch-like order), the run's task-state hash.
# Pop settled tasks off the head; 1 when none is left (every task of the season settled), else 0.
# O(1) amortised per settled task, not a scan of the run.
SEASON_SETTLED = """
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then return 1 end
  local st = redis.call('HGET', KEYS[2], head)
  if st == 'pending' or st == 'running' then return 0 end
  redis.call('LPOP', KEYS[1])
end
"""

# KEYS: built flag, then pairs (temporary list, list); ARGV: ttl. The first builder of a
# sequence wins; its lists appear at once, so no checker ever sees a half-built list.
INSTALL_SEASONS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  for i = 2, #KEYS, 2 do redis.call('DEL', KEYS[i]) end
  return 0
end
for i = 2, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[i + 1])
    redis.call('EXPIRE', KEYS[i + 1], ARGV[1])
  end
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""

# ARGV: prefix, kind, by, reason, at. running -> paused; a paused run takes a stronger kind
# (manual > gate > window). Returns 1 if the run is now paused under this kind.
PAUSE = """
local P = ARGV[1]
local st = redis.call('HGET', P, 'status')
local rank = {window = 1, gate = 2, manual = 3}
if st == 'paused' then
  local cur = redis.call('HGET', P, 'pause_kind') or 'window'
  if (rank[ARGV[2]] or 0) <= (rank[cur] or 0) then return 0 end
elseif st ~= 'running' then
  return 0
end
redis.call('HSET', P, 'status', 'paused', 'pause_kind', ARGV[2], 'paused_by', ARGV[3], 'pause_reason', ARGV[4],
           'paused_at', ARGV[5])
return 1
"""

# ARGV: prefix, kinds... paused with one of the kinds -> running. Returns 1 if it was.
UNPAUSE = """
local P = ARGV[1]
if redis.call('HGET', P, 'status') ~= 'paused' then return 0 end
local cur = redis.call('HGET', P, 'pause_kind') or ''
for i = 2, #ARGV do
  if ARGV[i] == cur then
    redis.call('HSET', P, 'status', 'running', 'progress_at', redis.call('TIME')[1])
    redis.call('HDEL', P, 'paused_at', 'paused_by', 'pause_kind', 'pause_reason')
    return 1
  end
end
return 0
"""
