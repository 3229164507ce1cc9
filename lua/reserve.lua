--[[
reserve.lua -- reserve: claim seats in a zone while the buyer pays.
Twin of br_inventory_reserve (core/inventory.c), checking in its order:
  1. the event and zone exist; the user is registered; 1 <= quantity <= max
  2. the idempotency key: same key + same request = the stored answer,
     same key + another request = BR_E_IDEMPOTENCY_CONFLICT
  3. the sale is open; 4. the pass, when the event requires one (validated
     and consumed here, in the same script as the seats)
  5. the per-user limit over the whole sale; 6. availability
then records the hold with deadline now + hold_ttl_ms.

Idempotency keys are per user across all events (as in the core), but this
script sees one event. So the adapter first claims the key in the user's
slot (SET br:{u<user>}:idem:<key> <fingerprint> NX GET) and passes what it
found as `claim`; the answer itself is kept here, in the event's slot, under
"<user>:<key>" in br:{e}:idem. The fingerprint names the event, so a key
claimed with the same fingerprint was claimed for this event.

KEYS[1]  br:{e<event>}:
ARGV     now_ms, user_id, user_known (0/1), zone_id, quantity, pass_id (0 =
         none), idem_key (u64 decimal, 0 = none), fingerprint (u64 decimal),
         claim (0 = unclaimed before or no key, 1 = claimed with this
         fingerprint, 2 = claimed with another fingerprint)
         + last: the command's journal record (logged, lib.lua)
Reply    the outcome (lib.lua): the hold (id, ref = pass, status, deadline,
         amount, count = quantity). aux = 1 when an idempotency record was
         written (the adapter releases a fresh claim otherwise). No effects.
]]
log_command()
local uid = arg_u64(2)
local known = arg_int(3, 0, 1)
local zone = arg_int(4, 0, W32 - 1)
local qty = arg_int(5, 0, W32 - 1)
local pass_id = arg_u64(6)
local key = arg_u64(7)
local fp = arg_u64(8)
local claim = arg_int(9, 0, 2)

-- One read of the event: its rules, counters and the asked zone's seats
-- (field lists made once per zone, lib.lua).
local zf = ZF[zone]
local mrec = ev_load_list_and('m:' .. uid, RESERVE_FIELDS[zone] or RESERVE_FIELDS[0])
if EV.id == nil or zf == nil or zone > EV.zc then
    return reply(BR_E_NOT_FOUND)
end
if known == 0 then
    EXTERNAL = true -- decided in {cat}: the log marks it (lib.lua)
    return reply(BR_E_UNAUTHORIZED)
end
if qty < 1 or qty > BR_HOLD_QUANTITY_MAX then
    return reply(BR_E_INVALID)
end
local idem_field
if key ~= '0' then
    idem_field = uid .. ':' .. key
    if claim == 2 then
        -- The key was claimed by another request: of this event when its
        -- answer is kept here, else of another event (then the core
        -- replaying this event's log alone could not know: marked).
        EXTERNAL = redis.call('HEXISTS', P .. 'idem', idem_field) == 0
        return reply(BR_E_IDEMPOTENCY_CONFLICT)
    end
    local rec = redis.call('HGET', P .. 'idem', idem_field)
    if rec then
        local rfp, rerr, rhold = smatch(rec, '^(%d+):(%-?%d+):(%d+)$')
        if rfp == nil then
            broken('idem record ' .. idem_field .. ' = ' .. rec)
        end
        if rfp ~= fp then
            return reply(BR_E_IDEMPOTENCY_CONFLICT)
        end
        if rhold ~= '0' then
            fill_hold(hold_load(tonumber(rhold))) -- current state, same hold
        end
        return reply(tonumber(rerr))
    end
end

-- The checks and the claim, without the idempotency record (core: reserve):
-- one pass of a loop left with break (not a function: a closure over this
-- call's locals would be made on every call).
local rc = BR_OK
repeat
    if NOW < EV.opens then
        rc = BR_E_SALE_NOT_OPEN
        break
    end
    -- The member record is made only together with the hold, so a refused
    -- reserve changes nothing; without one the user has no pass and no tickets.
    local m = member_parse(uid, mrec)
    local p = nil
    if EV.rp == 1 then
        if pass_id == '0' then
            rc = BR_E_PASS_REQUIRED
            break
        end
        local pseq = seq_of(tonumber(pass_id))
        p = pseq and pass_load(pseq)
        if p == nil or m == nil or p.uid ~= uid or p.st == BR_PASS_USED then
            rc = BR_E_PASS_INVALID
            break
        end
        if p.st == BR_PASS_EXPIRED or lapsed(p.dl) then
            rc = BR_E_PASS_EXPIRED
            break
        end
    end
    local tix = m and m.tix or 0
    if tix + qty > EV.limit then
        rc = BR_E_LIMIT_EXCEEDED
        break
    end
    local cap, held, sold = EV[zf.cap], EV[zf.held], EV[zf.sold]
    if held + sold > cap then
        broken('zone ' .. zone .. ' oversold')
    end
    if cap - held - sold < qty then
        rc = BR_E_SOLD_OUT
        break
    end
    local seq = EV.hseq + 1
    local h = {seq = seq, uid = uid, user = tonumber(uid), zone = zone, qty = qty,
               st = BR_HOLD_HELD, created = NOW, dl = NOW + EV.httl,
               amt = EV[zf.price] * qty, pass = p and p.seq or 0, pay = 0, conf = 0}
    hold_save(h)
    redis.call('ZADD', K_HOLDS, sformat('%d', h.dl), pad(seq))
    ev_put('hseq', seq)
    ev_put(zf.held, held + qty)
    ev_put(BK[BR_HOLD_HELD], EV[BK[BR_HOLD_HELD]] + 1)
    if p then -- core: br_queue_pass_consume
        redis.call('ZREM', P .. 'passes', pad(p.seq))
        redis.call('HSET', P .. 'p:' .. p.seq, 'st', BR_PASS_USED)
        ev_put('pact', EV.pact - 1)
    end
    if m == nil then
        member_new(uid, BR_QS_NONE, qty)
    else
        m.tix = tix + qty
        if p and m.pass == p.seq then
            m.st = BR_QS_USED
        end
        member_save(m)
    end
    fill_hold(h)
    rc = BR_OK
    break
until true
if key ~= '0' and rc ~= BR_E_FULL then
    -- Every definite answer is kept, failures included.
    local hseq = rc == BR_OK and EV.hseq or 0
    redis.call('HSET', P .. 'idem', idem_field, sformat('%s:%d:%d', fp, rc, hseq))
    OUT[10] = 1
end
return reply(rc)
