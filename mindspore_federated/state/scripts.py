"""Lua scripts that make each multi-step cluster update atomic (one Redis round trip each).

Common return codes: -1 status hash missing (Redis lost its data), -2 iteration changed,
-3 instance not running (value = runningState). Positive codes are round-specific rejections.
"""

_GUARD_ITERATION = """
local cur = redis.call('HGET', KEYS[1], 'iterationNum')
if not cur then return {-1} end
if tonumber(cur) ~= tonumber(ARGV[1]) then return {-2, cur} end
local st = redis.call('HGET', KEYS[1], 'runningState')
if st ~= '0' then return {-3, st} end
"""

_SUM_HASH = """
local function sum_hash(key)
  local total = 0
  for _, v in ipairs(redis.call('HVALS', key)) do total = total + tonumber(v) end
  return total
end
"""

# KEYS: status, count, device_metas, timer
# ARGV: iteration, threshold, fl_id, meta_json, now_ms, ttl_s, local_error
START_FL_JOB = _GUARD_ITERATION + """
local c = tonumber(redis.call('HGET', KEYS[2], 'startFLJob') or '0')
if c >= tonumber(ARGV[2]) then return {1, c} end
if ARGV[7] ~= '0' then return {3, c} end
if redis.call('HSETNX', KEYS[3], ARGV[3], ARGV[4]) == 0 then return {2, c} end
c = redis.call('HINCRBY', KEYS[2], 'startFLJob', 1)
if c == 1 then
  redis.call('HSETNX', KEYS[4], 'startFLJob', ARGV[5])
  redis.call('HSETNX', KEYS[4], 'global', ARGV[5])
  for i = 2, 4 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
end
return {0, c, redis.call('HGET', KEYS[4], 'startFLJob') or ARGV[5]}
"""

# KEYS: status, update_count (per server), device_metas, update_set, timer, aggregation_count (per server),
#       getSecrets data hash
# ARGV: iteration, threshold, fl_id, node_id, req_iteration, local_error, now_ms, ttl_s, count_now, need_secrets
# need_secrets '1' (PW_ENCRYPT): code 6 when the device did not getSecrets this iteration.
# count_now '1': the caller accumulates the update before its event loop can run anything else, so the
# aggregation count is taken here too (one round trip); the 4th value returned is then the new total.
# Code 5 (this fl_id's update was already accepted this iteration) comes before the threshold: a device
# whose reply was lost and who sends its update again is told it was accepted, even after the last one.
UPDATE_MODEL = _GUARD_ITERATION + _SUM_HASH + """
if redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 1 then return {5} end
local total = sum_hash(KEYS[2])
if total >= tonumber(ARGV[2]) then return {1} end
local meta = redis.call('HGET', KEYS[3], ARGV[3])
if not meta then return {2} end
if tonumber(ARGV[5]) ~= tonumber(ARGV[1]) then return {3} end
if ARGV[6] ~= '0' then return {4} end
if ARGV[10] == '1' and redis.call('HEXISTS', KEYS[7], ARGV[3]) == 0 then return {6} end
if redis.call('SADD', KEYS[4], ARGV[3]) == 0 then return {5} end
redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
total = total + 1
if total == 1 then
  redis.call('HSETNX', KEYS[5], 'updateModel', ARGV[7])
  redis.call('EXPIRE', KEYS[2], ARGV[8])
  redis.call('EXPIRE', KEYS[4], ARGV[8])
  redis.call('EXPIRE', KEYS[5], ARGV[8])
end
if ARGV[9] == '1' then
  if redis.call('HINCRBY', KEYS[6], ARGV[4], 1) == 1 then redis.call('EXPIRE', KEYS[6], ARGV[8]) end
  return {0, meta, total, sum_hash(KEYS[6])}
end
return {0, meta, total, -1}
"""

# KEYS: status, aggregation_count (per server)
# ARGV: iteration, node_id, ttl_s
COUNT_FOR_AGGREGATION = """
local cur = redis.call('HGET', KEYS[1], 'iterationNum')
if not cur then return {-1} end
if tonumber(cur) ~= tonumber(ARGV[1]) then return {-2, cur} end
if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
""" + _SUM_HASH + """
return {0, sum_hash(KEYS[2])}
"""

