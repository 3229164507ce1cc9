--[[
rebuild.lua -- the rebuild of an event from PostgreSQL's record, second
half: the event's slot, in one call (br_redis_rebuild_event in
adapters/redis.h; lua/README.md "Rebuilding an event"). The adapter checked
the record (ids of this event, counters past every id, zone counters equal
to the holds' seats) before sending it; this script checks that the event
is absent, parses everything, then writes: nothing is written when it
answers an error (a broken argument raises before the first write).

Written: the event's hash as event_put.lua writes it, with the counters
from the record (pseq, hseq, yseq, piss, qtail; held<z>, sold<z>; bk<state>
counted from the holds), every hold (h:<seq>; the live ones in the sweep's
zset by deadline), a member record (m:<user> = "0:0:tickets") for each user
with live or confirmed holds (the per-user limit), every payment (y:<seq>;
refund-pending ones in the saga's zset by next attempt), and the provider
event ids applied. Not written: the queue (q, waiting and pre-queue
members), passes, idempotency records: they live only in Redis.

Point 8's status checks: the record keeps no schedule. A payment with
check_ms > 0 gets cms = check_ms, catt = 0 and ccl as the adapter decided
it (1 = closed: failed, hold not live, the void's answer applied); when its
checks are open (pending or failed, not closed) it is due at now_ms +
check_ms (cnext, and zset checks), as payment_create schedules a payment,
so a payment in flight at the loss is asked about again whatever became of
its webhook. A payment not open keeps cnext = 0 (the core keeps its last
next check: not in the record). check_ms = 0: no check fields (no checks).

KEYS[1]  br:{e<event>}:
ARGV     now_ms (the checks restart from it), the event spec as in event_put.lua (2 .. 21 + 4 zc, queue
         capacity resolved at 4; the waiting room's five fields after the zones), then pseq, hseq, yseq, piss, qtail, held
         and sold per zone (zc each), then three blobs:
           holds     "seq:user:zone:qty:st:created:dl:amt:pass:pay:conf;" each
           payments  "seq:hold:st:amt:created:att:next:cms:ccl;" each (cms 0 or
                     BR_PAYMENT_CHECK_MS_MIN..MAX, ccl 0 or 1)
           provider  "id;" each
         then the event's incarnation token (as event_put.lua)
Reply    the outcome (lib.lua): id (the event), count = holds written.
         BR_E_DUPLICATE when the event exists (nothing written).
]]
local eid = arg_int(3, 1, BR_EVENT_ID_MAX)
local qcap = arg_int(4, 1, 2 ^ 31)
local zc = arg_int(16, 1, BR_EVENT_ZONES_MAX)
local wr = 17 + 4 * zc -- issue 13: the waiting room's five spec fields
local at = wr + 5
if #ARGV ~= at + 5 + 2 * zc + 3 then
    fail('rebuild with ' .. #ARGV .. ' arguments for ' .. zc .. ' zones')
end
OUT[3] = eid
if redis.call('EXISTS', P .. 'ev') == 1 then
    return reply(BR_E_DUPLICATE)
end
local pseq, hseq, yseq = arg_int(at, 0, W32 - 1), arg_int(at + 1, 0, W32 - 1),
                         arg_int(at + 2, 0, W32 - 1)
local piss, qtail = arg_int(at + 3, 0, W32 - 1), arg_int(at + 4, 0, 2 ^ 31)
local holds, pays, pevs = ARGV[at + 5 + 2 * zc], ARGV[at + 6 + 2 * zc], ARGV[at + 7 + 2 * zc]

-- Everything parsed before the first write.
local hf, live, tix, bk = {}, {}, {}, {}
for s = BR_HOLD_HELD, BR_HOLD_REFUNDED do
    bk[s] = 0
end
local nh = 0
for seq, rec in string.gmatch(holds, '(%d+):([^;]+);') do
    local user, qty, st, dl = smatch(rec, '^(%d+):%d+:(%d+):(%d+):%d+:(%d+):%d+:%d+:%d+:%d+$')
    st = tonumber(st)
    if user == nil or bk[st] == nil or tonumber(seq) > hseq then
        fail('rebuild hold ' .. seq .. ' = ' .. rec)
    end
    hf[#hf + 1] = 'h:' .. seq
    hf[#hf + 1] = rec
    bk[st] = bk[st] + 1
    if st == BR_HOLD_HELD then
        live[#live + 1] = dl
        live[#live + 1] = pad(tonumber(seq))
    end
    if st == BR_HOLD_HELD or st == BR_HOLD_CONFIRMED then
        tix[user] = (tix[user] or 0) + tonumber(qty)
    end
    nh = nh + 1
end
local yf, due, chk = {}, {}, {}
for seq, hold, st, amt, cr, att, nx, cms, ccl in
    string.gmatch(pays, '(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+);') do
    cms, ccl = tonumber(cms), tonumber(ccl)
    if tonumber(seq) > yseq or ccl > 1 or
        (cms ~= 0 and (cms < BR_PAYMENT_CHECK_MS_MIN or cms > BR_PAYMENT_CHECK_MS_MAX)) then
        fail('rebuild payment ' .. seq)
    end
    local y = {'y:' .. seq, 'hold', hold, 'st', st, 'amt', amt, 'created', cr, 'att', att,
               'next', nx}
    if tonumber(st) == BR_PAY_REFUND_PENDING then
        due[#due + 1] = nx
        due[#due + 1] = pad(tonumber(seq))
    end
    if cms > 0 then
        -- core: the check heap holds a payment pending or failed, with
        -- check_ms, not closed (br_saga_check)
        local open = (tonumber(st) == BR_PAY_PENDING or tonumber(st) == BR_PAY_FAILED) and ccl == 0
        y[#y + 1], y[#y + 2] = 'cms', cms
        y[#y + 1], y[#y + 2] = 'catt', 0
        y[#y + 1], y[#y + 2] = 'cnext', open and NOW + cms or 0
        y[#y + 1], y[#y + 2] = 'ccl', ccl
        if open then
            chk[#chk + 1] = NOW + cms
            chk[#chk + 1] = pad(tonumber(seq))
        end
    end
    yf[#yf + 1] = y
end
local pv = {}
for id in string.gmatch(pevs, '(%d+);') do
    pv[#pv + 1] = id
end

-- The event's hash: the spec as event_put writes it, then the counters.
local DOC = "br:{e}:ev -- the event's spec and counters, kept a hash table by this long value"
local args = {'doc', DOC, 'id', eid, 'owner', arg_u64(2), 'name', ARGV[5], 'venue', ARGV[6],
              'starts', ARGV[7], 'opens', ARGV[8], 'limit', ARGV[9], 'rp', ARGV[10],
              'maxa', ARGV[11], 'apt', ARGV[12], 'pttl', ARGV[13], 'httl', ARGV[14],
              'qcap', qcap, 'zc', zc, 'inc', arg_int(at + 8 + 2 * zc, 1, 2 ^ 53 - 1),
              'shuf', 0, 'qpre', 0, 'qtail', qtail, 'qwait', 0,
              'pact', 0, 'piss', piss, 'pseq', pseq, 'hseq', hseq, 'yseq', yseq}
-- Issue 13: the waiting room's spec, and its live controls as
-- event_create starts them (the record keeps no live mode, max_active,
-- pacing or rate: an operator sets them again after a loss).
WR.spec_args(args, wr)
for s = BR_HOLD_HELD, BR_HOLD_REFUNDED do
    args[#args + 1] = BK[s]
    args[#args + 1] = bk[s]
end
for z = 1, zc do
    local a = 17 + 4 * (z - 1)
    for _, kv in ipairs({{'zname', ARGV[a]}, {'cap', ARGV[a + 1]}, {'price', ARGV[a + 2]},
                         {'cur', ARGV[a + 3]}, {'held', ARGV[at + 4 + z]},
                         {'sold', ARGV[at + 4 + zc + z]}}) do
        args[#args + 1] = kv[1] .. z
        args[#args + 1] = kv[2]
    end
end
for user, n in pairs(tix) do
    args[#args + 1] = 'm:' .. user
    args[#args + 1] = sformat('%d:0:%d', BR_QS_NONE, n)
end
redis.call('HSET', P .. 'ev', unpack(args))
-- In chunks: unpack has a limit on the values it returns at once.
local function chunks(cmd, key, t)
    local i = 1
    while i <= #t do
        local j = math.min(i + 999, #t)
        redis.call(cmd, key, unpack(t, i, j))
        i = j + 1
    end
end
chunks('HSET', P .. 'ev', hf)
chunks('ZADD', P .. 'holds', live)
for i = 1, #yf do
    local y = yf[i]
    y[1] = P .. y[1]
    redis.call('HSET', unpack(y))
end
chunks('ZADD', P .. 'refunds', due)
chunks('ZADD', P .. 'checks', chk)
chunks('SADD', P .. 'pev', pv)
OUT[9] = nh
return reply(BR_OK)
