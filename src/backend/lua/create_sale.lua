#!lua
--[[ seckill: create a sale unless one with this id exists.

KEYS[1]  sk:{<sale>}:sale  (hash, see buy.lua; the waiting room's settings, see queue.lua)
ARGV     id, name, stock, starts_at, ends_at, per_user_limit, created_at,
         payment_window_ms, max_quantity, queue (0 off, 1 fifo, 2 random),
         queue_opens_at, admit_per_second, admission_ttl_ms, pow_bits

Reply: 1 created, 0 a sale with this id exists (nothing changed). The caller adds the
id to the sales index (sk:sales) separately, so that this script touches one hash slot
only and stays usable on Redis Cluster. ]]

if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'stock', ARGV[3], 'starts_at', ARGV[4],
           'ends_at', ARGV[5], 'per_user_limit', ARGV[6], 'created_at', ARGV[7], 'sold', 0, 'held', 0, 'seq', 0,
           'payment_window_ms', ARGV[8] or 0, 'max_quantity', ARGV[9] or 1, 'paused', 0, 'closed', 0, 'pv', 0)
if ARGV[10] and ARGV[10] ~= '0' then
    redis.call('HSET', KEYS[1], 'queue', ARGV[10], 'queue_opens_at', ARGV[11], 'admit_per_second', ARGV[12],
               'admission_ttl_ms', ARGV[13], 'pow_bits', ARGV[14])
end
return 1
