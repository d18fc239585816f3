-- wrk script: every request is a purchase by a new, distinct user.
-- Usage: wrk -s bench/purchase_wrk.lua URL -- PATH [PREFIX]
--   PATH    e.g. /api/v1/sales/s1/purchase
--   PREFIX  user id prefix, so that several runs do not reuse users (default "w")
-- Answers other than 2xx show in wrk's "Non-2xx or 3xx responses" line; there is no
-- response() hook, which would cost wrk time on every answer.
local threads = 0
local path, prefix, n = "/", "w", 0

function setup(thread)
  -- `tid` becomes a global of that thread's Lua state.
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  path = args[1] or "/"
  prefix = (args[2] or "w") .. (tid or 0) .. "-"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  return wrk.format("POST", path, nil, '{"user_id":"' .. prefix .. n .. '","request_id":"r"}')
end
