--[[
saga_step.lua -- one event's share of a saga_step: re-emit provider_refund
for the first k refunds due in this event. Twin of br_saga_step
(core/saga.c) run on this event alone.

The core keeps one refund heap over all events; here each event keeps its
own zset br:{e}:refunds (score = next attempt, member = padded seq, so ties
break by id as in the core's heap). The adapter reads every event's due
refunds, merges them in the core's (next attempt, payment id) order, keeps
the first max, and calls this script once per event with k = that event's
number among them. The script takes the first k due here itself rather
than a list of ids: then the logged command, saga_step{max = k}, is exactly
what the core does with this event's state (the trace of one event replays
through the core), and when nothing else ran in between (a refund_result,
another step) they are the ones the adapter chose.

KEYS[1]  br:{e<event>}:
ARGV     now_ms, k (1..BR_SAGA_STEP_MAX), the command's journal record
         (saga_step{max = k}, logged)
Reply    the outcome of the core's saga_step on this event: count = refunds
         re-emitted, queue_length = refunds pending in this event
         afterwards. Effects: provider_refund for each, in (next, id) order.
]]
log_command()
local k = arg_int(2, 1, BR_SAGA_STEP_MAX)
ev_load('id')
if EV.id == nil then
    fail('saga_step on a missing event')
end
local due = redis.call('ZRANGEBYSCORE', P .. 'refunds', '-inf', NOW, 'LIMIT', 0, k)
for i = 1, #due do
    local p = pay_load(tonumber(due[i]))
    if p == nil or p.st ~= BR_PAY_REFUND_PENDING then
        broken('saga_step: refund ' .. due[i] .. ' is not pending')
    end
    refund_attempt(p, hold_load(p.hold))
end
OUT[9] = #due
OUT[6] = redis.call('ZCARD', P .. 'refunds')
return reply(BR_OK)
