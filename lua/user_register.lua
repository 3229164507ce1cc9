--[[
user_register.lua -- user_register: a new user (the server hashed the
password). Twin of br_catalog_user_register (core/catalog.c).

KEYS[1]  br:{cat}:
ARGV     now_ms, actor user_id, email (bytes before the NUL, all BR_EMAIL_MAX
         when there is none), name (likewise), password hash (32 bytes), salt
         (16 bytes), role
Reply    the outcome (lib.lua): id (the user; the existing one on
         BR_E_EMAIL_TAKEN), status (role).
]]
local actor = arg_u64(2)
local email = ARGV[3]
local name = ARGV[4]
local pw = ARGV[5]
local salt = ARGV[6]
local role = arg_int(7, 0, 255)
if email == nil or name == nil or pw == nil or #pw ~= BR_PASSWORD_HASH_LEN or salt == nil or
    #salt ~= BR_SALT_LEN then
    fail('user_register arguments')
end
if actor ~= '0' then
    return reply(BR_E_FORBIDDEN)
end
if #email == 0 or #email >= BR_EMAIL_MAX or #name >= BR_NAME_MAX or role >= BR_ROLE_COUNT then
    return reply(BR_E_INVALID)
end
local existing = redis.call('HGET', P .. 'email', email)
if existing then
    OUT[3] = tonumber(existing)
    return reply(BR_E_EMAIL_TAKEN)
end
local c = redis.call('HMGET', P .. 'cat', 'users', 'cfg_users_max')
local users, users_max = tonumber(c[1]), tonumber(c[2])
if users == nil then
    broken('the catalog has no config')
end
if users >= users_max then
    return reply(BR_E_FULL)
end
local id = users + 1
redis.call('HSET', P .. 'cat', 'users', id)
redis.call('HSET', P .. 'u:' .. id, 'email', email, 'name', name, 'pw', pw, 'salt', salt,
           'role', role)
redis.call('HSET', P .. 'email', email, id)
OUT[3] = id
OUT[2] = role
return reply(BR_OK)
