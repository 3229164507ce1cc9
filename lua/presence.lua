--[[
presence.lua -- presence (20): the server's batch of users seen (an open
stream, a poll). Twin of br_queue_presence (core/queue_gate.c, WR-SPEC 8):
the system only (FORBIDDEN), the event (NOT_FOUND), then 1 <= count <=
BR_PRESENCE_BATCH_MAX and no user id 0 (INVALID). With presence off
(presence_ttl_s 0) nothing changes. Else each id that is a member in
PREQUEUE, WAITING or ADMITTED gets seen = max(seen, now) and counts (a
duplicate counts each time); the others are ignored. No effects.

KEYS[1]  br:{e<event>}:
ARGV     now_ms, actor user_id, count, then the first min(count,
         BR_PRESENCE_BATCH_MAX) user ids
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): id (event), count (members counted),
         queue_length.
]]
log_command()
local actor = arg_u64(2)
local count = arg_int(3, 0, W32 - 1)
local given = #ARGV - 4
if given ~= math.min(count, Q.PRESENCE_BATCH_MAX) then
    fail('presence with ' .. given .. ' ids for count ' .. count)
end
if actor ~= '0' then
    return reply(BR_E_FORBIDDEN)
end
ev_load('id', 'shuf', 'qwait', 'prs')
if EV.id == nil then
    return reply(BR_E_NOT_FOUND)
end
if count == 0 or count > Q.PRESENCE_BATCH_MAX then
    return reply(BR_E_INVALID)
end
for i = 1, count do
    if arg_u64(3 + i) == '0' then
        return reply(BR_E_INVALID)
    end
end
OUT[3] = EV.id
OUT[6] = EV.qwait
if (EV.prs or 0) == 0 then
    return reply(BR_OK)
end
local counted = 0
for i = 1, count do
    local m = member_find(arg_u64(3 + i))
    if m ~= nil and (m.st == BR_QS_PREQUEUE or m.st == BR_QS_WAITING or
                     m.st == BR_QS_ADMITTED) then
        if NOW > m.seen then
            m.seen = NOW
            member_save(m)
        end
        counted = counted + 1
    end
end
OUT[9] = counted
return reply(BR_OK)
