--[[
sweep.lua -- sweep: return the seats of holds whose deadline has passed, in
(deadline, id) order, at most max of them. A hold is live while now <
deadline, so it is expired exactly at its deadline.
Twin of br_inventory_sweep (core/inventory.c).

KEYS[1]  br:{e<event>}:
ARGV     now_ms, actor user_id (0 = the system), max
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): id (event), count (swept). Effects:
         booking_expired for each.
]]
log_command()
local actor = arg_u64(2)
local max = arg_int(3, 0, W32 - 1)
if actor ~= '0' then
    return reply(BR_E_FORBIDDEN)
end
ev_load('id')
if EV.id == nil then
    return reply(BR_E_NOT_FOUND)
end
if max < 1 or max > BR_SWEEP_MAX then
    return reply(BR_E_INVALID)
end
local due = redis.call('ZRANGEBYSCORE', K_HOLDS, '-inf', NOW, 'LIMIT', 0, max)
for i = 1, #due do
    hold_expire(hold_load(tonumber(due[i])))
end
OUT[3] = EV.id
OUT[9] = #due
return reply(BR_OK)
