#!lua
--[[ seckill: decide a batch of one sale's operations in one atomic step: purchases,
payments, cancels, refunds, reads of orders, and the operator's controls, in arrival
order, after the expiry of every reservation that is due.

KEYS[1]  sk:{<sale>}:sale     hash: id, name, stock, starts_at, ends_at, per_user_limit,
                              created_at, sold (confirmed units), held (reserved units),
                              seq (orders made), payment_window_ms, max_quantity,
                              paused, closed (0/1), pv (bumped by every accepted control),
                              v (bumped by every script that changed anything), and
                              for a waiting room queue, queue_opens_at, admit_per_second,
                              admission_ttl_ms, pow_bits (set at creation; queue.lua)
KEYS[2]  sk:{<sale>}:holders  hash, three kinds of fields per holder (user and request
                              ids never hold a tab or a newline):
                                <user>            "count\tseq\treq\tat\tunits": how many
                                                  orders the user ever made, the first
                                                  one, and the units the user holds now
                                                  (reserved + confirmed)
                                <user>\t<i>       "seq\treq\tat": the user's i-th order, i >= 2
                                <user>\n<req>     "i": which of the user's orders (i >= 2)
                                                  carries that request id
KEYS[3]  sk:{<sale>}:orders   stream, in decision order, entries of three kinds:
                                o (no k field): new orders, id "<first seq>-0", fields n,
                                  t (created_at), u, r (user and request ids joined by
                                  "\n"), q (quantities, when one is above 1), p (pay_by,
                                  when the sale has a payment window)
                                x (k=x): transitions of one kind, id "<orders made>-*",
                                  fields e (pay|cancel|expire|refund), t (at), s (seqs
                                  joined by "\n"), a (pay: payment ids; cancel: admin or
                                  buyer)
                                c (k=c): one control, id "<orders made>-*", field j (the
                                  trail entry, JSON)
KEYS[4]  sk:{<sale>}:o        hash seq -> "user\treq\tqty\tstate\tcreated\tpay_by\tpayment_id
                              \tpaid_at\tclosed_at" (state 0 reserved, 1 confirmed,
                              2 cancelled, 3 expired, 4 refunded; times 0 when unset)
KEYS[5]  sk:{<sale>}:due      sorted set: pending reservations, score pay_by, member seq
KEYS[6]  sk:{<sale>}:log      list: the trail, one JSON entry per accepted control
KEYS[7]  sk:{<sale>}:ctl      hash request_id -> "trail seq\tsignature of what was asked"
ARGV[1]  since: the caller's users are complete up to this seq (-1: it keeps none);
         the reply carries the users of the orders after it
ARGV[2]  the params version (pv) the caller has: a different one is answered with the
         sale's settings
ARGV[3..] the operations, each a kind then its arguments:
  b user req qty                      purchase
  B user req qty                      purchase without a valid admission (sent only because
                                      the buyer may hold an order, or because the node
                                      could not check it): on a queued sale a replay of
                                      req is answered, anything else is refused (code 11,
                                      not_admitted); on another, a plain purchase
  p seq payment_id                    payment
  c seq user                          cancel (user "" : by the operator)
  f seq                               refund
  g seq                               read one order
  u user                              read a user's orders
  k req actor action amount set name starts_at ends_at per_user_limit max_quantity
    payment_window_ms                 control (engine/control.h's rules and codes)

The rules are the engine's (engine/order.c, engine/control.c); "now" is Redis's TIME,
one reading for the whole script, so expiry and payment are judged by the same clock
and a payment after pay_by never confirms (I8). Counts are in units and
remaining + held + sold == stock after every step (I7). Nothing is written before the
last decision (every write is at the end), so an error reply leaves no trace; the
"#!lua" line makes Redis refuse the whole script up front when it is out of memory.
With AOF "appendfsync always" Redis writes it to disk before the reply leaves.

Reply: { header, users, params, row per operation }
  header  { seq, now, stock, held, sold, v, pv, next_due (0: none pending), covered,
          expired (reservations expired before the operations) }
  users   the user ids of the orders since+1 .. covered (covered = since when the
          caller keeps none)
  params  {} or { name, starts_at, ends_at, per_user_limit, max_quantity,
          payment_window_ms, paused, closed } when pv differs
  rows    b: { code, remaining, units, ORDER }   (codes: sk_buy_result_t)
          p, c, f, g: { status, tr, ORDER }      (status 0, 1 no such order, 2 not the
                                                  buyer's, 3 moved to the system of record)
          u: { status, ORDER, ORDER, ... }
          k: { result, field, entry }            (sk_control_result_t, the field at
                                                  fault or "", the trail entry or "")
  ORDER   seq, created_at, quantity, state, pay_by, paid_at, closed_at, user, request,
          payment_id (seq 0: none) ]]

local K_SALE, K_HOLD, K_STREAM, K_ORD, K_DUE, K_LOG, K_CTL = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6],
    KEYS[7]
