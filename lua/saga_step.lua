--[[
saga_step.lua -- one event's share of a saga_step: re-emit provider_refund
for the refunds the adapter chose. Twin of the loop in br_saga_step
(core/saga.c).

The core keeps one refund heap over all events; here each event keeps its
own zset br:{e}:refunds (score = next attempt, member = padded seq). The
adapter reads every event's due refunds, merges them in the core's
(next attempt, payment id) order, keeps the first max, and calls this
script once per event with that event's share, in order. A payment that is
no longer due when the script runs (a concurrent refund_result) is skipped.

KEYS[1]  br:{e<event>}:
ARGV     now_ms, payment seq..., (each 1..2^32-1, ascending (next, seq) order)
Reply    the outcome (lib.lua): count = refunds re-emitted; aux = refunds
         pending in this event afterwards. Effects: provider_refund for each.
]]
ev_load('id')
if EV.id == nil then
    fail('saga_step on a missing event')
end
local n = 0
for i = 2, #ARGV do
    local seq = arg_int(i, 1, W32 - 1)
    local p = pay_load(seq)
    if p ~= nil and p.st == BR_PAY_REFUND_PENDING and p.next <= NOW then
        refund_attempt(p, hold_load(p.hold))
        n = n + 1
    end
end
OUT[3] = EV.id
OUT[9] = n
OUT[10] = redis.call('ZCARD', P .. 'refunds')
return reply(BR_OK)
