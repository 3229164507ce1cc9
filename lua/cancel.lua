--[[
cancel.lua -- cancel: the owner gives a live hold back.
Twin of br_inventory_cancel (core/inventory.c).

KEYS[1]  br:{e<event of the hold>}:   (the adapter takes the event from hold_id >> 32)
ARGV     now_ms, user_id, hold_id
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): the hold. Effects: notify.
]]
log_command()
local uid = arg_u64(2)
local hid = arg_u64(3)

ev_load('id')
if EV.id == nil then
    return reply(BR_E_NOT_FOUND)
end
local h = hold_load(seq_of(tonumber(hid)))
if h == nil or h.uid ~= uid then
    return reply(BR_E_NOT_FOUND) -- another user's hold is not theirs to see
end
if h.st ~= BR_HOLD_HELD then
    fill_hold(h)
    return reply(BR_E_BOOKING_NOT_HELD)
end
if lapsed(h.dl) then
    fill_hold(h)
    return reply(BR_E_HOLD_EXPIRED) -- the sweep returns its seats
end
hold_release(h)
hold_set_state(h, BR_HOLD_CANCELLED)
emit(BR_FX_NOTIFY, h.user, hold_id(h), 0, 0, 0)
fill_hold(h)
return reply(BR_OK)
