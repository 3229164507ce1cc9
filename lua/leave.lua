--[[
leave.lua -- queue_leave: a user gives up a place or a pass.
Twin of br_queue_leave (core/queue.c).

KEYS[1]  br:{e<event>}:
ARGV     now_ms, user_id
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): status (left), queue_length. Effects:
         pass_expired when a live pass is given back. err =
         BR_REDIS_NEED_OPEN (aux = pre-queue slots) when the opening shuffle
         is due: nothing was written.
]]
log_command()
local uid = arg_u64(2)

ev_load('id', 'opens', 'shuf', 'qpre', 'qwait', 'pact')
if EV.id == nil then
    return reply(BR_E_NOT_FOUND)
end
local m = member_find(uid)
if m == nil then
    return reply(BR_E_NOT_IN_QUEUE)
end
local need = open_if_due()
if need then
    return need
end
OUT[3] = EV.id
local st = mstatus(m)
if st == BR_QS_PREQUEUE or st == BR_QS_WAITING then
    if redis.call('ZREM', P .. 'q', uid) ~= 1 then
        broken('leave: user ' .. uid .. ' is waiting but not in the queue')
    end
    ev_put('qwait', EV.qwait - 1)
elseif st == BR_QS_ADMITTED then
    pass_expire(pass_load(m.pass), m) -- giving the pass back frees its active slot now
else
    return reply(BR_E_NOT_IN_QUEUE)
end
m.st = BR_QS_LEFT
member_save(m)
OUT[2] = BR_QS_LEFT
OUT[6] = EV.qwait
return reply(BR_OK)
