--[[
lib.lua -- the shared part of the Booking Rush Functions library.

Not a script by itself: the build (lua/embed.c) makes one library (FUNCTION
LOAD) of the constants generated from core/err.h, core/cmd.h,
core/limits.h and core/queue.h (BR_OK, BR_E_SOLD_OUT, BR_QS_WAITING,
BR_FX_PASS_ISSUED, ...), this file, then every script as a function, so
every script speaks the core's numbers and none of them is typed twice.
This file's top level runs once, when the library is loaded; each call
starts with begin(), which sets the per-call state below afresh.

Conventions every script follows:
  KEYS[1]  the key prefix of the slot it works in: "br:{e42}:" for an event,
           "br:{cat}:" for the catalog. Every key a script touches is
           KEYS[1] .. suffix, so one call stays in one Cluster slot.
  ARGV[1]  now_ms, the driver's clock. No script calls TIME; expiry compares
           stored deadlines with now_ms, never a key TTL.
  ARGV[#ARGV]  in the scripts that log (log_command()): the command's
           journal record, appended to the event's log with the reply.
  reply    {err, status, id, ref, position, queue_length, deadline_ms,
            amount_minor, count, aux, fx...}: the nine fields of struct
           br_outcome in order (effect_count and effects_hash are computed
           by the adapter from the effects), aux (script-specific, 0 unless
           documented), then the effects, six integers each:
           kind, user_id, id, ref, deadline_ms, amount_minor (the event is the
           script's own).
Arguments are checked before anything is written: a bad argument is the
adapter's bug and raises "BR_ARG ..." (the adapter asserts on it). A broken
invariant found in stored data raises "BR_ASSERT ...".

Numbers: Lua numbers are doubles. Ids are (event_id * 2^32 + seq) < 2^53 and
times are 0 <= now_ms <= BR_NOW_MS_MAX = 2^52 (the core refuses others too),
so both are exact, and so is every deadline computed from them.
64-bit hashes (idempotency keys, fingerprints, provider event ids) travel as
decimal strings and are only ever compared or used as strings.
]]
local W32 = 4294967296

-- The library functions used on every call, as upvalues: a global such as
-- `string` is a table lookup, then `format` another, each time. Redis does
-- not let a library's load see the standard libraries: begin() sets them
-- at the first call.
local sformat, sfind, smatch, sbyte, sgsub, srep, floor

-- Per-call state: the library is loaded once and its functions run one at
-- a time, so begin() sets all of this afresh at the start of every call and
-- nothing is carried from one call to the next. The tables are made once
-- and emptied by begin() rather than made per call: a table costs Redis
-- about as much as a command argument list to make and collect (OUT is
-- turned into the reply as the call returns, before the next one starts).
local KEYS, ARGV, P, NOW
local OUT, FX, EV, EV_STR = {}, {}, {}, {}
local LOG_C, EXTERNAL
local SCRATCH_ARGS = {} -- reply()'s HSET arguments

-- The hot keys of the slot, made again only when the prefix changes (a
-- string concatenation allocates and hashes: most calls in a row are for
-- the same event).
local K_EV, K_HOLDS, K_LOG

-- Field names made once, at load: 'bk' .. state and the zone fields.
-- (Concatenating a number formats it with %.14g, which costs more than the
-- rest of the concatenation.)
local BK = {}
for st = 0, 15 do
    BK[st] = 'bk' .. st
end
local ZF = {}
for z = 1, BR_EVENT_ZONES_MAX do
    ZF[z] = {cap = 'cap' .. z, held = 'held' .. z, sold = 'sold' .. z, price = 'price' .. z}
end

-- The events' specs, which no script changes once event_put.lua or
-- rebuild.lua wrote them, cached by key prefix: a cached spec is used only
-- while the event's `inc` (a token the adapter draws for each event it
-- writes, below 2^53) is the one it was read with, so an event written
-- again under the same key (a flushed database, a rebuild) is read again.
-- The cache lives as long as the library (a reload empties it).
local SPEC_FIELDS = {'id', 'opens', 'rp', 'limit', 'httl', 'zc'}
for z = 1, BR_EVENT_ZONES_MAX do
    SPEC_FIELDS[#SPEC_FIELDS + 1] = ZF[z].cap
    SPEC_FIELDS[#SPEC_FIELDS + 1] = ZF[z].price
end
local SPECS = {}

-- The decimal strings of 0..1023 and their values: small arguments are
-- looked up rather than parsed (tonumber is strtod, the costliest step of
-- an argument), and a string found here is canonical.
local SMALL, SMALLS = {}, {}
for i = -64, 1023 do
    SMALL['' .. i] = i
    SMALLS[i] = '' .. i
end

-- A stored decimal integer as a number: looked up when small (a flag, a
-- state, a count), parsed otherwise.
local function num(s)
    return SMALL[s] or tonumber(s)
end

local function fail(what)
    error({err = 'BR_ARG ' .. what})
end

local function broken(what)
    error({err = 'BR_ASSERT ' .. what})
end

-- ARGV[i] as an integer in [lo, hi]; anything else is the adapter's bug.
local function arg_int(i, lo, hi)
    local v = tonumber(ARGV[i])
    if v == nil or v ~= floor(v) or v < lo or v > hi then
        fail('ARGV[' .. i .. '] = ' .. tostring(ARGV[i]))
    end
    return v
end

-- ARGV[i] as an integer in [lo, hi] when it is usually small (a zone, a
-- quantity, a flag): looked up in SMALL, parsed only when not there.
local function arg_small(i, lo, hi)
    local v = SMALL[ARGV[i]]
    if v == nil then
        return arg_int(i, lo, hi)
    end
    if v < lo or v > hi then
        fail('ARGV[' .. i .. '] = ' .. ARGV[i])
    end
    return v
end

-- ARGV[i], the decimal digits of an unsigned 64-bit value, as the canonical
-- string (no leading zeros: keys and comparisons use it). The adapter sends
-- canonical strings; redis-benchmark's __rand_int__ is zero-padded.
local function arg_u64(i)
    local s = ARGV[i]
    if s == '0' then
        return s
    end
    if s == nil or not sfind(s, '^%d+$') then
        fail('ARGV[' .. i .. '] = ' .. tostring(s))
    end
    if #s > 1 and sbyte(s, 1) == 48 then
        s = sgsub(s, '^0+(%d)', '%1')
    end
    if #s > 20 then
        fail('ARGV[' .. i .. '] = ' .. s)
    end
    return s
end

-- Every call starts here (the callbacks embed.c registers): KEYS[1] is the
-- slot's key prefix, ARGV[1] the clock, checked by every script.
local function begin(keys, args)
    if sformat == nil then
        sformat, sfind, smatch, sbyte = string.format, string.find, string.match, string.byte
        sgsub, srep, floor = string.gsub, string.rep, math.floor
    end
    KEYS = keys
    ARGV = args
    if keys[1] ~= P then
        P = keys[1]
        if P == nil then
            fail('no key prefix')
        end
        K_EV, K_HOLDS, K_LOG = P .. 'ev', P .. 'holds', P .. 'log'
    end
    for i = #OUT, 11, -1 do
        OUT[i] = nil
    end
    for i = 1, 10 do
        OUT[i] = 0
    end
    for i = #FX, 1, -1 do
        FX[i] = nil
    end
    for k in pairs(EV) do
        EV[k] = nil
    end
    for k in pairs(EV_STR) do
        EV_STR[k] = nil
    end
    LOG_C = nil
    EXTERNAL = false
    NOW = arg_int(1, 0, BR_NOW_MS_MAX)
end

-- The event log (lua/README.md "The event log"): a script that changes an
-- event calls this first; reply() then appends one entry to br:{e}:log with
-- the command's journal record (the last ARGV, bytes the adapter encoded
-- and this library never parses) and the reply. A record is at least its
-- 8-byte head.
local function log_command()
    LOG_C = ARGV[#ARGV]
    if LOG_C == nil or #LOG_C < 8 then
        fail('no journal record as the last argument')
    end
end

-- A decimal string of an integer-valued number (exact below 2^53).
-- A pass or hold lapses exactly at its deadline: live while NOW < dl (the
-- twin of br_lapsed in core/cmd.h).
local function lapsed(dl)
    return NOW >= dl
end

local function dec(n)
    return SMALLS[n] or sformat('%d', n)
end

-- Zset members are zero-padded sequence numbers, so that the zset's tie
-- break (lexicographic) is the core heaps' tie break (by id).
local function pad(seq)
    return sformat('%010d', seq)
end

local function emit(kind, user, id, ref, deadline, amount)
    local n = #FX
    FX[n + 1] = kind
    FX[n + 2] = user
    FX[n + 3] = id
    FX[n + 4] = ref
    FX[n + 5] = deadline
    FX[n + 6] = amount
end

-- Loads event fields (HMGET) into EV as numbers; a missing field is nil.
local function ev_load_list(names)
    local vals = redis.call('HMGET', K_EV, unpack(names))
    for i = 1, #names do
        EV[names[i]] = tonumber(vals[i])
    end
end

local function ev_load(...)
    ev_load_list({...})
end

-- The event's spec (a table of SPEC_FIELDS as numbers, nil when missing),
-- from the cache when inc (the event's token as read in this call, a
-- string; false when the event has none) is the cached one's.
local function spec_get(inc)
    local sp = SPECS[P]
    if sp == nil or sp.inc ~= inc or not inc then
        local vals = redis.call('HMGET', K_EV, unpack(SPEC_FIELDS))
        sp = {inc = inc}
        for i = 1, #SPEC_FIELDS do
            sp[SPEC_FIELDS[i]] = tonumber(vals[i])
        end
        if inc then
            SPECS[P] = sp
        end
    end
    return sp
end

-- Sets an event field in EV; written back by reply() in one HSET. A field
-- a script changes with HINCRBY (held*, sold*, bk* when a hold changes
-- state) is never also set through here in the same script, so the two
-- never fight over a field (reserve, the hot path, sets them here).
local function ev_put(field, value)
    EV[field] = value
    EV_STR[field] = dec(value)
end

-- Records and other string fields of the event's hash (a hold "h:<seq>", a
-- member "m:<user>"): written by reply() in the same HSET as the counters,
-- and read back from here first within the call.
local function ev_put_str(field, value)
    EV_STR[field] = value
end

local function ev_get_str(field)
    local v = EV_STR[field]
    if v == nil then
        v = redis.call('HGET', K_EV, field)
    end
    return v
end

-- The reply as the log's "o" field: the integers joined by ',', formatted
-- with %d in one string.format (exact for every integer below 2^53; Lua's
-- own number-to-string uses %.14g, which is slower and rounds above 10^14).
local JOIN_FMT = {} -- n -> '%d,%d,...' (n times), made once per n
local function joined(t)
    local n = #t
    local f = JOIN_FMT[n]
    if f == nil then
        f = srep('%d,', n - 1) .. '%d'
        JOIN_FMT[n] = f
    end
    return sformat(f, unpack(t))
end

-- Ends a call: the event's changed fields in one HSET, the log entry when
-- the script logs and the event exists (a command naming a missing event
-- leaves no stream behind; not for BR_REDIS_NEED_OPEN either: nothing was
-- written and the command runs again), and the reply.
local function reply(err)
    local args = SCRATCH_ARGS
    local n = 1
    args[1] = K_EV
    for f, v in pairs(EV_STR) do
        args[n + 1] = f
        args[n + 2] = v
        n = n + 2
    end
    for i = #args, n + 1, -1 do
        args[i] = nil
    end
    if n > 1 then
        redis.call('HSET', unpack(args))
    end
    OUT[1] = err
    for i = 1, #FX do
        OUT[10 + i] = FX[i]
    end
    if LOG_C and EV.id and err ~= BR_REDIS_NEED_OPEN then
        if EXTERNAL then
            redis.call('XADD', K_LOG, '*', 'c', LOG_C, 'o', joined(OUT), 'x', '1')
        else
            redis.call('XADD', K_LOG, '*', 'c', LOG_C, 'o', joined(OUT))
        end
    end
    return OUT
end

-- The sequence number of an id of this event, or nil when the id belongs to
-- another event or to none (ids are event_id * 2^32 + seq, seq >= 1).
local function seq_of(id)
    if id == nil or id < W32 then
        return nil
    end
    local e = floor(id / W32)
    if e ~= EV.id then
        return nil
    end
    local s = id - e * W32
    if s < 1 then
        return nil
    end
    return s
end

-- ---- members: field "m:<user>" of br:{e}:ev = "st:pass:tix" (pass =
--      seq, 0 = none): a field of the event's hash, not a key per member,
--      so reserve reads it with the event and writes it with the hold ----

-- The member from its stored value v (false when none). Issue 13: a
-- fourth field, seen (the member's last sign of life, core seen_ms), is
-- there only when not 0, so members of events without presence keep the
-- old three-field record.
local function member_parse(uid, v)
    if not v then
        return nil
    end
    local st, pass, tix, seen = smatch(v, '^(%d+):(%d+):(%d+):?(%d*)$')
    if st == nil then
        broken('member ' .. uid .. ' = ' .. v)
    end
    return {uid = uid, st = tonumber(st), pass = tonumber(pass), tix = tonumber(tix),
            seen = tonumber(seen) or 0}
end

local function member_find(uid)
    return member_parse(uid, ev_get_str('m:' .. uid))
end

local function member_save(m)
    local v = dec(m.st) .. ':' .. dec(m.pass) .. ':' .. dec(m.tix)
    if m.seen ~= nil and m.seen ~= 0 then
        v = v .. ':' .. dec(m.seen)
    end
    ev_put_str('m:' .. m.uid, v)
end

-- Creates the member (core: br_queue_member) with its first status and
-- tickets: the callers know it does not exist yet.
local function member_new(uid, st, tix)
    local m = {uid = uid, st = st, pass = 0, tix = tix, seen = 0}
    member_save(m)
    return m
end

-- The opening shuffle turns every pre-queue member into a waiting one. It
-- does so without touching them: a stored PREQUEUE reads as WAITING once
-- the event is shuffled (EV.shuf must be loaded).
local function mstatus(m)
    if m.st == BR_QS_PREQUEUE and EV.shuf == 1 then
        return BR_QS_WAITING
    end
    return m.st
end

-- ---- passes: field "p:<seq>" of br:{e}:ev = "user:dl:st:iss" (a field
--      of the event's hash like members and holds, so reserve reads the
--      pass in its one HMGET and writes it in reply()'s one HSET); live
--      ones in zset passes by deadline ----

-- The pass from its stored value v (false/nil when none).
local function pass_parse(seq, v)
    if not v then
        return nil
    end
    local head, u, dl, st, iss = smatch(v, '^((%d+):(%d+):)(%d+):(%d+)$')
    if head == nil then
        broken('pass ' .. seq .. ' = ' .. v)
    end
    return {seq = seq, uid = u, user = tonumber(u), dl = tonumber(dl), st = tonumber(st),
            head = head, iss = iss}
end

local function pass_load(seq)
    return pass_parse(seq, ev_get_str('p:' .. dec(seq)))
end

-- Writes the pass with state st: the record as read with its state
-- replaced (user, dl and iss never change once issued).
local function pass_set_state(p, st)
    p.st = st
    ev_put_str('p:' .. dec(p.seq), p.head .. dec(st) .. ':' .. p.iss)
end

-- core: pass_expire. Needs EV.pact loaded. m: the pass's member if loaded.
local function pass_expire(p, m)
    if p.st ~= BR_PASS_LIVE then
        broken('pass_expire: pass ' .. p.seq .. ' is not live')
    end
    redis.call('ZREM', P .. 'passes', pad(p.seq))
    pass_set_state(p, BR_PASS_EXPIRED)
    if EV.pact < 1 then
        broken('pass_expire: no active pass to expire')
    end
    ev_put('pact', EV.pact - 1)
    m = m or member_find(p.uid)
    if m.pass == p.seq and m.st == BR_QS_ADMITTED then
        m.st = BR_QS_EXPIRED
        member_save(m)
    end
    emit(BR_FX_PASS_EXPIRED, p.user, EV.id * W32 + p.seq, 0, p.dl, 0)
end

-- core: br_queue_open_if_due. Needs EV.shuf, EV.opens, EV.qpre loaded, and
-- must run before the script writes anything. Returns nil when the queue may
-- be used now, else the reply asking the adapter for the permutation
-- (err = BR_REDIS_NEED_OPEN, aux = pre-queue slots): it draws the core's
-- Fisher-Yates permutation with core/rng.c and runs open.lua, then this
-- command again. With fewer than two slots there is nothing to permute.
local function open_if_due()
    if EV.shuf == 1 or NOW < EV.opens then
        return nil
    end
    if EV.qpre >= 2 then
        OUT[10] = EV.qpre
        return reply(BR_REDIS_NEED_OPEN)
    end
    ev_put('shuf', 1)
    return nil
end

-- ---- holds: field "h:<seq>" of br:{e}:ev = "user:zone:qty:st:created:
--      dl:amt:pass:pay:conf" (pass, pay, conf = seqs, 0 = none); live ones
--      in zset holds by deadline ----

local HOLD_PATTERN = '^(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+)$'

local function hold_load(seq)
    if seq == nil then
        return nil
    end
    local v = ev_get_str('h:' .. dec(seq))
    if not v then
        return nil
    end
    local u, z, q, st, cr, dl, amt, pass, pay, conf = smatch(v, HOLD_PATTERN)
    if u == nil then
        broken('hold ' .. seq .. ' = ' .. v)
    end
    return {seq = seq, uid = u, user = tonumber(u), zone = tonumber(z), qty = tonumber(q),
            st = tonumber(st), created = tonumber(cr), dl = tonumber(dl), amt = tonumber(amt),
            pass = tonumber(pass), pay = tonumber(pay), conf = tonumber(conf)}
end

local function hold_save(h)
    ev_put_str('h:' .. dec(h.seq),
               h.uid .. ':' .. dec(h.zone) .. ':' .. dec(h.qty) .. ':' .. dec(h.st) .. ':' ..
                   dec(h.created) .. ':' .. dec(h.dl) .. ':' .. dec(h.amt) .. ':' .. dec(h.pass) ..
                   ':' .. dec(h.pay) .. ':' .. dec(h.conf))
end

local function hold_id(h)
    return EV.id * W32 + h.seq
end

-- core: fill_hold
local function fill_hold(h)
    OUT[3] = hold_id(h)
    OUT[4] = h.pass ~= 0 and EV.id * W32 + h.pass or 0
    OUT[2] = h.st
    OUT[7] = h.dl
    OUT[8] = h.amt
    OUT[9] = h.qty
end

-- core: set_state (the per-state booking counters are for the stats
-- route). Writes the hold, with any other field the caller changed.
local function hold_set_state(h, st)
    redis.call('HINCRBY', K_EV, BK[h.st], -1)
    redis.call('HINCRBY', K_EV, BK[st], 1)
    h.st = st
    hold_save(h)
end

-- core: release -- a live hold's seats leave `held`, its tickets the member.
local function hold_release(h)
    if h.st ~= BR_HOLD_HELD then
        broken('release: hold ' .. h.seq .. ' is not held')
    end
    redis.call('ZREM', K_HOLDS, pad(h.seq))
    local held = redis.call('HINCRBY', K_EV, ZF[h.zone].held, -h.qty)
    local m = member_find(h.uid)
    if held < 0 or m == nil or m.tix < h.qty then
        broken('release: hold ' .. h.seq .. ' returns more than is held')
    end
    m.tix = m.tix - h.qty
    member_save(m)
end

-- core: br_inventory_expire
local function hold_expire(h)
    hold_release(h)
    hold_set_state(h, BR_HOLD_EXPIRED)
    emit(BR_FX_BOOKING_EXPIRED, h.user, hold_id(h), 0, h.dl, 0)
end

-- ---- payments: br:{e}:y:<seq> = {hold (seq), st, amt, created, att, next};
--      refund-pending ones in zset refunds by next attempt ----

local function pay_load(seq)
    if seq == nil then
        return nil
    end
    local v = redis.call('HMGET', P .. 'y:' .. seq, 'hold', 'st', 'amt', 'att', 'next')
    if not v[1] then
        return nil
    end
    return {seq = seq, hold = tonumber(v[1]), st = tonumber(v[2]), amt = tonumber(v[3]),
            att = tonumber(v[4]), next = tonumber(v[5])}
end

-- core: fill_payment
local function fill_payment(p)
    OUT[3] = EV.id * W32 + p.seq
    OUT[4] = EV.id * W32 + p.hold
    OUT[2] = p.st
    OUT[8] = p.amt
end

-- core: emit_payment (effects about a payment name its hold's event and user)
local function emit_payment(kind, p, h)
    emit(kind, h.user, EV.id * W32 + p.seq, hold_id(h), 0, p.amt)
end

-- core: backoff_ms
local function backoff_ms(attempts)
    local d = BR_REFUND_BACKOFF_MS_MIN
    local i = 1
    while i < attempts and d < BR_REFUND_BACKOFF_MS_MAX do
        d = d * 2
        i = i + 1
    end
    if d < BR_REFUND_BACKOFF_MS_MAX then
        return d
    end
    return BR_REFUND_BACKOFF_MS_MAX
end

-- core: refund_attempt -- emits provider_refund and schedules the next try.
local function refund_attempt(p, h)
    p.att = p.att + 1
    p.next = NOW + backoff_ms(p.att)
    redis.call('HSET', P .. 'y:' .. p.seq, 'att', p.att, 'next', p.next)
    redis.call('ZADD', P .. 'refunds', p.next, pad(p.seq))
    emit_payment(BR_FX_PROVIDER_REFUND, p, h)
end

-- ---- point 8, the payment status checks (core: the check heap): fields
--      cms (check_ms, 0 = never), catt (checks made), cnext (next check),
--      ccl (1 = closed) of br:{e}:y:<seq>; payments awaiting a check in
--      zset checks by next check ----

-- Adds the check fields to a loaded payment (absent on a payment written
-- before point 8 or rebuilt without them: no checks).
local function check_load(p)
    local v = redis.call('HMGET', P .. 'y:' .. p.seq, 'cms', 'catt', 'cnext', 'ccl')
    p.cms = tonumber(v[1]) or 0
    p.catt = tonumber(v[2]) or 0
    p.cnext = tonumber(v[3]) or 0
    p.ccl = tonumber(v[4]) or 0
    return p
end

-- core: the payment leaves the check heap for good (closed) or because a
-- success decided it.
local function check_drop(p)
    redis.call('ZREM', P .. 'checks', pad(p.seq))
end

-- core: check_delay -- check_ms doubled per attempt (at most 2^20 times),
-- capped at BR_PAYMENT_CHECK_BACKOFF_MS_MAX.
local function check_delay(cms, attempts)
    local sh = attempts
    if sh > 20 then
        sh = 20
    end
    local d = cms * 2 ^ sh
    if d > BR_PAYMENT_CHECK_BACKOFF_MS_MAX then
        return BR_PAYMENT_CHECK_BACKOFF_MS_MAX
    end
    return d
end

-- ---- issue 13: the waiting room (twins of core/queue_gate.c). One table,
--      WR, for all of it: the library's top level may hold 200 locals. ----
--
-- Fields of br:{e}:ev: the spec's wapm (admit_per_min), prs
-- (presence_ttl_s), pow (pow_bits), qf (queue_flags), smode (mode); the live
-- controls mode, maxl (max_active), apm (admit_per_min), pcr (pace credit,
-- 1/60000 admissions), plast (pace last ms), told (inventory gate last
-- announced), lap (places lapsed) and rate, the admission-rate ring
-- "bucket_last:since_ms:n0:...:n29" (absent = none: bucket_last -1). An
-- event written before issue 13 has none of them: every switch off.
local WR = {}
WR.FIELDS = {'mode', 'maxl', 'apm', 'pcr', 'plast', 'told', 'lap', 'qf', 'prs', 'maxa', 'zc',
             'opens'}

-- Loads the waiting room's fields (WR.FIELDS) into EV with their defaults,
-- then the seats (WR.seats).
function WR.load()
    local v = redis.call('HMGET', K_EV, unpack(WR.FIELDS))
    for i = 1, #WR.FIELDS do
        EV[WR.FIELDS[i]] = tonumber(v[i])
    end
    EV.mode = EV.mode or 0
    EV.maxl = EV.maxl or EV.maxa
    EV.apm = EV.apm or 0
    EV.pcr = EV.pcr or 0
    EV.plast = EV.plast or 0
    EV.told = EV.told or 0
    EV.lap = EV.lap or 0
    EV.qf = EV.qf or 0
    EV.prs = EV.prs or 0
    EV.aware = EV.qf % 2 == Q.QF_INVENTORY_AWARE
    WR.seats()
end

-- core: br_queue_seats_available, br_queue_sold_out into EV.avail and
-- EV.soldout. Read only for an inventory-aware event (only its gate uses them).
function WR.seats()
    EV.avail, EV.soldout = 0, false
    if not EV.aware then
        return
    end
    local names = {}
    for z = 1, EV.zc do
        names[#names + 1] = ZF[z].cap
        names[#names + 1] = ZF[z].held
        names[#names + 1] = ZF[z].sold
    end
    local v = redis.call('HMGET', K_EV, unpack(names))
    local avail, soldout = 0, true
    for z = 1, EV.zc do
        local cap, held, sold = tonumber(v[3 * z - 2]), tonumber(v[3 * z - 1]), tonumber(v[3 * z])
        avail = avail + cap - held - sold
        if sold ~= cap then
            soldout = false
        end
    end
    EV.avail, EV.soldout = avail, soldout
end

-- core: the inventory gate inv(ev) (WR-SPEC 2)
function WR.inv()
    if EV.aware and EV.soldout then
        return Q.GATE_SOLD_OUT
    end
    if EV.aware and EV.avail == 0 then
        return Q.GATE_SEATS_HELD
    end
    return Q.GATE_OPEN
end

-- core: the event's waiting-room spec (ARGV[wr .. wr + 4]: admit_per_min,
-- presence_ttl_s, pow_bits, queue_flags, mode) and its live controls as
-- event_create starts them (WR-SPEC 1), appended to an HSET's field/value
-- list. event_put and rebuild share it (a rebuild starts the live
-- controls from the spec: the record keeps no live mode or pacing).
function WR.spec_args(args, wr)
    local apm = arg_int(wr, 0, Q.ADMIT_PER_MIN_MAX)
    for _, kv in ipairs({{'wapm', apm}, {'prs', arg_int(wr + 1, 0, Q.PRESENCE_TTL_S_MAX)},
                         {'pow', arg_int(wr + 2, 0, Q.POW_BITS_MAX)},
                         {'qf', arg_int(wr + 3, 0, 255)}, {'smode', ARGV[wr + 4]},
                         {'mode', ARGV[wr + 4]}, {'maxl', ARGV[11]}, {'apm', apm}, {'pcr', 0},
                         {'plast', apm > 0 and dec(NOW) or 0}, {'told', Q.GATE_OPEN},
                         {'lap', 0}}) do
        args[#args + 1] = kv[1]
        args[#args + 1] = kv[2]
    end
end

-- core: br_queue_gate -- the first match wins.
function WR.gate()
    if EV.mode == Q.QM_CLOSED then
        return Q.GATE_CLOSED
    end
    if EV.mode == Q.QM_PASSTHROUGH then
        return Q.GATE_PASSTHROUGH
    end
    if EV.aware and EV.soldout then
        return Q.GATE_SOLD_OUT
    end
    -- not open: before the opening unless the shuffle already ran (a
    -- driver's clock may step back over the opening; the sale stays open).
    -- EV.shuf comes from the script's own ev_load (open_if_due updates it).
    if NOW < EV.opens and EV.shuf ~= 1 then
        return Q.GATE_NOT_OPEN
    end
    if EV.mode == Q.QM_PAUSED then
        return Q.GATE_PAUSED
    end
    if EV.aware and EV.avail == 0 then
        return Q.GATE_SEATS_HELD
    end
    return Q.GATE_OPEN
end

-- core: br_queue_rate_add(&ev->q_rate, now, k)
function WR.rate_add(k)
    local s = ev_get_str('rate')
    local B, N = Q.RATE_BUCKET_MS, Q.RATE_BUCKETS
    local b = floor(NOW / B)
    local n, bl, since = {}, -1, 0
    if s then
        local f = {}
        for x in string.gmatch(s, '%d+') do
            f[#f + 1] = tonumber(x)
        end
        if #f ~= N + 2 then
            broken('rate = ' .. s)
        end
        bl, since = f[1], f[2]
        for j = 1, N do
            n[j] = f[j + 2]
        end
    end
    if bl == -1 then
        for j = 1, N do
            n[j] = 0
        end
        since, bl = NOW, b
    elseif b > bl then
        if b - bl >= N then
            for j = 1, N do
                n[j] = 0
            end
        else
            for j = bl + 1, b do
                n[j % N + 1] = 0
            end
        end
        bl = b
    end
    n[bl % N + 1] = n[bl % N + 1] + k
    local out = {dec(bl), dec(since)}
    for j = 1, N do
        out[j + 2] = dec(n[j])
    end
    ev_put_str('rate', table.concat(out, ':'))
end
