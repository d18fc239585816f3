-- wrk script: sends the request path 16 times per write (HTTP pipelining).
-- Usage: wrk -s bench/pipeline.lua URL -- [depth] [path]
local depth, path = 16, nil
function init(args)
  depth = tonumber(args[1] or "16")
  path = args[2]
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, path)
  end
  req = table.concat(r)
end
function request()
  return req
end
