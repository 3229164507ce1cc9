--[[
payment_create.lua -- payment_create: the hold's owner starts paying.
Twin of br_saga_payment_create (core/saga.c): a pending payment for the
hold's amount, or the hold's one payment again: the same pending payment, or
after a decline the failed payment opened again (failed -> pending). The
charge is re-emitted: a driver that crashed after the first create may never
have sent it, and a reopened payment is confirmed again at the provider.
Point 8: with check_ms > 0 the payment (new or opened again) is scheduled
for its first status check at now + check_ms in zset checks, its checks
made and closed flag reset (payment_check.lua).

KEYS[1]  br:{e<event of the hold>}:   (the adapter takes the event from hold_id >> 32)
ARGV     now_ms, user_id, hold_id, check_ms (0, or BR_PAYMENT_CHECK_MS_MIN..MAX:
         the adapter refuses others with BR_E_INVALID, as the core does)
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): id (payment), ref (hold), status, amount.
         Effects: provider_charge.
]]
log_command()
local uid = arg_u64(2)
local hid = arg_u64(3)
local cms = arg_int(4, 0, BR_PAYMENT_CHECK_MS_MAX)

ev_load('id', 'yseq')
if EV.id == nil then
    return reply(BR_E_NOT_FOUND)
end
local h = hold_load(seq_of(tonumber(hid)))
if h == nil or h.uid ~= uid then
    return reply(BR_E_NOT_FOUND)
end
if h.st ~= BR_HOLD_HELD then
    return reply(BR_E_BOOKING_NOT_HELD)
end
if lapsed(h.dl) then
    return reply(BR_E_HOLD_EXPIRED)
end
local p = h.pay ~= 0 and pay_load(h.pay) or nil
if p ~= nil then
    -- one booking, one payment: a held hold's payment is pending or failed
    if p.st ~= BR_PAY_PENDING and p.st ~= BR_PAY_FAILED then
        broken('payment_create: hold ' .. h.seq .. ' is held but its payment is ' .. p.st)
    end
    if p.st == BR_PAY_FAILED then
        p.st = BR_PAY_PENDING
        redis.call('HSET', P .. 'y:' .. p.seq, 'st', p.st)
    end
    if cms > 0 then
        redis.call('HSET', P .. 'y:' .. p.seq, 'cms', cms, 'catt', 0, 'cnext', NOW + cms, 'ccl', 0)
        redis.call('ZADD', P .. 'checks', NOW + cms, pad(p.seq))
    end
    emit_payment(BR_FX_PROVIDER_CHARGE, p, h)
    fill_payment(p)
    return reply(BR_OK)
end
local seq = EV.yseq + 1
ev_put('yseq', seq)
p = {seq = seq, hold = h.seq, st = BR_PAY_PENDING, amt = h.amt, att = 0, next = 0}
redis.call('HSET', P .. 'y:' .. seq, 'hold', h.seq, 'st', p.st, 'amt', p.amt, 'created', NOW,
           'att', 0, 'next', 0, 'cms', cms, 'catt', 0, 'cnext', cms > 0 and NOW + cms or 0,
           'ccl', 0)
if cms > 0 then
    redis.call('ZADD', P .. 'checks', NOW + cms, pad(seq))
end
h.pay = seq
hold_save(h)
emit_payment(BR_FX_PROVIDER_CHARGE, p, h)
fill_payment(p)
return reply(BR_OK)