# KEYS: status, guard_key, keys to expire...
# ARGV: iteration, success ('1'/'0'), reason, fl_iteration_num, old_ttl_s, channel, instance,
#       guard ('none' | 'field:<name>' | 'sum'), guard_threshold
FINISH_ITERATION = _SUM_HASH + """
local cur = redis.call('HGET', KEYS[1], 'iterationNum')
if (not cur) or tonumber(cur) ~= tonumber(ARGV[1]) then return 0 end
local guard = ARGV[8]
if guard == 'sum' then
  if sum_hash(KEYS[2]) >= tonumber(ARGV[9]) then return 0 end
elseif string.sub(guard, 1, 6) == 'field:' then
  local v = tonumber(redis.call('HGET', KEYS[2], string.sub(guard, 7)) or '0')
  if v >= tonumber(ARGV[9]) then return 0 end
end
local nxt = tonumber(cur) + 1
redis.call('HSET', KEYS[1], 'iterationNum', nxt, 'lastIterationSuccess', ARGV[2], 'lastIterationResult', ARGV[3])
if nxt > tonumber(ARGV[4]) and redis.call('HGET', KEYS[1], 'runningState') == '0' then
  redis.call('HSET', KEYS[1], 'runningState', '2')
end
for i = 3, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
redis.call('PUBLISH', ARGV[6], cjson.encode({event = 'iteration', instance = ARGV[7], iteration = nxt}))
return 1
"""

# KEYS: status
# ARGV: iteration (the one to start at), running_state
CREATE_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'iterationNum', ARGV[1], 'lastIterationSuccess', '1', 'lastIterationResult', '',
           'runningState', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: status
# ARGV: from_state, to_state
# Sets runningState to ARGV[2] only if it currently is ARGV[1]; returns the previous value (nil if absent).
SWITCH_RUNNING_STATE = """
local cur = redis.call('HGET', KEYS[1], 'runningState')
if cur == ARGV[1] then redis.call('HSET', KEYS[1], 'runningState', ARGV[2]) end
return cur
"""

# KEYS: scaling
# ARGV: ttl_s, field, value, ...
# Creates the scaling hash unless a scale request is pending; 1 when created.
CREATE_SCALING = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

_IS_MEMBER = """
local function is_member(key, kind, id)
  if kind == 's' then return redis.call('SISMEMBER', key, id) == 1 end
  return redis.call('HEXISTS', key, id) == 1
end
local function count_round(count_key, timer_key, name, now, ttl)
  local c = redis.call('HINCRBY', count_key, name, 1)
  if c == 1 then
    redis.call('HSETNX', timer_key, name, now)
    redis.call('EXPIRE', count_key, ttl)
    redis.call('EXPIRE', timer_key, ttl)
  end
  return c
end
"""

# KEYS: status, count, data, need, items, timer
# ARGV: iteration, name, threshold, fl_id, value, need_kind ('h'|'s'), ttl_s, now_ms, n_items, field1, item1, ...
# 3 duplicate (before the threshold, so a device whose reply was lost is told it was taken), 1 threshold
# reached, 2 the device lacks the round it needs; 0 stored and counted: {0, count}.
CIPHER_SUBMIT = _GUARD_ITERATION + _IS_MEMBER + """
if redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then return {3} end
local c = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if c >= tonumber(ARGV[3]) then return {1, c} end
if not is_member(KEYS[4], ARGV[6], ARGV[4]) then return {2, c} end
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[7])
local n = tonumber(ARGV[9])
for i = 10, 9 + 2 * n, 2 do redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1]) end
if n > 0 then redis.call('EXPIRE', KEYS[5], ARGV[7]) end
return {0, count_round(KEYS[2], KEYS[6], ARGV[2], ARGV[8], ARGV[7])}
"""

# KEYS: status, count, data, need, ready, timer
# ARGV: iteration, name, fl_id, need_kind, ready_field ('' = the sum of the per-server hash `ready`),
#       ready_threshold, ttl_s, now_ms
# 4 not ready, 2 the device lacks the round it needs; 0 recorded (counted once per device): {0, count}.
CIPHER_JOIN = _GUARD_ITERATION + _SUM_HASH + _IS_MEMBER + """
local ready
if ARGV[5] == '' then ready = sum_hash(KEYS[5]) else ready = tonumber(redis.call('HGET', KEYS[5], ARGV[5]) or '0') end
if ready < tonumber(ARGV[6]) then return {4} end
if not is_member(KEYS[4], ARGV[4], ARGV[3]) then return {2} end
local c
if redis.call('HSETNX', KEYS[3], ARGV[3], '') == 1 then
  redis.call('EXPIRE', KEYS[3], ARGV[7])
  c = count_round(KEYS[2], KEYS[6], ARGV[2], ARGV[8], ARGV[7])
else
  c = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
end
return {0, c}
"""
