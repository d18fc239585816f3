#!lua
--[[ seckill: decide a batch of purchases of one sale in one atomic step.

KEYS[1]  sk:{<sale>}:sale     hash: id, name, stock, starts_at, ends_at, per_user_limit,
                              created_at, sold
KEYS[2]  sk:{<sale>}:holders  hash, three kinds of fields per holder (user and request
                              ids never hold a tab or a newline):
                                <user>            "count\tseq\treq\tat": how many orders
                                                  the user holds, then the first one
                                <user>\t<i>       "seq\treq\tat": the user's i-th order, i >= 2
                                <user>\n<req>     "i": which of the user's orders (i >= 2)
                                                  carries that request id
KEYS[3]  sk:{<sale>}:orders   stream: one entry per batch (at most 1000 orders), id
                              "<first seq>-0", fields n (orders), t (time), u (user ids
                              joined by "\n"), r (request ids joined by "\n"); the
                              orders carry seqs first .. first + n - 1
ARGV     user_1, request_1, user_2, request_2, ...   (in arrival order)

For each purchase, in order: a holder's repeated request id (duplicate: the first answer
again, whatever the clock says), the sale window (against Redis's clock, one reading for
the whole batch), the per-user limit (limit_reached with the user's first order), the
stock (sold_out, with the first order of a holder), and only then the decrement, the
holder record and the order, appended to the sale's stream (one XADD for the batch's
orders: one stream entry per order would double the AOF). Every step reads and writes a
few fields of fixed size, never a user's whole list: a user holding a million orders
costs what a user holding one does. The script is one atomic step; with AOF "appendfsync
always" Redis writes it to disk before the reply leaves, so a reply means every
confirmed order of the batch is durable.

The "#!lua" line makes Redis refuse the whole script up front when it is out of memory,
instead of failing half-way; nothing below raises an error after the first write.

Reply: { sold, now_ms, then per purchase: code, seq, created_at, remaining, held }
codes: 0 confirmed, 1 duplicate, 2 sold_out, 3 limit_reached, 4 not_started, 5 ended.
seq and created_at: the order confirmed or repeated, or a holder's first order (with
limit_reached and sold_out); held: the orders the user holds. ]]

local meta = redis.call('HMGET', KEYS[1], 'stock', 'sold', 'starts_at', 'ends_at', 'per_user_limit')
if not meta[1] then
    return redis.error_reply('NOSALE no such sale in this store')
end
local stock = tonumber(meta[1])
local sold = tonumber(meta[2]) or 0
local starts, ends, limit = tonumber(meta[3]), tonumber(meta[4]), tonumber(meta[5])
if not (stock and starts and ends and limit) then
    return redis.error_reply('BADSALE the sale record is incomplete')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sold_before = sold

-- Holder fields read or written in this batch (false: absent), so a user seen twice in
-- one batch sees their own new order, and all writes go out in a few HSETs at the end.
-- Nothing is written before the loop ends, so the errors below leave no trace.
local cache, dirty, written = {}, {}, {}
local function get(f)
    local v = cache[f]
    if v == nil then
        v = redis.call('HGET', KEYS[2], f)
        cache[f] = v
    end
    return v
end
local function put(f, v)
    if not written[f] then
        written[f] = true
        dirty[#dirty + 1] = f
    end
    cache[f] = v
end

local new_users, new_reqs = {}, {}
local out = {0, now}
local k = 3
for i = 1, #ARGV - 1, 2 do
    local user, req = ARGV[i], ARGV[i + 1]
    local code, seq, at = 0, 0, 0
    local count, fseq, freq, fat = 0, 0, '', 0
    local rec = get(user)
    if rec then
        local c, s, r, a = string.match(rec, '^(%d+)\t(%d+)\t([^\t]*)\t(%d+)$')
        if not c then
            return redis.error_reply('BADHOLDER the holder record of ' .. user .. ' is not in this layout')
        end
        count, fseq, freq, fat = tonumber(c), tonumber(s), r, tonumber(a)
    end
    local dup = false
    if count > 0 and req ~= '' then
        if freq == req then
            seq, at, dup = fseq, fat, true
        else
            local idx = get(user .. '\n' .. req)
            local o = idx and get(user .. '\t' .. idx)
            if o then
                local s, a = string.match(o, '^(%d+)\t[^\t]*\t(%d+)$')
                if not s then
                    return redis.error_reply('BADHOLDER an order record of ' .. user .. ' is damaged')
                end
                seq, at, dup = tonumber(s), tonumber(a), true
            end
        end
    end
    if dup then
        code = 1
    elseif now < starts then
        code = 4
    elseif now >= ends then
        code = 5
    elseif count >= limit then
        code, seq, at = 3, fseq, fat
    elseif sold >= stock then
        code, seq, at = 2, fseq, fat
    else
        sold = sold + 1
        count = count + 1
        seq, at = sold, now
        if count == 1 then
            put(user, '1\t' .. sold .. '\t' .. req .. '\t' .. now)
        else
            put(user, count .. '\t' .. fseq .. '\t' .. freq .. '\t' .. fat)
            put(user .. '\t' .. count, sold .. '\t' .. req .. '\t' .. now)
            if req ~= '' then
                put(user .. '\n' .. req, tostring(count))
            end
        end
        new_users[#new_users + 1] = user
        new_reqs[#new_reqs + 1] = req
    end
    out[k], out[k + 1], out[k + 2], out[k + 3], out[k + 4] = code, seq, at, stock - sold, count
    k = k + 5
end
-- The batch's orders, 1000 to an entry (user and request ids never hold "\n").
local first = sold_before + 1
for i = 1, #new_users, 1000 do
    local j = math.min(i + 999, #new_users)
    redis.call('XADD', KEYS[3], (first + i - 1) .. '-0', 'n', j - i + 1, 't', now,
               'u', table.concat(new_users, '\n', i, j), 'r', table.concat(new_reqs, '\n', i, j))
end
-- At most 500 fields per HSET keeps the argument list far below Lua's stack limit.
local args, n = {}, 0
for i = 1, #dirty do
    local f = dirty[i]
    args[n + 1], args[n + 2] = f, cache[f]
    n = n + 2
    if n == 1000 or i == #dirty then
        redis.call('HSET', KEYS[2], unpack(args, 1, n))
        n = 0
    end
end
if sold ~= sold_before then
    redis.call('HSET', KEYS[1], 'sold', sold)
end
out[1] = sold
return out
