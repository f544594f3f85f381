"""The Lua scripts behind ``RedisTokenLimiter`` (gateway_sync/worker/token_limits.py).

Counters are plain integers, one key per budget window *index*:
``gateway:tl:{scope}:<unit>:<window_s>:<index>`` (``index = floor(now / window)``), expiring
a second after their window ends. The clock is Redis's ``TIME``, never the caller's.

RESERVE_SCRIPT checks every budget and, only if all of them have room, adds the reserved
amount to each (one atomic call, so concurrent reservations from any number of workers
are serialised and admission never overshoots).

KEYS[i]  per budget, the window's key *without* ``:<index>`` (the script appends the index
         it reads from Redis's clock). Every key of a call carries the scope's hash tag,
         so on Redis Cluster the keys it builds live on the slot of the declared ones.
ARGV[3*(i-1) + 1..3]  per budget: window in ms, limit, amount (>= 0) to reserve.

Returns ``{allowed, now_ms, used_1, reset_ms_1, retry_ms_1, used_2, ...}``: ``used`` is the
window's total (this reservation included when admitted), ``reset_ms`` the time until the
window restarts, ``retry_ms`` -1 when the budget has room, -2 when it never will (the
amount exceeds the limit, or the limit is 0), else the time until the window restarts.
A budget has room when it is not spent (``used < limit``) and the amount fits
(``used + amount <= limit``): a spent budget refuses even a request reserving 0 of it.

SETTLE_SCRIPT adds a (possibly negative) difference to the windows of one reservation,
each only if it is still the current window: a window that has restarted since the
reservation starts from zero and is not charged for it. A counter that reaches 0 is
deleted. KEYS: the reservation's full keys (with their index); ARGV per key: window in
ms, the window index, the difference.
"""

from __future__ import annotations

RESERVE_SCRIPT = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local keys, used, resets, retries = {}, {}, {}, {}
local allowed = 1

for i = 1, n do
  local base = 3 * (i - 1)
  local window = tonumber(ARGV[base + 1])
  local limit = tonumber(ARGV[base + 2])
  local amount = tonumber(ARGV[base + 3])
  local index = math.floor(now / window)
  keys[i] = KEYS[i] .. ':' .. string.format('%d', index)
  local u = tonumber(redis.call('GET', keys[i]) or '0')
  local reset = (index + 1) * window - now
  local retry = -1
  if u >= limit or u + amount > limit then
    if amount > limit or limit == 0 then retry = -2 else retry = reset end
    allowed = 0
  end
  used[i], resets[i], retries[i] = u, reset, retry
end

if allowed == 1 then
  for i = 1, n do
    local base = 3 * (i - 1)
    local window = tonumber(ARGV[base + 1])
    local amount = tonumber(ARGV[base + 3])
    if amount > 0 then
      used[i] = redis.call('INCRBY', keys[i], amount)
      redis.call('PEXPIREAT', keys[i], (math.floor(now / window) + 1) * window + 1000)
    end
  end
end

local out = {allowed, now}
for i = 1, n do
  out[#out + 1] = used[i]
  out[#out + 1] = resets[i]
  out[#out + 1] = retries[i]
end
return out
"""

SETTLE_SCRIPT = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  local base = 3 * (i - 1)
  local window = tonumber(ARGV[base + 1])
  local index = tonumber(ARGV[base + 2])
  local delta = tonumber(ARGV[base + 3])
  if delta ~= 0 and math.floor(now / window) == index then
    local left = redis.call('INCRBY', KEYS[i], delta)
    if left <= 0 then
      redis.call('DEL', KEYS[i])
    else
      redis.call('PEXPIREAT', KEYS[i], (index + 1) * window + 1000)
    end
  end
end
return 1
"""
