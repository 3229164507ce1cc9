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

The hot path of an on-sale, so written for Redis's cost: one HMGET of the
event's counters, the member and the pass, the spec from lib.lua's cache,
records built as strings (no table per hold), then one HSET (in reply(): the
hold, the member, the pass, the counters), a ZADD, the ZREM of the pass
consumed and the log's XADD. lua/README.md "The cost of a reserve" has the figures.
]]
local Q_PASSTHROUGH = SMALLS[Q.QM_PASSTHROUGH] -- the stored mode, a string
log_command()
local uid = arg_u64(2)
local known = arg_small(3, 0, 1)
local zone = arg_small(4, 0, W32 - 1)
local qty = arg_small(5, 0, W32 - 1)
local pass_id = arg_u64(6)
local key = arg_u64(7)
local fp = key ~= '0' and arg_u64(8) -- used only with a key
local claim = arg_small(9, 0, 2)

-- One read of the event: the member's record, the event's token (its spec
-- comes from lib.lua's cache while the token is the one it was read with)
-- and the zone's counters (any zone's when this one cannot exist: the
-- answer is NOT_FOUND then).
-- The pass, when one is named, is read in the same HMGET (a field of the
-- event's hash, lib.lua): its seq is taken from the id before the event's
-- own id is known, and used only when the id names this event (seq_of).
local zf = ZF[zone] or ZF[1]
local mfield = 'm:' .. uid
local pass_e, pass_s = false, false
if pass_id ~= '0' then
    local id = tonumber(pass_id)
    if id >= W32 then
        pass_e = floor(id / W32)
        pass_s = id - pass_e * W32
        if pass_s < 1 then
            pass_s = false
        end
    end
end
local pass_f = '0' -- the pass's seq as a string (a field name, the hold's `pass`)
local v
if pass_s then
    pass_f = dec(pass_s)
    v = redis.call('HMGET', K_EV, mfield, 'inc', 'hseq', 'pact', BK[BR_HOLD_HELD], zf.held,
                   zf.sold, 'mode', 'p:' .. pass_f)
else
    v = redis.call('HMGET', K_EV, mfield, 'inc', 'hseq', 'pact', BK[BR_HOLD_HELD], zf.held,
                   zf.sold, 'mode')
end
local sp = spec_get(v[2])
EV.id = sp.id -- reply() reads it
if sp.id == nil or ZF[zone] == nil or zone > sp.zc then
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
local seq = 0
repeat
    if NOW < sp.opens then
        rc = BR_E_SALE_NOT_OPEN
        break
    end
    -- The member record is made only together with the hold, so a refused
    -- reserve changes nothing; without one the user has no pass and no
    -- tickets. Member and pass are parsed here into locals, not into
    -- lib.lua's tables (a table per record costs more than the rest of it).
    local mrec = v[1]
    local m_st, m_pass, tix, m_seen = BR_QS_NONE, '0', 0, ''
    if mrec then
        local a, b, c, d = smatch(mrec, '^(%d+):(%d+):(%d+)(.*)$')
        if a == nil then
            broken('member ' .. uid .. ' = ' .. mrec)
        end
        m_st, m_pass, tix, m_seen = num(a), b, num(c), d -- d: ":<seen>" or '' (lib.lua)
    end
    local phead, piss = nil, nil
    -- Issue 13 (WR-SPEC 4): in passthrough mode the hold needs no pass and
    -- a pass given is ignored.
    if sp.rp == 1 and v[8] ~= Q_PASSTHROUGH then
        if pass_id == '0' then
            rc = BR_E_PASS_REQUIRED
            break
        end
        -- core: the pass's id names this event and an issued pass, of this
        -- user, not used yet
        local prec = pass_s and pass_e == sp.id and v[9]
        local puid, pdl, pst
        if prec then
            phead, puid, pdl, pst, piss = smatch(prec, '^((%d+):(%d+):)(%d+):(%d+)$')
            if phead == nil then
                broken('pass ' .. pass_s .. ' = ' .. prec)
            end
            pst = num(pst)
        end
        if not prec or not mrec or puid ~= uid or pst == BR_PASS_USED then
            rc = BR_E_PASS_INVALID
            break
        end
        if pst == BR_PASS_EXPIRED or lapsed(tonumber(pdl)) then
            rc = BR_E_PASS_EXPIRED
            break
        end
    end
    if tix + qty > sp.limit then
        rc = BR_E_LIMIT_EXCEEDED
        break
    end
    local cap, held, sold = sp[zf.cap], num(v[6]), num(v[7])
    if held + sold > cap then
        broken('zone ' .. zone .. ' oversold')
    end
    if cap - held - sold < qty then
        rc = BR_E_SOLD_OUT
        break
    end
    -- The hold (lib.lua's hold record, written whole), the counters, the
    -- sweep's zset, the pass consumed, the member's tickets.
    seq = num(v[3]) + 1
    local dl = NOW + sp.httl
    local amt = sp[zf.price] * qty
    local pass = phead and pass_s or 0
    local seqs, dls = dec(seq), dec(dl)
    ev_put_str('h:' .. seqs, uid .. ':' .. dec(zone) .. ':' .. dec(qty) .. ':' ..
                   dec(BR_HOLD_HELD) .. ':' .. dec(NOW) .. ':' .. dls .. ':' .. dec(amt) .. ':' ..
                   (phead and pass_f or '0') .. ':0:0')
    ev_put_str('hseq', seqs)
    ev_put_str(zf.held, dec(held + qty))
    ev_put_str(BK[BR_HOLD_HELD], dec(num(v[5]) + 1))
    redis.call('ZADD', K_HOLDS, dls, pad(seq))
    if phead then -- core: br_queue_pass_consume (lib.lua: pass_set_state)
        redis.call('ZREM', P .. 'passes', pad(pass_s))
        ev_put_str('p:' .. pass_f, phead .. dec(BR_PASS_USED) .. ':' .. piss)
        ev_put_str('pact', dec(num(v[4]) - 1))
    end
    if not mrec then
        ev_put_str(mfield, dec(BR_QS_NONE) .. ':0:' .. dec(qty))
    else
        -- lib.lua: member_save
        if phead and m_pass == pass_f then
            m_st = BR_QS_USED
        end
        ev_put_str(mfield, dec(m_st) .. ':' .. m_pass .. ':' .. dec(tix + qty) .. m_seen)
    end
    -- core: fill_hold
    OUT[2] = BR_HOLD_HELD
    OUT[3] = sp.id * W32 + seq
    OUT[4] = pass ~= 0 and sp.id * W32 + pass or 0
    OUT[7] = dl
    OUT[8] = amt
    OUT[9] = qty
until true
if key ~= '0' and rc ~= BR_E_FULL then
    -- Every definite answer is kept, failures included.
    redis.call('HSET', P .. 'idem', idem_field, fp .. ':' .. dec(rc) .. ':' .. dec(seq))
    OUT[10] = 1
end
return reply(rc)
