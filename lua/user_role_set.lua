--[[
user_role_set.lua -- user_role_set: an admin (or the system) changes a role.
Twin of br_catalog_user_role_set (core/catalog.c).

KEYS[1]  br:{cat}:
ARGV     now_ms, actor user_id, target user_id, role
Reply    the outcome (lib.lua): id (the user), status (role).
]]
local actor = arg_u64(2)
local target = arg_u64(3)
local role = arg_int(4, 0, 255)
local users = tonumber(redis.call('HGET', P .. 'cat', 'users'))
if users == nil then
    broken('the catalog has no config')
end
local function exists(uid)
    local n = tonumber(uid)
    return n >= 1 and n <= users
end
if actor ~= '0' then
    local role_of_actor = exists(actor) and tonumber(redis.call('HGET', P .. 'u:' .. actor, 'role'))
    if role_of_actor ~= BR_ROLE_ADMIN then
        return reply(BR_E_FORBIDDEN)
    end
end
if role >= BR_ROLE_COUNT then
    return reply(BR_E_INVALID)
end
if not exists(target) then
    return reply(BR_E_NOT_FOUND)
end
redis.call('HSET', P .. 'u:' .. target, 'role', role)
OUT[3] = tonumber(target)
OUT[2] = role
return reply(BR_OK)
