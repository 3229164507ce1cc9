--[[
open.lua -- the opening shuffle of an event's pre-queue, with a permutation
the adapter drew. Twin of br_queue_open_if_due (core/queue.c).

Lua in Redis has no 64-bit integers, so xoshiro256** is not run here: the
adapter draws the core's Fisher-Yates permutation of the n pre-queue slots
with core/rng.c (stream SHUFFLE ^ event id of the configured seed) when a
join, leave or admit answered BR_REDIS_NEED_OPEN, runs this script, then
runs that command again. perm[k] is the slot whose occupant ends at slot k.

KEYS[1]  br:{e<event>}:
ARGV     now_ms, n (pre-queue slots), perm (n little-endian uint32, 4n bytes)
Reply    the outcome (lib.lua): count = members moved. err =
         BR_REDIS_NEED_OPEN (aux = the current n) when the pre-queue grew in
         between: draw again. BR_OK with count 0 when already shuffled.
]]
local n = arg_int(2, 2, 2 ^ 31)
local perm = ARGV[3]
if perm == nil or #perm ~= 4 * n then
    fail('perm of ' .. tostring(perm and #perm) .. ' bytes for n = ' .. n)
end
ev_load('id', 'opens', 'shuf', 'qpre')
if EV.id == nil then
    fail('open of a missing event')
end
if EV.shuf == 1 then
    return reply(BR_OK)
end
if NOW < EV.opens then
    fail('open before the opening')
end
if EV.qpre ~= n then
    OUT[10] = EV.qpre
    return reply(BR_REDIS_NEED_OPEN)
end
-- Before the shuffle everyone in the queue is in the pre-queue: slots < n.
local at = {}
local cur = redis.call('ZRANGE', P .. 'q', 0, -1, 'WITHSCORES')
for i = 1, #cur, 2 do
    local slot = tonumber(cur[i + 1])
    if slot >= n then
        broken('open: slot ' .. slot .. ' beyond the pre-queue')
    end
    at[slot] = cur[i]
end
local seen = {}
local batch = {}
local moved = 0
for k = 0, n - 1 do
    local b1, b2, b3, b4 = sbyte(perm, 4 * k + 1, 4 * k + 4)
    local old = b1 + b2 * 256 + b3 * 65536 + b4 * 16777216
    if old >= n or seen[old] then
        fail('perm is not a permutation at ' .. k)
    end
    seen[old] = true
    local uid = at[old]
    if uid then
        batch[#batch + 1] = k
        batch[#batch + 1] = uid
        moved = moved + 1
    end
end
redis.call('DEL', P .. 'q')
local i = 1
while i <= #batch do
    local j = math.min(i + 999, #batch)
    redis.call('ZADD', P .. 'q', unpack(batch, i, j))
    i = j + 1
end
ev_put('shuf', 1)
OUT[9] = moved
return reply(BR_OK)
