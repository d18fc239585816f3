-- wrk script: POSTs purchases to one sale, each with a user id and request id of its
-- own (a counter per wrk thread), for those who prefer wrk to seckill-bench. wrk only
-- measures speed: it cannot audit the sale (use seckill-bench for that).
--
-- Usage: wrk -t2 -c100 -d10s -s bench/purchase.lua http://127.0.0.1:8080 -- SALE_ID [USERS] [PREFIX]
--   SALE_ID  the sale to buy from (create it first, e.g. with seckill-bench
--            --create-sale ... --requests 1, or POST /api/v1/sales)
--   USERS    size of the user space; user ids wrap around after it, so later requests
--            repeat users (they hear limit_reached or sold_out). Default (0): never wrap.
--   PREFIX   what user ids start with (default "u"). Every run starts again at user 1:
--            give each run on the same sale a prefix of its own, or its buyers are the
--            earlier run's and hear limit_reached instead of confirmed.
-- The answers are tallied per status and printed at the end.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local sale, users, prefix, tid, counter, path
statuses = {} -- global: done() reads it per thread with t:get

function init(args)
  sale = args[1] or os.getenv("SALE") or error("usage: wrk ... -s bench/purchase.lua URL -- SALE_ID [USERS]")
  users = tonumber(args[2] or "0")
  prefix = args[3] or "u"
  tid = tonumber(wrk.thread:get("tid")) or 0
  counter = 0
  path = "/api/v1/sales/" .. sale .. "/purchase"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  -- Threads draw from disjoint sequences: thread t sends users t+1, t+1+T, t+1+2T, ...
  -- (T = 1000 keeps them apart without knowing the thread count in init).
  local n = tid + 1 + (counter - 1) * 1000
  if users > 0 then
    n = (n - 1) % users + 1
  end
  local body = string.format('{"user_id":"%s%d","request_id":"w%d-%d"}', prefix, n, tid, counter)
  return wrk.format(nil, path, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do
        total[k] = (total[k] or 0) + v
      end
    end
  end
  io.write("answers by status:")
  for k, v in pairs(total) do
    io.write(string.format(" %s=%d", k, v))
  end
  io.write("\n")
end
