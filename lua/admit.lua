--[[
admit.lua -- admit: one admitter pass over an event. Expires lapsed passes
(deadline <= now, in (deadline, id) order, at most BR_PASS_EXPIRE_MAX), then
issues min(max_active - active, admit_per_tick) passes to the head of the
queue. Twin of br_queue_admit (core/queue.c).

KEYS[1]  br:{e<event>}:
ARGV     now_ms, actor user_id (0 = the system)
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): id (event), count (admitted), queue_length.
         Effects: pass_expired for each lapsed pass, then pass_issued for
         each admitted user in queue order. err = BR_REDIS_NEED_OPEN (aux =
         pre-queue slots) when the opening shuffle is due: nothing was written.
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

-- 2. Admit from the head, nobody before the opening.
if EV.shuf ~= 1 then
    OUT[6] = EV.qwait
    return reply(BR_OK)
end
local room = EV.maxa - EV.pact
local want = math.min(room, EV.apt)
local admitted = 0
if want > 0 then
    local head = redis.call('ZPOPMIN', P .. 'q', want)
    for i = 1, #head, 2 do
        local uid = head[i]
        local m = member_find(uid)
        if m == nil or mstatus(m) ~= BR_QS_WAITING then
            broken('admit: user ' .. uid .. ' is queued but not waiting')
        end
        local seq = EV.pseq + 1
        local dl = NOW + EV.pttl
        ev_put('pseq', seq)
        ev_put_str('p:' .. dec(seq), uid .. ':' .. dec(dl) .. ':' .. dec(BR_PASS_LIVE) .. ':' .. dec(NOW))
        redis.call('ZADD', P .. 'passes', dl, pad(seq))
        m.st = BR_QS_ADMITTED
        m.pass = seq
        member_save(m)
        ev_put('pact', EV.pact + 1)
        ev_put('piss', EV.piss + 1)
        ev_put('qwait', EV.qwait - 1)
        admitted = admitted + 1
        emit(BR_FX_PASS_ISSUED, tonumber(uid), EV.id * W32 + seq, 0, dl, 0)
    end
end
OUT[9] = admitted
OUT[6] = EV.qwait
return reply(BR_OK)
