--[[
config.lua -- records the capacities and seed a Redis deployment runs with,
or checks them against the ones recorded. The catalog-time capacities are
enforced by event_alloc.lua and user_register.lua exactly as the core
enforces them; the seed draws the opening shuffles.

KEYS[1]  br:{cat}:
ARGV     now_ms, seed (u64 decimal), events_max, users_max, queue_slots_max,
         queue_capacity_default, active_max, seats_max
Reply    the outcome (lib.lua) with aux = 1 when recorded now or equal to the
         recorded config, 0 when Redis holds another config.
]]
local names = {'cfg_seed', 'cfg_events_max', 'cfg_users_max', 'cfg_qslots_max', 'cfg_qcap_default',
               'cfg_active_max', 'cfg_seats_max'}
local vals = {arg_u64(2)}
for i = 3, 8 do
    vals[#vals + 1] = dec(arg_int(i, 1, 2 ^ 31))
end
local have = redis.call('HMGET', P .. 'cat', unpack(names))
if have[1] == false then
    local args = {'events', 0, 'users', 0, 'slots', 0, 'active', 0, 'seats', 0}
    for i = 1, #names do
        args[#args + 1] = names[i]
        args[#args + 1] = vals[i]
    end
    redis.call('HSET', P .. 'cat', unpack(args))
    OUT[10] = 1
    return reply(BR_OK)
end
OUT[10] = 1
for i = 1, #names do
    if have[i] ~= vals[i] then
        OUT[10] = 0
    end
end
return reply(BR_OK)
