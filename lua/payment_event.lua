--[[
payment_event.lua -- payment_event: a verified provider webhook, applied
exactly once per provider event id. Twin of br_saga_payment_event
(core/saga.c):
  succeeded, hold live and not confirmed -> confirm (booking_confirmed)
  succeeded, hold gone or past its deadline -> (expire it first) refund_pending,
    provider_refund
  succeeded again for a payment already past pending/failed -> nothing
  failed, payment pending -> failed (the hold stays held)
Point 8: a success that decides the payment takes it out of zset checks; the
void's answer (cancel = 1) applied while the hold is no longer live (not
held, or past its deadline) closes its checks (ccl = 1, out of zset checks):
the provider cancelled the intent, nothing is left to ask about. Any other
decline after the hold is gone is not final: the next check voids.

Provider event ids are unique over the whole sale, as in the core, but this
script sees one event. So the adapter first claims the id in its own slot
(SET br:{v<id>}:pev <payment_id> NX GET) and passes what it found as
`claim`; the ids applied to this event's payments are kept here, in
br:{e}:pev, which is what makes a redelivery after a crash between the two
steps still exactly-once.

KEYS[1]  br:{e<event of the payment>}:
ARGV     now_ms, actor user_id (0 = the system), payment_id,
         provider_event_id (u64 decimal), succeeded (0/1), claim (0 =
         unclaimed before, 1 = claimed for this payment, 2 = claimed for
         another payment), cancel (1 = a failure whose id is the void's
         answer, br_saga_answer_id(payment, false, "canceled"): the adapter
         computes it, as the core does)
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): the payment (id, ref = hold, status, amount).
         aux = 1 when the provider event id was recorded here (the adapter
         releases a fresh claim otherwise). Effects: booking_confirmed, or
         booking_expired and provider_refund.
]]
log_command()
local actor = arg_u64(2)
local pid = arg_u64(3)
local pev = arg_u64(4)
local succeeded = arg_int(5, 0, 1)
local claim = arg_int(6, 0, 2)
local cancel = arg_int(7, 0, 1)
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
fill_payment(p)
if claim == 2 then
    -- Applied to another payment: of this event when the id is in its set,
    -- else of another event (marked in the log: lib.lua).
    EXTERNAL = redis.call('SISMEMBER', P .. 'pev', pev) == 0
    return reply(BR_E_DUPLICATE)
end
if redis.call('SADD', P .. 'pev', pev) == 0 then
    return reply(BR_E_DUPLICATE) -- already applied
end
OUT[10] = 1
local h = hold_load(p.hold)
if succeeded == 0 then
    if p.st == BR_PAY_PENDING then
        p.st = BR_PAY_FAILED -- the hold stays held: the buyer may pay again
        redis.call('HSET', P .. 'y:' .. p.seq, 'st', p.st)
    end
    if cancel == 1 and p.st == BR_PAY_FAILED and (h.st ~= BR_HOLD_HELD or lapsed(h.dl)) and
        check_load(p).cms > 0 then
        redis.call('HSET', P .. 'y:' .. p.seq, 'ccl', 1)
        check_drop(p)
    end
    fill_payment(p)
    return reply(BR_OK)
end
if p.st ~= BR_PAY_PENDING and p.st ~= BR_PAY_FAILED then
    return reply(BR_OK) -- this payment's success was applied already
end
check_drop(p)
if h.st == BR_HOLD_HELD and not lapsed(h.dl) then
    -- core: br_inventory_confirm
    if h.conf ~= 0 then
        broken('confirm: hold ' .. h.seq .. ' is held but confirmed')
    end
    redis.call('ZREM', K_HOLDS, pad(h.seq))
    redis.call('HINCRBY', K_EV, ZF[h.zone].held, -h.qty)
    redis.call('HINCRBY', K_EV, ZF[h.zone].sold, h.qty)
    h.conf = p.seq
    hold_set_state(h, BR_HOLD_CONFIRMED)
    emit(BR_FX_BOOKING_CONFIRMED, h.user, hold_id(h), EV.id * W32 + p.seq, 0, h.amt)
    p.st = BR_PAY_CONFIRMED
    redis.call('HSET', P .. 'y:' .. p.seq, 'st', p.st)
else
    if h.st == BR_HOLD_HELD then
        hold_expire(h) -- past its deadline, not yet swept
    end
    p.st = BR_PAY_REFUND_PENDING
    redis.call('HSET', P .. 'y:' .. p.seq, 'st', p.st)
    refund_attempt(p, h)
end
fill_payment(p)
return reply(BR_OK)
