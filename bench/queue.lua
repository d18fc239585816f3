-- wrk script for bench/queue.sh: purchases by a fixed crowd of users, each request a new
-- unit (no request_id), with each user's admission token in the body when the tokens
-- file has them (one "user token" a line; "user -" for none).
-- Usage: wrk ... -s bench/queue.lua URL -- SALE_ID TOKENS_FILE
local users, tokens, sale, i = {}, {}, nil, 0

function init(args)
  sale = args[1]
  for line in io.lines(args[2]) do
    local u, t = line:match("^(%S+) (%S+)$")
    table.insert(users, u)
    table.insert(tokens, t)
  end
  i = math.random(#users)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  i = i % #users + 1
  local body
  if tokens[i] == "-" then
    body = '{"user_id":"' .. users[i] .. '"}'
  else
    body = '{"user_id":"' .. users[i] .. '","admission":"' .. tokens[i] .. '"}'
  end
  return wrk.format(nil, "/api/v1/sales/" .. sale .. "/purchase", nil, body)
end
