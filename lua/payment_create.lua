--[[
payment_create.lua -- payment_create: the hold's owner starts paying.
Twin of br_saga_payment_create (core/saga.c): a pending payment for the
hold's amount, or the same pending payment again (the charge is re-emitted:
a driver that crashed after the first create may never have sent it).

KEYS[1]  br:{e<event of the hold>}:   (the adapter takes the event from hold_id >> 32)
ARGV     now_ms, user_id, hold_id
Reply    the outcome (lib.lua): id (payment), ref (hold), status, amount.
         Effects: provider_charge.
]]
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
if NOW >= h.dl then
    return reply(BR_E_HOLD_EXPIRED)
end
local p = h.pay ~= 0 and pay_load(h.pay) or nil
if p ~= nil and p.st == BR_PAY_PENDING then
    emit_payment(BR_FX_PROVIDER_CHARGE, p, h)
    fill_payment(p)
    return reply(BR_OK)
end
local seq = EV.yseq + 1
ev_put('yseq', seq)
p = {seq = seq, hold = h.seq, st = BR_PAY_PENDING, amt = h.amt, att = 0, next = 0}
redis.call('HSET', P .. 'y:' .. seq, 'hold', h.seq, 'st', p.st, 'amt', p.amt, 'created', NOW,
           'att', 0, 'next', 0)
redis.call('HSET', P .. 'h:' .. h.seq, 'pay', seq)
emit_payment(BR_FX_PROVIDER_CHARGE, p, h)
fill_payment(p)
return reply(BR_OK)
