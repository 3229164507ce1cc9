--[[
payment_check.lua -- one event's share of a payment_check (point 8: never
wait on a webhook forever): for the first k payments of this event whose
status check is due, count the check, schedule the next one (check_ms
doubled per check, capped at BR_PAYMENT_CHECK_BACKOFF_MS_MAX) and emit
provider_query (the hold is live: ask) or provider_void (the hold is gone:
cancel the intent unless paid). The driver feeds the provider's answer back
as a payment_event. Twin of the core's payment_check (core/saga.c) run on
this event alone, shaped like saga_step.lua: the core keeps one check heap
over all events, each event here its zset br:{e}:checks (score = next
check, member = padded seq, ties by id); the adapter merges every event's
due checks in the core's (next check, payment id) order, keeps the first
max, and calls this once per event with k = that event's number among
them, logged as payment_check{max = k}.

KEYS[1]  br:{e<event>}:
ARGV     now_ms, k (1..BR_SAGA_STEP_MAX), the command's journal record
         (payment_check{max = k}, logged)
Reply    count = checks emitted, queue_length = payments awaiting a check in
         this event afterwards. Effects: provider_query or provider_void for
         each, in (next check, id) order.
]]
log_command()
local emits = true -- payment_check's effects (BR_PLANT=NO_PAYMENT_CHECK: none)
local k = arg_int(2, 1, BR_SAGA_STEP_MAX)
ev_load('id')
if EV.id == nil then
    fail('payment_check on a missing event')
end
local due = redis.call('ZRANGEBYSCORE', P .. 'checks', '-inf', NOW, 'LIMIT', 0, k)
for i = 1, #due do
    local p = pay_load(tonumber(due[i]))
    if p == nil or (p.st ~= BR_PAY_PENDING and p.st ~= BR_PAY_FAILED) then
        broken('payment_check: payment ' .. due[i] .. ' is not pending or failed')
    end
    check_load(p)
    if p.cms == 0 or p.ccl ~= 0 then
        broken('payment_check: payment ' .. due[i] .. ' has no checks')
    end
    local h = hold_load(p.hold)
    p.catt = p.catt + 1
    p.cnext = NOW + check_delay(p.cms, p.catt)
    redis.call('HSET', P .. 'y:' .. p.seq, 'catt', p.catt, 'cnext', p.cnext)
    redis.call('ZADD', P .. 'checks', p.cnext, pad(p.seq))
    if not emits then
        -- planted: nobody asks the provider
    elseif h.st == BR_HOLD_HELD and not lapsed(h.dl) then
        emit_payment(BR_FX_PROVIDER_QUERY, p, h)
    else
        emit_payment(BR_FX_PROVIDER_VOID, p, h)
    end
end
OUT[9] = #due
OUT[6] = redis.call('ZCARD', P .. 'checks')
return reply(BR_OK)
