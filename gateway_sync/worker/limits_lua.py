"""The Lua script behind ``RedisLimiter`` (gateway_sync/worker/limits.py).

One call checks every window of one scope and, only if all of them have room, consumes
``cost`` in all of them: Redis runs a script atomically, so concurrent checks from any
number of workers are serialised and the quota is exact.

KEYS[i]  one key per window, ``gateway:rl:{scope}:<name>:<window_s>`` (same hash slot).
ARGV[1]  cost (a positive integer)
ARGV[2]  a token unique to this call: log members are ``<token>:<n>``, so equal
         timestamps never collapse into one member.
ARGV[3 + 3*(i-1) ..]  per window: window in ms, max requests, mode (0 = sliding log in a
         ZSET, 1 = fixed window in a HASH {w = window index, n = count}).

The clock is Redis's ``TIME``, never the caller's, so workers on machines whose clocks
disagree still share one timeline.

Returns ``{allowed, remaining_1, reset_ms_1, retry_ms_1, remaining_2, ..., now_ms}`` where
``remaining`` is after this call, ``reset_ms`` is when the window next frees a unit (log) or
restarts (fixed), and ``retry_ms`` is -1 when the window has room, -2 when ``cost`` exceeds
its limit (never admissible), else how long until ``cost`` units fit.
"""

from __future__ import annotations

LIMIT_SCRIPT = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local token = ARGV[2]
local n = #KEYS
local counts, resets, retries = {}, {}, {}
local allowed = 1

for i = 1, n do
  local key = KEYS[i]
  local base = 3 + 3 * (i - 1)
  local window = tonumber(ARGV[base])
  local max = tonumber(ARGV[base + 1])
  local mode = tonumber(ARGV[base + 2])
  local count, reset, retry = 0, 0, -1
  if mode == 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    count = redis.call('ZCARD', key)
    if count > 0 then
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      reset = tonumber(oldest[2]) + window - now
    end
    if count + cost > max then
      if cost > max then
        retry = -2
      else
        -- after the (count + cost - max) oldest entries expire, cost units fit
        local idx = count + cost - max - 1
        local entry = redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')
        retry = tonumber(entry[2]) + window - now
        if retry < 1 then retry = 1 end
      end
    end
  else
    local index = math.floor(now / window)
    local stored = redis.call('HMGET', key, 'w', 'n')
    if stored[1] and tonumber(stored[1]) == index then
      count = tonumber(stored[2])
    end
    reset = (index + 1) * window - now
    if count + cost > max then
      if cost > max then retry = -2 else retry = reset end
    end
  end
  if retry ~= -1 then allowed = 0 end
  counts[i], resets[i], retries[i] = count, reset, retry
end

if allowed == 1 then
  for i = 1, n do
    local key = KEYS[i]
    local base = 3 + 3 * (i - 1)
    local window = tonumber(ARGV[base])
    local mode = tonumber(ARGV[base + 2])
    if mode == 0 then
      local done = 0
      while done < cost do
        local args = {}
        local chunk = math.min(cost - done, 500)
        for j = 1, chunk do
          args[#args + 1] = now
          args[#args + 1] = token .. ':' .. (done + j)
        end
        redis.call('ZADD', key, unpack(args))
        done = done + chunk
      end
      redis.call('PEXPIRE', key, window + 1000)
      if counts[i] == 0 then resets[i] = window end
    else
      local index = math.floor(now / window)
      redis.call('HSET', key, 'w', index, 'n', counts[i] + cost)
      redis.call('PEXPIREAT', key, (index + 1) * window + 1000)
    end
    counts[i] = counts[i] + cost
  end
end

local out = {allowed}
for i = 1, n do
  local base = 3 + 3 * (i - 1)
  local max = tonumber(ARGV[base + 1])
  local remaining = max - counts[i]
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = resets[i]
  out[#out + 1] = retries[i]
end
out[#out + 1] = now
return out
"""

# Gives back what one admitted LIMIT_SCRIPT call consumed, when a later check of the same
# request refused it (a request refused anywhere must not spend quota anywhere).
# KEYS as for LIMIT_SCRIPT; ARGV[1] cost, ARGV[2] the call's token, ARGV[3] the call's
# time in ms (from its reply); then per window: window in ms, mode. A fixed window is
# given back only if it has not restarted since.
REFUND_SCRIPT = r"""
local cost = tonumber(ARGV[1])
local token = ARGV[2]
local at = tonumber(ARGV[3])
for i = 1, #KEYS do
  local key = KEYS[i]
  local window = tonumber(ARGV[4 + 2 * (i - 1)])
  local mode = tonumber(ARGV[5 + 2 * (i - 1)])
  if mode == 0 then
    for j = 1, cost do
      redis.call('ZREM', key, token .. ':' .. j)
    end
  else
    local stored = redis.call('HMGET', key, 'w', 'n')
    if stored[1] and tonumber(stored[1]) == math.floor(at / window) then
      local left = tonumber(stored[2]) - cost
      if left < 0 then left = 0 end
      redis.call('HSET', key, 'n', left)
    end
  end
end
return 1
"""
