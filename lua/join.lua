--[[
join.lua -- queue_join: a user takes a place in an event's waiting room.
Twin of br_queue_join (core/queue.c).

KEYS[1]  br:{e<event>}:
ARGV     now_ms, user_id, user_known (1 when the user is registered: users
         live in the catalog slot and are never removed, so the adapter
         checks that outside the script without a race)
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): status, position, queue_length; ref and
         deadline_ms of the pass when admitted. Issue 13 (WR-SPEC 3): a join
         that would take a new place is refused QUEUE_CLOSED or SOLD_OUT by
         the gate, or answered PASSTHROUGH (nothing written); with presence
         on (prs > 0) every successful join sets the member's seen. Effects: pass_expired when a
         lapsed pass is collected. err = BR_REDIS_NEED_OPEN (aux = pre-queue
         slots) when the opening shuffle is due: nothing was written.
]]
log_command()
local uid = arg_u64(2)
local known = arg_int(3, 0, 1)

ev_load('id', 'opens', 'shuf', 'qpre', 'qtail', 'qcap', 'qwait', 'pact')
if EV.id == nil then
    return reply(BR_E_NOT_FOUND)
end
if known == 0 then
    EXTERNAL = true -- decided in {cat}: the log marks it (lib.lua)
    return reply(BR_E_UNAUTHORIZED)
end
local need = open_if_due()
if need then
    return need
end
local m = member_find(uid)
-- Issue 13 (WR-SPEC 3): a join that would take a new place meets the gate
-- first, before the FULL check and before any record is made or a lapsed
-- pass collected, so a refusal changes nothing.
WR.load()
local keeps = false
if m ~= nil then
    local st = mstatus(m)
    keeps = st == BR_QS_PREQUEUE or st == BR_QS_WAITING or
                (st == BR_QS_ADMITTED and not lapsed(pass_load(m.pass).dl))
end
if not keeps then
    local g = WR.gate()
    if g == Q.GATE_CLOSED then
        return reply(BR_E_QUEUE_CLOSED)
    end
    if g == Q.GATE_SOLD_OUT then
        return reply(BR_E_SOLD_OUT)
    end
    if g == Q.GATE_PASSTHROUGH then
        -- No queue: book now. Nothing is written.
        OUT[2] = Q.QS_PASSTHROUGH
        OUT[3] = EV.id
        OUT[6] = EV.qwait
        return reply(BR_OK)
    end
end
if EV.qtail >= EV.qcap and m == nil then
    -- A newcomer to a full queue: refused before the member record exists.
    return reply(BR_E_FULL)
end
OUT[3] = EV.id
if m ~= nil and m.st == BR_QS_ADMITTED then
    local p = pass_load(m.pass)
    if lapsed(p.dl) then
        if EV.qtail >= EV.qcap then
            -- The re-join needs a new place and there is none: refused before
            -- the pass is touched; the admitter collects it.
            return reply(BR_E_FULL)
        end
        pass_expire(p, m) -- lapsed but not yet collected: collect it now
    end
end

-- core: fill_position
local function fill_position()
    local st = mstatus(m)
    OUT[2] = st
    OUT[6] = EV.qwait
    if st == BR_QS_WAITING then
        OUT[5] = redis.call('ZRANK', P .. 'q', uid) + 1
    end
    if st == BR_QS_ADMITTED then
        OUT[4] = EV.id * W32 + m.pass
        OUT[7] = pass_load(m.pass).dl
    end
end

-- Issue 13: every successful join is a sign of life when presence is on.
local function seen()
    if EV.prs > 0 then
        m.seen = NOW
        member_save(m)
    end
end

local st = m and mstatus(m) or BR_QS_NONE
if st == BR_QS_PREQUEUE or st == BR_QS_WAITING or st == BR_QS_ADMITTED then
    seen()
    fill_position() -- a re-join keeps the place
    return reply(BR_OK)
end
if EV.qtail >= EV.qcap then
    return reply(BR_E_FULL) -- a member already: its record stays as it was
end
local rel = EV.qtail
ev_put('qtail', rel + 1)
redis.call('ZADD', P .. 'q', rel, uid)
ev_put('qwait', EV.qwait + 1)
if EV.shuf == 1 then
    st = BR_QS_WAITING
else
    st = BR_QS_PREQUEUE
    ev_put('qpre', EV.qtail)
end
if m == nil then
    m = member_new(uid, st, 0)
else
    m.st = st
    member_save(m)
end
seen()
fill_position()
return reply(BR_OK)