local EXPIRE_MAX = 5000 -- expirations per script: the rest in the next one
local USERS_MAX = 50000 -- users returned per script
local STOCK_MAX, LIMIT_MAX, WINDOW_MAX, TIME_MAX, GRACE = 1000000000, 1000000, 86400000, 253402300799999, 60000

local m = redis.call('HMGET', K_SALE, 'stock', 'sold', 'starts_at', 'ends_at', 'per_user_limit', 'held', 'seq',
                     'payment_window_ms', 'max_quantity', 'paused', 'closed', 'pv', 'v', 'retired_at', 'name',
                     'queue')
if not m[1] then
    return redis.error_reply('NOSALE no such sale in this store')
end
local stock, sold = tonumber(m[1]), tonumber(m[2]) or 0
local starts, ends, limit = tonumber(m[3]), tonumber(m[4]), tonumber(m[5])
if not (stock and starts and ends and limit) then
    return redis.error_reply('BADSALE the sale record is incomplete')
end
local held = tonumber(m[6]) or 0
local seq = tonumber(m[7]) or sold -- before quantities, one order was one unit
local window, maxq = tonumber(m[8]) or 0, tonumber(m[9]) or 1
local paused, closed = m[10] == '1', m[11] == '1'
local pv, v = tonumber(m[12]) or 0, tonumber(m[13]) or 0
local retired = m[14] ~= false and m[14] ~= nil
local name = m[15] or ''
local queued = (tonumber(m[16]) or 0) ~= 0 -- a waiting room (queue.lua): purchases need an admission
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq_before, changed = seq, false
local params_changed = false

-- ---- caches: every field read or written once, written at the end ----
local function cache_of(key)
    return {key = key, vals = {}, dirty = {}, written = {}}
end
local H, O = cache_of(K_HOLD), cache_of(K_ORD)
local function get(c, f)
    local x = c.vals[f]
    if x == nil then
        x = redis.call('HGET', c.key, f)
        c.vals[f] = x
    end
    return x
