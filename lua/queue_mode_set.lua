--[[
queue_mode_set.lua -- queue_mode_set (19): the operator steers an event's
waiting room. Twin of br_queue_mode_set (core/queue_gate.c, WR-SPEC 7):
  1. the actor: the system (0), or a registered user (UNAUTHORIZED) who may
     steer this event (br_catalog_may_steer: admins every event, organizers
     their own; FORBIDDEN); 2. the event (NOT_FOUND); 3. the fields
     (INVALID: set empty or unknown bits, mode out of range, max_active not
     in 1..spec max_active, admit_per_min over BR_ADMIT_PER_MIN_MAX).
A refusal changes nothing. Live passes are never revoked.

Users and their roles live in {cat}: the adapter reads the actor's role
there first and passes it (as join is told user_known). A refusal decided by
the role is marked external in the log: a trace's prologue registers every
user as an admin (lua/README.md "The event log").

KEYS[1]  br:{e<event>}:
ARGV     now_ms, actor user_id, actor_known (1 when registered, 1 for the
         system), actor role (enum br_role, 0 when unknown), set (BR_QSET_*
         bits), mode, max_active, admit_per_min
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): id (event), status (mode), position (gate
         after the change), count (live max_active), ref (live
         admit_per_min). Effect: one queue_state when set has MODE.
]]
log_command()
local actor = arg_u64(2)
local known = arg_small(3, 0, 1)
local role = arg_small(4, 0, 255)
local set = arg_int(5, 0, 255)
local mode = arg_int(6, 0, 255)
local maxa = arg_int(7, 0, W32 - 1)
local apm = arg_int(8, 0, W32 - 1)

ev_load('id', 'owner', 'shuf')
if actor ~= '0' then
    if known == 0 then
        EXTERNAL = true -- decided in {cat}: the log marks it (lib.lua)
        return reply(BR_E_UNAUTHORIZED)
    end
    -- core: br_catalog_may_steer(role, user, owner), owner 0 when no event
    local owner = EV.id and EV.owner or 0
    if role ~= BR_ROLE_ADMIN and not (role == BR_ROLE_ORGANIZER and tonumber(actor) == owner) then
        EXTERNAL = true -- decided by the role, read in {cat}
        return reply(BR_E_FORBIDDEN)
    end
end
if EV.id == nil then
    return reply(BR_E_NOT_FOUND)
end
WR.load()
local function has(bit)
    return floor(set / bit) % 2 == 1
end
if set == 0 or set >= 2 * Q.QSET_ADMIT_PER_MIN or
    (has(Q.QSET_MODE) and mode >= Q.QUEUE_MODE_COUNT) or
    (has(Q.QSET_MAX_ACTIVE) and (maxa < 1 or maxa > EV.maxa)) or
    (has(Q.QSET_ADMIT_PER_MIN) and apm > Q.ADMIT_PER_MIN_MAX) then
    OUT[3] = 0
    return reply(BR_E_INVALID)
end
if has(Q.QSET_MODE) then
    EV.mode = mode
    ev_put('mode', mode)
end
if has(Q.QSET_MAX_ACTIVE) then
    EV.maxl = maxa
    ev_put('maxl', maxa)
end
if has(Q.QSET_ADMIT_PER_MIN) then
    EV.apm = apm
    ev_put('apm', apm)
    ev_put('pcr', 0)
    ev_put('plast', apm > 0 and NOW or 0)
end
local gate = WR.gate()
if has(Q.QSET_MODE) then
    emit(Q.FX_QUEUE_STATE, 0, gate, EV.mode, 0, 0)
end
OUT[2] = EV.mode
OUT[3] = EV.id
OUT[4] = EV.apm
OUT[5] = gate
OUT[9] = EV.maxl
return reply(BR_OK)
