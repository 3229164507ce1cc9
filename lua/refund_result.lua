--[[
refund_result.lua -- refund_result: the saga worker reports a refund call.
Twin of br_saga_refund_result (core/saga.c): ok -> refunded (the hold, if
expired or cancelled, becomes refunded; notify); not ok -> the next attempt
after the backoff.

KEYS[1]  br:{e<event of the payment>}:
ARGV     now_ms, actor user_id (0 = the system), payment_id, ok (0/1)
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): the payment. Effects: notify when refunded.
]]
log_command()
local actor = arg_u64(2)
local pid = arg_u64(3)
local ok = arg_int(4, 0, 1)
if actor ~= '0' then
    return reply(BR_E_FORBIDDEN)
end
ev_load('id')
if EV.id == nil then
    return reply(BR_E_NOT_FOUND)
end
local p = pay_load(seq_of(tonumber(pid)))
if p == nil then
    return reply(BR_E_NOT_FOUND)
end
if p.st ~= BR_PAY_REFUND_PENDING then
    fill_payment(p)
    return reply(BR_E_DUPLICATE)
end
if ok == 1 then
    redis.call('ZREM', P .. 'refunds', pad(p.seq))
    p.st = BR_PAY_REFUNDED
    redis.call('HSET', P .. 'y:' .. p.seq, 'st', p.st)
    local h = hold_load(p.hold)
    if h.st == BR_HOLD_EXPIRED or h.st == BR_HOLD_CANCELLED then
        hold_set_state(h, BR_HOLD_REFUNDED)
    end
    emit_payment(BR_FX_NOTIFY, p, h)
else
    -- The provider refused for now; retry after the backoff.
    p.next = NOW + backoff_ms(p.att)
    redis.call('HSET', P .. 'y:' .. p.seq, 'next', p.next)
    redis.call('ZADD', P .. 'refunds', p.next, pad(p.seq))
end
fill_payment(p)
return reply(BR_OK)