end
local function put(c, f, x)
    if not c.written[f] then
        c.written[f] = true
        c.dirty[#c.dirty + 1] = f
    end
    c.vals[f] = x
    changed = true
end
local function flush(c)
    -- At most 500 fields per HSET keeps the argument list far below Lua's stack limit.
    local args, n = {}, 0
    for i = 1, #c.dirty do
        local f = c.dirty[i]
        args[n + 1], args[n + 2] = f, c.vals[f]
        n = n + 2
        if n == 1000 or i == #c.dirty then
            redis.call('HSET', c.key, unpack(args, 1, n))
            n = 0
        end
    end
end

-- A holder record: count, first seq, first request, first time, units held.
local function holder(user)
    local rec = get(H, user)
    if not rec then
        return nil
    end
    local c, s, r, a, u = string.match(rec, '^(%d+)\t(%d+)\t([^\t]*)\t(%d+)\t?(%d*)$')
    if not c then
        return false
    end
    return {count = tonumber(c), seq = tonumber(s), req = r, at = tonumber(a),
            units = u == '' and tonumber(c) or tonumber(u)}
end
local function holder_put(user, h)
    put(H, user, h.count .. '\t' .. h.seq .. '\t' .. h.req .. '\t' .. h.at .. '\t' .. h.units)
end

-- An order record (nil: none; false: damaged).
local function order(s)
    local rec = get(O, tostring(s))
    if not rec then
        return nil
    end
    local u, r, q, st, c, pb, pid, pa, cl = string.match(rec,
        '^([^\t]*)\t([^\t]*)\t(%d+)\t(%d)\t(%d+)\t(%d+)\t([^\t]*)\t(%d+)\t(%d+)$')
    if not u then
        return false
    end
    return {seq = s, u = u, r = r, q = tonumber(q), st = tonumber(st), c = tonumber(c), pb = tonumber(pb), pid = pid,
            pa = tonumber(pa), cl = tonumber(cl)}
end
local function order_put(o)
    put(O, tostring(o.seq), o.u .. '\t' .. o.r .. '\t' .. o.q .. '\t' .. o.st .. '\t' .. o.c .. '\t' .. o.pb .. '\t' ..
        o.pid .. '\t' .. o.pa .. '\t' .. o.cl)
end
local function order_row(row, o)
    if not o then
        for _ = 1, 10 do
            row[#row + 1] = 0
        end
        return row
    end
    local n = #row
    row[n + 1], row[n + 2], row[n + 3], row[n + 4], row[n + 5] = o.seq, o.c, o.q, o.st, o.pb
    row[n + 6], row[n + 7], row[n + 8], row[n + 9], row[n + 10] = o.pa, o.cl, o.u, o.r, o.pid
    return row
end

-- ---- the stream, in decision order ----
local entries = {} -- {kind, ...}
local pending_o = nil -- the run of new orders not yet in an entry
local function flush_orders()
    if pending_o then
        entries[#entries + 1] = pending_o
        pending_o = nil
    end
end
local function emit_x(kind, s, arg)
    flush_orders()
    local e = entries[#entries]
    if not (e and e.kind == 'x' and e.e == kind) then
        e = {kind = 'x', e = kind, s = {}, a = {}, at_seq = seq}
        entries[#entries + 1] = e
    end
    e.s[#e.s + 1] = s
    e.a[#e.a + 1] = arg
end
local function emit_o(o)
    if not pending_o or #pending_o.u == 1000 then
        flush_orders()
        pending_o = {kind = 'o', first = o.seq, u = {}, r = {}, q = {}, many = false}
    end
    local e = pending_o
    e.u[#e.u + 1], e.r[#e.r + 1], e.q[#e.q + 1] = o.u, o.r, o.q
    if o.q > 1 then
        e.many = true
    end
end

-- ---- the state machine (engine/order.c) ----
-- states 0 reserved 1 confirmed 2 cancelled 3 expired 4 refunded; results
-- (sk_tr_result_t) 0 ok 1 duplicate 2 expired 3 cancelled 4 refunded 5 already_paid
-- 6 not_reserved 7 not_confirmed 8 not_due. Returns result, next, held and sold moves.
local function step(st, ev, pb, same)
    if st == 0 then
        if ev == 'pay' then
            if now <= pb then
                return 0, 1, -1, 1
            end
            return 2, 3, -1, 0 -- no late confirmation (I8): it expires right there
        elseif ev == 'cancel' then
            return 0, 2, -1, 0
        elseif ev == 'expire' then
            if now > pb then
                return 0, 3, -1, 0
            end
            return 8, 0, 0, 0
        end
        return 7, 0, 0, 0
    elseif st == 1 then
        if ev == 'pay' then
            return same and 1 or 5, 1, 0, 0
        elseif ev == 'refund' then
            return 0, 4, 0, -1
        end
        return 6, 1, 0, 0
    end
    if ev == 'pay' then
        return (st == 2 and 3) or (st == 3 and 2) or 4, st, 0, 0
    elseif ev == 'refund' then
        return 7, st, 0, 0
    end
    return 6, st, 0, 0
end

local due_rem = {}
local function transition(o, ev, pid, arg)
    local tr, nx, dh, ds = step(o.st, ev, o.pb, ev == 'pay' and o.pid == pid)
    if nx == o.st then
        return tr
    end
    local q = o.q
    held, sold = held + dh * q, sold + ds * q
    if o.st == 0 then
        due_rem[#due_rem + 1] = tostring(o.seq)
    end
    o.st = nx
    if nx == 1 then
        o.pa, o.pid = now, pid
    else
        o.cl = now
        local h = holder(o.u)
        if h then
            h.units = math.max(h.units - q, 0)
            holder_put(o.u, h)
        end
    end
    order_put(o)
    local kind = nx == 3 and 'expire' or ev
    emit_x(kind, o.seq, (kind == 'pay' and pid) or (kind == 'cancel' and arg) or '')
    return tr
end

-- ---- expiry first: every reservation due (pay_by < now) ----
local due = redis.call('ZRANGEBYSCORE', K_DUE, '-inf', now - 1, 'LIMIT', 0, EXPIRE_MAX)
local expired = 0
for i = 1, #due do
    local o = order(tonumber(due[i]))
    if o == false then
        return redis.error_reply('BADORDER order ' .. due[i] .. ' is damaged')
    end
    if o and o.st == 0 then
        transition(o, 'expire', '', '')
        expired = expired + 1
    else
        due_rem[#due_rem + 1] = due[i]
    end
end

-- ---- the sale's state for the trail (engine/engine.c state_rule) ----
local function state_name()
    if closed or now >= ends then
        return 'ended'
    elseif now < starts then
        return 'scheduled'
    elseif paused then
        return 'paused'
    elseif stock - held - sold <= 0 then
        return 'sold_out'
    end
    return 'live'
end
local function jstr(s)
    return '"' .. string.gsub(s, '[%c"\\]', function(c)
        if c == '"' then
            return '\\"'
        elseif c == '\\' then
            return '\\\\'
        end
        return string.format('\\u%04x', string.byte(c))
    end) .. '"'
end
local function snapshot()
    return '{"stock":' .. stock .. ',"held":' .. held .. ',"sold":' .. sold .. ',"remaining":' ..
               (stock - held - sold) .. ',"orders":' .. seq .. ',"state":"' .. state_name() .. '","paused":' ..
               tostring(paused) .. ',"closed":' .. tostring(closed) .. ',"starts_at":' .. starts .. ',"ends_at":' ..
               ends .. ',"per_user_limit":' .. limit .. ',"max_quantity":' .. maxq .. ',"payment_window_ms":' ..
               window .. ',"name":' .. jstr(name) .. '}'
end

-- ---- controls (engine/control.c) ----
-- results (sk_control_result_t): 0 ok 1 duplicate 2 request_reused 3 closed 4 ended
-- 5 already_paused 6 not_paused 7 insufficient 8 stock_max 9 started 10 has_orders
-- 11 start_in_past 12 end_in_past 13 end_before_start 14 max_above_limit 15 bad_value
local ACTIONS = {'pause', 'resume', 'close', 'add_stock', 'remove_stock', 'patch'}
local P_NAME, P_STARTS, P_ENDS, P_LIMIT, P_MAXQ, P_WINDOW = 1, 2, 4, 8, 16, 32
local function bit(set, b)
    return math.floor(set / b) % 2 == 1
end
local function params_json(c)
    if c.action == 3 then
        return '{"add":' .. c.amount .. '}'
    elseif c.action == 4 then
        return '{"remove":' .. c.amount .. '}'
    elseif c.action ~= 5 then
        return '{}'
    end
    local p = {}
    if bit(c.set, P_NAME) then
        p[#p + 1] = '"name":' .. jstr(c.name)
    end
    if bit(c.set, P_STARTS) then
        p[#p + 1] = '"starts_at":' .. c.starts
    end
    if bit(c.set, P_ENDS) then
        p[#p + 1] = '"ends_at":' .. c.ends
    end
    if bit(c.set, P_LIMIT) then
        p[#p + 1] = '"per_user_limit":' .. c.limit
    end
    if bit(c.set, P_MAXQ) then
        p[#p + 1] = '"max_quantity":' .. c.maxq
    end
    if bit(c.set, P_WINDOW) then
        p[#p + 1] = '"payment_window_ms":' .. c.window
    end
    return '{' .. table.concat(p, ',') .. '}'
end
-- What makes two controls the same request (sk_control_same): the action and the
-- params it names.
local function signature(c)
    return c.action .. ':' .. params_json(c)
end

local function patch(c)
    if c.set == 0 then
        return 15, 'body'
    end
    if bit(c.set, P_NAME) and (#c.name == 0 or #c.name > 200) then
        return 15, 'name'
    end
    if bit(c.set, P_STARTS) and (c.starts < 0 or c.starts > TIME_MAX) then
        return 15, 'starts_at'
    end
    if bit(c.set, P_ENDS) and (c.ends < 0 or c.ends > TIME_MAX) then
        return 15, 'ends_at'
    end
    if bit(c.set, P_LIMIT) and (c.limit < 1 or c.limit > LIMIT_MAX) then
        return 15, 'per_user_limit'
    end
    if bit(c.set, P_MAXQ) and (c.maxq < 1 or c.maxq > LIMIT_MAX) then
        return 15, 'max_quantity'
    end
    if bit(c.set, P_WINDOW) and (c.window < 0 or c.window > WINDOW_MAX) then
        return 15, 'payment_window_ms'
    end
    local n = {name = name, starts = starts, ends = ends, limit = limit, maxq = maxq, window = window}
    if bit(c.set, P_NAME) then
        n.name = c.name
    end
    if bit(c.set, P_STARTS) and c.starts ~= starts then
        if now >= starts then
            return 9, ''
        end
        if c.starts < now - GRACE then
            return 11, 'starts_at'
        end
        n.starts = c.starts
    end
    if bit(c.set, P_ENDS) and c.ends ~= ends then
        if c.ends <= now then
            return 12, 'ends_at'
        end
        n.ends = c.ends
    end
    if n.ends <= n.starts then
        return 13, bit(c.set, P_ENDS) and 'ends_at' or 'starts_at'
    end
    if bit(c.set, P_LIMIT) then
        n.limit = c.limit
    end
    if bit(c.set, P_MAXQ) then
        n.maxq = c.maxq
    end
    if n.maxq > n.limit then
        return 14, bit(c.set, P_MAXQ) and 'max_quantity' or 'per_user_limit'
    end
    if bit(c.set, P_WINDOW) and c.window ~= window then
        if seq > 0 then
            return 10, ''
        end
        n.window = c.window
    end
    name, starts, ends, limit, maxq, window = n.name, n.starts, n.ends, n.limit, n.maxq, n.window
    return 0, ''
end

local function apply_control(c)
    if closed then
        return 3, ''
    end
    if now >= ends then
        return 4, ''
    end
    if c.action == 0 then
        if paused then
            return 5, ''
        end
        paused = true
    elseif c.action == 1 then
        if not paused then
            return 6, ''
        end
        paused = false
    elseif c.action == 2 then
        closed = true
    elseif c.action == 3 then
        if c.amount < 1 or c.amount > STOCK_MAX then
            return 15, 'add'
        end
        if stock + c.amount > STOCK_MAX then
            return 8, ''
        end
        stock = stock + c.amount
    elseif c.action == 4 then
        if c.amount < 1 or c.amount > STOCK_MAX then
            return 15, 'remove'
        end
        if stock - c.amount < sold + held then
            return 7, ''
        end
        stock = stock - c.amount
    elseif c.action == 5 then
        return patch(c)
    else
        return 15, 'action'
    end
    return 0, ''
end

local trail_n = nil
local new_trail, new_ctl = {}, {}
local function control(c)
    local known = new_ctl[c.req] or (c.req ~= '' and redis.call('HGET', K_CTL, c.req))
    if known then
        local n, sig = string.match(known, '^(%d+)\t(.*)$')
        local entry = new_trail[tonumber(n)] or redis.call('LINDEX', K_LOG, tonumber(n) - 1)
        return sig == signature(c) and 1 or 2, '', entry or ''
    end
    local before = snapshot()
    local r, field = apply_control(c)
    if r ~= 0 then
        return r, field, ''
    end
    trail_n = (trail_n or redis.call('LLEN', K_LOG)) + 1
    local entry = '{"seq":' .. trail_n .. ',"action":"' .. ACTIONS[c.action + 1] .. '","actor":' .. jstr(c.actor) ..
                      ',"request_id":' .. jstr(c.req) .. ',"at":' .. now .. ',"params":' .. params_json(c) ..
                      ',"before":' .. before .. ',"after":' .. snapshot() .. '}'
    new_trail[trail_n] = entry
    new_ctl[c.req] = trail_n .. '\t' .. signature(c)
    flush_orders()
    entries[#entries + 1] = {kind = 'c', j = entry, at_seq = seq}
    pv = pv + 1
    params_changed, changed = true, true
    return 0, '', entry
end

-- ---- purchases ----
local function buy(user, req, q, unadmitted)
    local h = holder(user)
    if h == false then
        return nil, 'BADHOLDER the holder record of ' .. user .. ' is not in this layout'
    end
    local count, units = h and h.count or 0, h and h.units or 0
    -- A holder's replay first, whatever the clock says (I5).
    if count > 0 and req ~= '' then
        local s
        if h.req == req then
            s = h.seq
        else
            local idx = get(H, user .. '\n' .. req)
            local rec = idx and get(H, user .. '\t' .. idx)
            if rec then
                s = tonumber(string.match(rec, '^(%d+)\t'))
                if not s then
                    return nil, 'BADHOLDER an order record of ' .. user .. ' is damaged'
                end
            end
        end
        if s then
            local o = order(s)
            if o == nil then
                -- Made before the order records: one confirmed unit.
                o = {seq = s, u = user, r = req, q = 1, st = 1, c = (s == h.seq and h.at or 0), pb = 0, pid = '',
                     pa = 0, cl = 0}
            end
            return {1, stock - held - sold, units, o}
        end
    end
    if unadmitted and queued then
        return {11, stock - held - sold, units, nil}
    end
    local code
    if now < starts then
        code = 4
    elseif closed or now >= ends then
        code = 5
    elseif paused then
        code = 9
    elseif q > maxq then
        code = 10
    elseif units + q > limit then
        code = 3
    elseif stock - held - sold < q then
        code = 2
    end
    if code then
        local first = nil
        if (code == 3 or code == 2) and units > 0 then
            first = order(h.seq) or {seq = h.seq, u = user, r = h.req, q = 1, st = 1, c = h.at, pb = 0, pid = '',
                                     pa = 0, cl = 0}
        end
        return {code, stock - held - sold, units, first}
    end
    seq = seq + 1
    local o = {seq = seq, u = user, r = req, q = q, st = window > 0 and 0 or 1, c = now,
               pb = window > 0 and now + window or 0, pid = '', pa = 0, cl = 0}
    if o.st == 0 then
        held = held + q
    else
        sold = sold + q
    end
    count, units = count + 1, units + q
    if count == 1 then
        holder_put(user, {count = 1, seq = seq, req = req, at = now, units = units})
    else
        holder_put(user, {count = count, seq = h.seq, req = h.req, at = h.at, units = units})
        put(H, user .. '\t' .. count, seq .. '\t' .. req .. '\t' .. now)
        if req ~= '' then
            put(H, user .. '\n' .. req, tostring(count))
        end
    end
    order_put(o)
    emit_o(o)
    return {o.st == 0 and 8 or 0, stock - held - sold, units, o}
end

-- ---- the operations, in arrival order ----
local rows = {}
local new_due = {}
local i = 3
while i <= #ARGV do
    local kind = ARGV[i]
    if kind == 'b' or kind == 'B' then
        local r, err = buy(ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]) or 1, kind == 'B')
        if not r then
            return redis.error_reply(err)
        end
        local o = r[4]
        if r[1] == 8 then
            new_due[#new_due + 1] = o.pb
            new_due[#new_due + 1] = tostring(o.seq)
        end
        rows[#rows + 1] = order_row({r[1], r[2], r[3]}, o)
        i = i + 4
    elseif kind == 'p' or kind == 'c' or kind == 'f' or kind == 'g' then
        local s = tonumber(ARGV[i + 1])
        local o = s and order(s)
        local n = kind == 'f' or kind == 'g'
        if o == false then
            return redis.error_reply('BADORDER order ' .. ARGV[i + 1] .. ' is damaged')
        end
        if not o then
            rows[#rows + 1] = order_row({retired and 3 or 1, 0}, nil)
        elseif kind == 'c' and ARGV[i + 2] ~= '' and ARGV[i + 2] ~= o.u then
            rows[#rows + 1] = order_row({2, 0}, nil)
        elseif kind == 'g' then
            rows[#rows + 1] = order_row({0, 0}, o)
        elseif kind == 'p' then
            rows[#rows + 1] = order_row({0, transition(o, 'pay', ARGV[i + 2], '')}, o)
        elseif kind == 'c' then
            rows[#rows + 1] = order_row({0, transition(o, 'cancel', '', ARGV[i + 2] == '' and 'admin' or 'buyer')}, o)
        else
            rows[#rows + 1] = order_row({0, transition(o, 'refund', '', '')}, o)
        end
        i = i + (n and 2 or 3)
    elseif kind == 'u' then
        local user = ARGV[i + 1]
        local h = holder(user)
        if h == false then
            return redis.error_reply('BADHOLDER the holder record of ' .. user .. ' is not in this layout')
        end
        local row = {0}
        if not h then
            row[1] = retired and 3 or 0
        else
            for k = 1, h.count do
                local s = h.seq
                if k > 1 then
                    local rec = get(H, user .. '\t' .. k)
                    s = rec and tonumber(string.match(rec, '^(%d+)\t'))
                end
                local o = s and order(s)
                if s and not o then
                    o = {seq = s, u = user, r = k == 1 and h.req or '', q = 1, st = 1, c = 0, pb = 0, pid = '', pa = 0,
                         cl = 0}
                end
                if o then
                    order_row(row, o)
                end
            end
        end
        rows[#rows + 1] = row
        i = i + 2
    elseif kind == 'k' then
        local c = {req = ARGV[i + 1], actor = ARGV[i + 2], action = tonumber(ARGV[i + 3]),
                   amount = tonumber(ARGV[i + 4]), set = tonumber(ARGV[i + 5]), name = ARGV[i + 6],
                   starts = tonumber(ARGV[i + 7]), ends = tonumber(ARGV[i + 8]), limit = tonumber(ARGV[i + 9]),
                   maxq = tonumber(ARGV[i + 10]), window = tonumber(ARGV[i + 11])}
        local r, field, entry = control(c)
        rows[#rows + 1] = {r, field, entry or ''}
        i = i + 12
    else
        return redis.error_reply('BADOP unknown operation ' .. tostring(kind))
    end
end
flush_orders()

-- ---- the writes ----
for k = 1, #entries do
    local e = entries[k]
    if e.kind == 'o' then
        local args = {K_STREAM, e.first .. '-0', 'n', #e.u, 't', now, 'u', table.concat(e.u, '\n'), 'r',
                      table.concat(e.r, '\n')}
        if e.many then
            args[#args + 1], args[#args + 2] = 'q', table.concat(e.q, '\n')
        end
        if window > 0 then
            args[#args + 1], args[#args + 2] = 'p', now + window
        end
        redis.call('XADD', unpack(args))
    elseif e.kind == 'x' then
        redis.call('XADD', K_STREAM, e.at_seq .. '-*', 'k', 'x', 'e', e.e, 't', now, 's', table.concat(e.s, '\n'), 'a',
                   table.concat(e.a, '\n'))
    else
        redis.call('XADD', K_STREAM, e.at_seq .. '-*', 'k', 'c', 'j', e.j)
    end
end
flush(H)
flush(O)
for k = 1, #due_rem, 1000 do
    redis.call('ZREM', K_DUE, unpack(due_rem, k, math.min(k + 999, #due_rem)))
end
for k = 1, #new_due, 1000 do
    redis.call('ZADD', K_DUE, unpack(new_due, k, math.min(k + 999, #new_due)))
end
if trail_n then
    local first = nil
    for n in pairs(new_trail) do
        if not first or n < first then
            first = n
        end
    end
    for n = first, trail_n do
        redis.call('RPUSH', K_LOG, new_trail[n])
    end
    for req, x in pairs(new_ctl) do
        if req ~= '' then
            redis.call('HSET', K_CTL, req, x)
        end
    end
end
if changed then
    v = v + 1
    local args = {K_SALE, 'sold', sold, 'held', held, 'seq', seq, 'v', v}
    if params_changed then
        local more = {'stock', stock, 'paused', paused and 1 or 0, 'closed', closed and 1 or 0, 'pv', pv, 'name', name,
                      'starts_at', starts, 'ends_at', ends, 'per_user_limit', limit, 'max_quantity', maxq,
                      'payment_window_ms', window}
        for k = 1, #more do
            args[#args + 1] = more[k]
        end
    end
    redis.call('HSET', unpack(args))
end

-- ---- the reply ----
local next_due = 0
local head = redis.call('ZRANGE', K_DUE, 0, 0, 'WITHSCORES')
if head[2] then
    next_due = tonumber(head[2])
end
local since = tonumber(ARGV[1]) or -1
local users, covered = {}, since
if since >= 0 and seq > since then
    covered = math.min(seq, since + USERS_MAX)
    local fields = {}
    for s = since + 1, covered do
        fields[#fields + 1] = tostring(s)
    end
    for k = 1, #fields, 1000 do
        local recs = redis.call('HMGET', K_ORD, unpack(fields, k, math.min(k + 999, #fields)))
        for j = 1, #recs do
            local u = recs[j] and string.match(recs[j], '^([^\t]*)\t')
            if not u then
                covered = since -- an order without a record: the caller loads the holders
                users = {}
                break
            end
            users[#users + 1] = u
        end
        if covered == since then
            break
        end
    end
end
local params = {}
if tostring(pv) ~= ARGV[2] then
    params = {name, starts, ends, limit, maxq, window, paused and 1 or 0, closed and 1 or 0}
end
local out = {{seq, now, stock, held, sold, v, pv, next_due, covered, expired}, users, params}
for k = 1, #rows do
    out[#out + 1] = rows[k]
end
return out
