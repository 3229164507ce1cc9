--[[
event_alloc.lua -- event_create, first half: the checks and the event id.
Twin of the checks of br_catalog_event_create (core/catalog.c): who may
organize, the spec's validity (br_catalog_spec_validate), then the
catalog-time capacities (events, queue slots, active passes, seats).

event_create touches two slots: the catalog's counters here, then the new
event's keys (event_put.lua, run by the adapter right after with the id
returned here).

KEYS[1]  br:{cat}:
ARGV     the event spec (shared with event_put.lua):
         1 now_ms, 2 actor user_id, 3 event id (0 here), 4 queue capacity (0
         here), 5 name, 6 venue (bytes before the NUL, or all of the field when
         there is none), 7 starts_at_ms, 8 sale_opens_at_ms, 9 per_user_limit,
         10 requires_pass (0/1), 11 max_active, 12 admit_per_tick,
         13 pass_ttl_ms, 14 hold_ttl_ms, 15 queue_capacity (0 = default),
         16 zone_count, then per zone (at most BR_EVENT_ZONES_MAX): name,
         capacity, price_minor, currency (bytes before the NUL), then
         (issue 13) admit_per_min, presence_ttl_s, pow_bits, queue_flags,
         mode
Reply    the outcome (lib.lua): id (the event); aux = its queue capacity.
]]
local function num(i)
    local v = tonumber(ARGV[i])
    if v == nil then
        fail('ARGV[' .. i .. '] = ' .. tostring(ARGV[i]))
    end
    return v
end
local actor = arg_u64(2)
local c = redis.call('HMGET', P .. 'cat', 'events', 'users', 'slots', 'active', 'seats',
                     'cfg_events_max', 'cfg_qslots_max', 'cfg_qcap_default', 'cfg_active_max',
                     'cfg_seats_max')
for i = 1, #c do
    c[i] = tonumber(c[i])
    if c[i] == nil then
        broken('the catalog has no config')
    end
end
local events, users, slots, active, seats = c[1], c[2], c[3], c[4], c[5]
local events_max, qslots_max, qcap_default, active_max, seats_max = c[6], c[7], c[8], c[9], c[10]

-- core: may_organize
if actor ~= '0' then
    local a = tonumber(actor)
    local role = a >= 1 and a <= users and tonumber(redis.call('HGET', P .. 'u:' .. actor, 'role'))
    if role ~= BR_ROLE_ORGANIZER and role ~= BR_ROLE_ADMIN then
        return reply(BR_E_FORBIDDEN)
    end
end

-- core: br_catalog_spec_validate
local function valid()
    local name, venue = ARGV[5], ARGV[6]
    if #name == 0 or #name >= BR_NAME_MAX or #venue >= BR_NAME_MAX then
        return false
    end
    local limit, maxa, apt = num(9), num(11), num(12)
    if limit < 1 or limit > BR_PER_USER_LIMIT_MAX or maxa < 1 or maxa > BR_MAX_ACTIVE_MAX or
        apt < 1 or apt > BR_ADMIT_PER_TICK_MAX then
        return false
    end
    local pttl, httl = num(13), num(14)
    if pttl < 1 or pttl > BR_TTL_MS_MAX or httl < 1 or httl > BR_TTL_MS_MAX then
        return false
    end
    if num(8) < 0 or num(7) < 0 or num(15) > 2 ^ 30 then
        return false
    end
    local zc = num(16)
    if zc < 1 or zc > BR_EVENT_ZONES_MAX then
        return false
    end
    for z = 1, zc do
        local at = 17 + 4 * (z - 1)
        local zname, cap, price, cur = ARGV[at], num(at + 1), num(at + 2), ARGV[at + 3]
        if #zname == 0 or #zname >= BR_ZONE_NAME_MAX or
            not sfind(cur, '^[A-Z][A-Z][A-Z]$') then
            return false
        end
        if cap < 1 or cap > BR_ZONE_CAPACITY_MAX or price < 0 or price > BR_PRICE_MINOR_MAX then
            return false
        end
    end
    -- Issue 13 (WR-SPEC 1): the waiting room's switches.
    local at = 17 + 4 * zc
    local apm, prs, pow, qf, mode = num(at), num(at + 1), num(at + 2), num(at + 3), num(at + 4)
    if apm > Q.ADMIT_PER_MIN_MAX or prs > Q.PRESENCE_TTL_S_MAX or pow > Q.POW_BITS_MAX or
        mode >= Q.QUEUE_MODE_COUNT then
        return false
    end
    for bit = 0, 7 do -- qf & ~BR_QF_ALL == 0 (no bit operators in Lua 5.1)
        local b = 2 ^ bit
        if floor(qf / b) % 2 == 1 and floor(Q.QF_ALL / b) % 2 == 0 then
            return false
        end
    end
    return true
end
if not valid() then
    return reply(BR_E_INVALID)
end

local qcap = num(15) ~= 0 and num(15) or qcap_default
local want = 0
for z = 1, num(16) do
    want = want + num(17 + 4 * (z - 1) + 1)
end
if events >= events_max or events >= BR_EVENT_ID_MAX or slots + qcap > qslots_max or
    active + num(11) > active_max or seats + want > seats_max then
    return reply(BR_E_FULL)
end
redis.call('HSET', P .. 'cat', 'events', events + 1, 'slots', slots + qcap,
           'active', active + num(11), 'seats', seats + want)
OUT[3] = events + 1
OUT[10] = qcap
return reply(BR_OK)
