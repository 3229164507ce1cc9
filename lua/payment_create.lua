--[[
payment_create.lua -- payment_create: the hold's owner starts paying.
Twin of br_saga_payment_create (core/saga.c): a pending payment for the
hold's amount, or the hold's one payment again: the same pending payment, or
after a decline the failed payment opened again (failed -> pending). The
charge is re-emitted: a driver that crashed after the first create may never
have sent it, and a reopened payment is confirmed again at the provider.

KEYS[1]  br:{e<event of the hold>}:   (the adapter takes the event from hold_id >> 32)
ARGV     now_ms, user_id, hold_id
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): id (payment), ref (hold), status, amount.
         Effects: provider_charge.
]]
log_command()
local uid = arg_u64(2)
local hid = arg_u64(3)

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
    emit_payment(BR_FX_PROVIDER_CHARGE, p, h)
    fill_payment(p)
    return reply(BR_OK)
end
local seq = EV.yseq + 1
ev_put('yseq', seq)
p = {seq = seq, hold = h.seq, st = BR_PAY_PENDING, amt = h.amt, att = 0, next = 0}
redis.call('HSET', P .. 'y:' .. seq, 'hold', h.seq, 'st', p.st, 'amt', p.amt, 'created', NOW,
           'att', 0, 'next', 0)
h.pay = seq
hold_save(h)
emit_payment(BR_FX_PROVIDER_CHARGE, p, h)
fill_payment(p)
return reply(BR_OK)
