--[[
event_put.lua -- event_create, second half: the new event's record in its
own slot, with every counter at zero. Runs right after event_alloc.lua,
which checked the spec and allocated the id; running it again for an event
that exists changes nothing.

KEYS[1]  br:{e<event>}:
ARGV     the event spec as in event_alloc.lua, with 3 = the event id and
         4 = its queue capacity (event_alloc's aux), the waiting room's
         five spec fields after the zones (event_alloc.lua), then the event's
         incarnation token (1..2^53-1, lib.lua's SPECS), then the
         event_create command's journal record (the event's first log entry)
Reply    the outcome (lib.lua): id (the event).
]]
log_command()
local eid = arg_int(3, 1, BR_EVENT_ID_MAX)
local qcap = arg_int(4, 1, 2 ^ 31)
local zc = arg_int(16, 1, BR_EVENT_ZONES_MAX)
if #ARGV ~= 23 + 4 * zc then
    fail('event_put with ' .. #ARGV .. ' arguments for ' .. zc .. ' zones')
end
OUT[3] = eid
if redis.call('EXISTS', P .. 'ev') == 1 then
    LOG_C = nil -- logged when it was written
    return reply(BR_OK)
end
EV.id = eid -- the event exists from here: reply() logs its creation
-- The event's hash is read on every command, a dozen fields at a time. As a
-- listpack (Redis's encoding for small hashes) each field is found by a
-- linear scan of ~80 fields; a value longer than hash-max-listpack-value (64
-- by default) makes Redis keep it a hash table instead: ~1 us per read of a
-- dozen fields instead of ~13 (measured on this machine).
local DOC = "br:{e}:ev -- the event's spec and counters, kept a hash table by this long value"
local args = {'doc', DOC, 'id', eid, 'owner', arg_u64(2), 'name', ARGV[5], 'venue', ARGV[6],
              'starts', ARGV[7], 'opens', ARGV[8], 'limit', ARGV[9], 'rp', ARGV[10],
              'maxa', ARGV[11], 'apt', ARGV[12], 'pttl', ARGV[13], 'httl', ARGV[14],
              'qcap', qcap, 'zc', zc, 'inc', arg_int(22 + 4 * zc, 1, 2 ^ 53 - 1),
              'shuf', 0, 'qpre', 0,
              'qtail', 0, 'qwait', 0, 'pact', 0, 'piss', 0, 'pseq', 0, 'hseq', 0, 'yseq', 0}
-- Issue 13 (WR-SPEC 1): the waiting room's spec and its live controls.
local wr = 17 + 4 * zc
WR.spec_args(args, wr)
for s = BR_HOLD_HELD, BR_HOLD_REFUNDED do
    args[#args + 1] = 'bk' .. s
    args[#args + 1] = 0
end
for z = 1, zc do
    local at = 17 + 4 * (z - 1)
    for _, kv in ipairs({{'zname', ARGV[at]}, {'cap', ARGV[at + 1]}, {'price', ARGV[at + 2]},
                         {'cur', ARGV[at + 3]}, {'held', 0}, {'sold', 0}}) do
        args[#args + 1] = kv[1] .. z
        args[#args + 1] = kv[2]
    end
end
redis.call('HSET', P .. 'ev', unpack(args))
return reply(BR_OK)
