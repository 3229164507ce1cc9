--[[
release.lua -- gives back a claim that turned out not to be needed: the
idempotency key of a reserve that never reached its checks, or the provider
event id of a payment_event that was refused before it was recorded (see
reserve.lua, payment_event.lua). Deletes the claim only if it still holds
the value this caller wrote.

KEYS[1]  br:{u<user>}: or br:{v<provider event id>}:
ARGV     now_ms, suffix ("idem:<key>" or "pev"), value written by the claim
Reply    the outcome (lib.lua), err = BR_OK; aux = 1 when deleted.
]]
local suffix = ARGV[2]
local value = ARGV[3]
if suffix == nil or value == nil then
    fail('release arguments')
end
if redis.call('GET', P .. suffix) == value then
    redis.call('DEL', P .. suffix)
    OUT[10] = 1
end
return reply(BR_OK)
