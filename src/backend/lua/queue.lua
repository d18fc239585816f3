#!lua
--[[ seckill: one sale's waiting room in Redis (the rules of engine/queue.h), decided from
Redis's clock and the sale's own state in one atomic step, so that every node reading
this Redis gives the same places and two nodes never admit twice.

KEYS[1]  sk:{<sale>}:sale      the sale's hash (buy.lua); read here: stock, sold, held,
                               starts_at, ends_at, paused, closed, and the settings
                               queue (1 fifo, 2 random; absent or 0: no waiting room),
                               admit_per_second, admission_ttl_ms
KEYS[2]  sk:{<sale>}:queue     sorted set: member user, score the user's place (from 1).
                               Places are handed out in order and never reused; a user
                               who joins again after an unused admission gets the next
                               place (its old one stays counted, admitted).
KEYS[3]  sk:{<sale>}:admitted  hash user -> admitted_at (unix ms, Redis's clock); a
                               re-join removes it
KEYS[4]  sk:{<sale>}:qstate    hash: n (places handed out), head (places admitted: every
                               place <= head is admitted, none above), started (1 once
                               the start was handled), credit (thousandths of an
                               admission) and credit_at (the time it was counted at),
                               halted (1 while nobody may buy: no credit grows), seed
                               (of the shuffle, random queues)
ARGV[1]  t tick, a ask for ARGV[2]'s place, j join (or ask, when in the queue)
ARGV[2]  the user (a, j)
ARGV[3]  a seed in [1, 2147483646] for the shuffle, used by the call that starts the queue

Every call first advances the queue at Redis's TIME: at the first call at or after
starts_at the queue starts (a random queue's pre-queue, every place handed out so far,
is shuffled with Fisher-Yates over a Park-Miller generator seeded by ARGV[3], the seed
kept in qstate), then, while the sale can sell (started, not ended, closed or paused,
units left: stock - held - sold > 0), places after the head are admitted at
admit_per_second: a credit that grows with the clock, at most one second's worth, and
not at all while nobody may buy. The credit is kept as (credit, credit_at) and written
only when admissions spend it or admission stops or resumes, so a call that changes
nothing writes nothing (nothing for the AOF to fsync).
Then the op. Reservations that fell due are expired by buy.lua, which the nodes call
for live sales every few hundred milliseconds: units they return reopen admission at
the next call here.

Reply: { status, n, head, now, admitted, started, position, ahead, admitted_at,
         expires_at, joined }
  status 0, 1 (not in the queue and not joining), 2 (the sale has no waiting room)
  admitted: places admitted by this call; position 0 before a random queue's start
  (its places are not drawn yet) ]]

local K_SALE, K_QUEUE, K_ADM, K_STATE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ADMIT_MAX = 10000 -- admissions per call: the rest at the next one
local CHUNK = 1000 -- members per ZADD / HSET

local m = redis.call('HMGET', K_SALE, 'stock', 'sold', 'held', 'starts_at', 'ends_at', 'paused', 'closed', 'queue',
                     'admit_per_second', 'admission_ttl_ms')
if not m[1] then
    return redis.error_reply('NOSALE no such sale in this store')
end
local stock, sold, held = tonumber(m[1]), tonumber(m[2]) or 0, tonumber(m[3]) or 0
local starts, ends = tonumber(m[4]), tonumber(m[5])
local paused, closed = m[6] == '1', m[7] == '1'
local mode = tonumber(m[8]) or 0
local rate, ttl = tonumber(m[9]) or 100, tonumber(m[10]) or 120000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if mode == 0 then
    return {2, 0, 0, now, 0, 0, 0, 0, 0, 0, 0}
end
if not (stock and starts and ends) then
    return redis.error_reply('BADSALE the sale record is incomplete')
end

local q = redis.call('HMGET', K_STATE, 'n', 'head', 'started', 'credit', 'credit_at', 'halted')
local n, head = tonumber(q[1]) or 0, tonumber(q[2]) or 0
local started = q[3] == '1'
local credit, credit_at = tonumber(q[4]) or 0, tonumber(q[5]) or now
local halted = q[6] == '1'
local dirty = false

-- ---- the start ----
if not started and now >= starts then
    started, dirty = true, true
    local seed = math.floor(tonumber(ARGV[3]) or 1) % 2147483647
    if seed == 0 then
        seed = 1
    end
    if mode == 2 and n > 1 then
        -- Before the start nobody joins twice: the pre-queue is every place 1..n.
        local users = redis.call('ZRANGE', K_QUEUE, 0, -1)
        local x = seed
        local function below(bound)
            -- Park-Miller (x * 48271 mod 2^31 - 1, exact in doubles), rejecting the
            -- short tail so that every draw in [0, bound) is equally likely.
            local limit = 2147483646 - 2147483646 % bound
            while true do
                x = (x * 48271) % 2147483647
                local v = x - 1
                if v < limit then
                    return v % bound
                end
            end
        end
        for i = #users, 2, -1 do
            local j = below(i) + 1
            users[i], users[j] = users[j], users[i]
        end
        local args = {}
        for i = 1, #users do
            args[#args + 1] = i
            args[#args + 1] = users[i]
            if #args >= 2 * CHUNK or i == #users then
                redis.call('ZADD', K_QUEUE, unpack(args))
                args = {}
            end
        end
    end
    redis.call('HSET', K_STATE, 'seed', seed)
    -- The first admission is due at the start itself.
    credit, credit_at = 1000, now
end

-- ---- admissions ----
local admitted = 0
local admitting = started and now < ends and not paused and not closed and stock - held - sold > 0
local function grown()
    local have = credit
    if now > credit_at then
        have = have + (now - credit_at) * rate
    end
    return math.min(have, 1000 * rate)
end
if started and admitting == halted then
    -- Nobody may buy (sold out, paused): no credit grows until units come back. Written
    -- once when it stops and once when it resumes.
    if halted then
        credit_at = now
    else
        credit, credit_at = grown(), now
    end
    halted, dirty = not admitting, true
end
if admitting and head < n then
    local have = grown()
    local k = math.min(math.floor(have / 1000), n - head, ADMIT_MAX)
    if k > 0 then
        -- No place above the head was ever left (only the admitted join again), so the
        -- k places after it are k users.
        local users = redis.call('ZRANGEBYSCORE', K_QUEUE, '(' .. head, head + k)
        local args = {}
        for i = 1, #users do
            args[#args + 1] = users[i]
            args[#args + 1] = now
            if #args >= 2 * CHUNK or i == #users then
                redis.call('HSET', K_ADM, unpack(args))
                args = {}
            end
        end
        head = head + k
        admitted = k
        credit, credit_at, dirty = have - 1000 * k, now, true
    end
end

-- ---- the op ----
local status, position, ahead, adm_at, joined = 0, 0, 0, 0, 0
local op, user = ARGV[1], ARGV[2]
if op == 'a' or op == 'j' then
    local score = redis.call('ZSCORE', K_QUEUE, user)
    local at = redis.call('HGET', K_ADM, user)
    at = at and tonumber(at) or 0
    if score and op == 'j' and at > 0 and now >= at + ttl then
        score, at = nil, 0 -- an admission that expired unused: to the back
        redis.call('HDEL', K_ADM, user)
    end
    if not score and op == 'j' then
        n = n + 1
        redis.call('ZADD', K_QUEUE, n, user)
        score, joined, dirty = n, 1, true
    end
    if not score then
        status = 1
    else
        position = tonumber(score)
        adm_at = at
        if not started and mode == 2 then
            position, ahead = 0, n - 1 -- not drawn yet: everyone else may be before
        elseif position > head then
            ahead = position - 1 - head
        end
    end
end

if dirty then
    redis.call('HSET', K_STATE, 'n', n, 'head', head, 'started', started and 1 or 0, 'credit', credit, 'credit_at',
               credit_at, 'halted', halted and 1 or 0)
end
return {status, n, head, now, admitted, started and 1 or 0, position, ahead, adm_at,
        adm_at > 0 and adm_at + ttl or 0, joined}
