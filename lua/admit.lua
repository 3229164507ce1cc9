--[[
admit.lua -- admit: one admitter pass over an event. Twin of br_queue_admit
(core/queue.c, WR-SPEC 5), in its order:
  1. expire lapsed passes (deadline <= now, in (deadline, id) order, at most
     BR_PASS_EXPIRE_MAX); nothing more before the opening shuffle;
  2. pacing (admit_per_min > 0): the credit grows by (now - last) * apm,
     capped at max(60000, apm * BR_PACE_BURST_MS);
  3. announce: when the inventory gate differs from the one last told, one
     queue_state effect (id = the gate, ref = the mode);
  4. when the gate is not open, nobody is admitted;
  5. want = min(max_active (live) - active, admit_per_tick), and with
     pacing at most credit / 60000, and when inventory-aware at most the
     seats available now (headroom);
  6. from the head of the queue: a member not seen for presence_ttl_s lapses
     (place_lapsed; it does not count against want; at most
     BR_LAPSE_SKIP_MAX), the others get passes (pass_issued), in queue order;
  7. the admission-rate ring counts the passes issued.

KEYS[1]  br:{e<event>}:
ARGV     now_ms, actor user_id (0 = the system)
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): id (event), count (admitted), ref (places
         lapsed), queue_length. Effects: pass_expired for each lapsed pass,
         queue_state (0 or 1), then place_lapsed / pass_issued in queue
         order. err = BR_REDIS_NEED_OPEN (aux = pre-queue slots) when the
         opening shuffle is due: nothing was written.
]]
log_command()
local actor = arg_u64(2)
if actor ~= '0' then
    return reply(BR_E_FORBIDDEN)
end
ev_load('id', 'opens', 'shuf', 'qpre', 'qwait', 'pact', 'piss', 'pseq', 'maxa', 'apt', 'pttl')
if EV.id == nil then
    return reply(BR_E_NOT_FOUND)
end
local need = open_if_due()
if need then
    return need
end
OUT[3] = EV.id

-- 1. Expire lapsed passes, each returning its place in max_active.
local due = redis.call('ZRANGEBYSCORE', P .. 'passes', '-inf', NOW, 'LIMIT', 0, BR_PASS_EXPIRE_MAX)
for i = 1, #due do
    pass_expire(pass_load(tonumber(due[i])), nil)
end

-- Nobody before the opening.
if EV.shuf ~= 1 then
    OUT[6] = EV.qwait
    return reply(BR_OK)
end
WR.load()

-- 2. Pacing.
if EV.apm > 0 then
    local dt = NOW - EV.plast
    if dt < 0 then
        dt = 0
    end
    local cap = math.max(60000, EV.apm * Q.PACE_BURST_MS)
    ev_put('pcr', math.min(EV.pcr + dt * EV.apm, cap))
    ev_put('plast', NOW)
end

-- 3. Announce a change of the inventory gate.
local gate = WR.gate()
local inv = WR.inv()
if inv ~= EV.told then
    emit(Q.FX_QUEUE_STATE, 0, gate, EV.mode, 0, 0)
    ev_put('told', inv)
end

-- 4. A gate that is not open admits nobody.
if gate ~= Q.GATE_OPEN then
    OUT[6] = EV.qwait
    return reply(BR_OK)
end

-- 5. How many.
local want = 0
if EV.maxl > EV.pact then
    want = EV.maxl - EV.pact
end
want = math.min(want, EV.apt)
if EV.apm > 0 then
    want = math.min(want, floor(EV.pcr / 60000))
end
if EV.aware then
    want = math.min(want, EV.avail) -- headroom
end

-- 6. From the head: lapse the absent, admit the present.
local ttl_ms = EV.prs * 1000
local admitted, lapses, stop = 0, 0, false
while admitted < want and not stop do
    local head = redis.call('ZPOPMIN', P .. 'q', want - admitted)
    if #head == 0 then
        break
    end
    for i = 1, #head, 2 do
        local uid = head[i]
        local m = not stop and member_find(uid)
        if m then
            if mstatus(m) ~= BR_QS_WAITING then
                broken('admit: user ' .. uid .. ' is queued but not waiting')
            end
            -- The walk ends at an absent member past BR_LAPSE_SKIP_MAX lapses.
            stop = EV.prs > 0 and NOW - m.seen >= ttl_ms and lapses >= Q.LAPSE_SKIP_MAX
        end
        if stop then
            redis.call('ZADD', P .. 'q', head[i + 1], uid) -- not reached: back in place
        elseif EV.prs > 0 and NOW - m.seen >= ttl_ms then
            -- Absent at its turn: the place lapses (as a leave would empty it).
            m.st = Q.QS_LAPSED
            member_save(m)
            ev_put('qwait', EV.qwait - 1)
            lapses = lapses + 1
            emit(Q.FX_PLACE_LAPSED, tonumber(uid), 0, 0, m.seen + ttl_ms, 0)
        else
            local seq = EV.pseq + 1
            local dl = NOW + EV.pttl
            ev_put('pseq', seq)
            ev_put_str('p:' .. dec(seq),
                       uid .. ':' .. dec(dl) .. ':' .. dec(BR_PASS_LIVE) .. ':' .. dec(NOW))
            redis.call('ZADD', P .. 'passes', dl, pad(seq))
            m.st = BR_QS_ADMITTED
            m.pass = seq
            member_save(m)
            ev_put('pact', EV.pact + 1)
            ev_put('piss', EV.piss + 1)
            ev_put('qwait', EV.qwait - 1)
            if EV.apm > 0 then
                ev_put('pcr', EV.pcr - 60000)
            end
            admitted = admitted + 1
            emit(BR_FX_PASS_ISSUED, tonumber(uid), EV.id * W32 + seq, 0, dl, 0)
        end
    end
end
if lapses > 0 then
    ev_put('lap', EV.lap + lapses)
end

-- 7. The admission-rate ring.
if admitted > 0 then
    WR.rate_add(admitted)
end
OUT[9] = admitted
OUT[4] = lapses
OUT[6] = EV.qwait
return reply(BR_OK)
