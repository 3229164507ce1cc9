--[[
rebuild_cat.lua -- the rebuild of an event from PostgreSQL's record, first
half: the event's share of the catalog (br_redis_rebuild_event in
adapters/redis.h, lua/README.md "Rebuilding an event"). Events are rebuilt
in id order, so the event is counted here when the catalog counts the one
before it; the capacities it takes (queue slots, active passes, seats) are
added as event_alloc.lua adds them, without its checks: the event existed.

KEYS[1]  br:{cat}:
ARGV     now_ms, event id, queue capacity, max_active, seats (the zones'
         capacities summed)
Reply    the outcome (lib.lua): id (the event); aux = 1 when counted now, 0
         when the catalog counted it already. BR_E_INVALID when events
         before it are missing (rebuild them first).
]]
local eid = arg_int(2, 1, BR_EVENT_ID_MAX)
local qcap = arg_int(3, 1, 2 ^ 31)
local maxa = arg_int(4, 1, 2 ^ 31)
local seats = arg_int(5, 1, 2 ^ 40)
local c = redis.call('HMGET', P .. 'cat', 'events', 'slots', 'active', 'seats')
for i = 1, 4 do
    c[i] = tonumber(c[i])
    if c[i] == nil then
        broken('the catalog has no config')
    end
end
OUT[3] = eid
if c[1] >= eid then
    return reply(BR_OK)
end
if c[1] ~= eid - 1 then
    return reply(BR_E_INVALID)
end
redis.call('HSET', P .. 'cat', 'events', eid, 'slots', sformat('%d', c[2] + qcap),
           'active', sformat('%d', c[3] + maxa), 'seats', sformat('%d', c[4] + seats))
OUT[10] = 1
return reply(BR_OK)
