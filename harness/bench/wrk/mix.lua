-- wrk script: 50% GET, 50% PUT (100-byte value, overwriting) over a preloaded key space.
-- wrk -t2 -c16 -d10s -s harness/bench/wrk/mix.lua http://127.0.0.1:8080 -- 100000
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
local thread_id = 0
setup = function(thread) thread:set("id", thread_id); thread_id = thread_id + 1 end
init = function(args)
  keys = tonumber(args[1]) or 100000
  value = string.rep("m", 100)
  math.randomseed(104729 * (id + 1))
end
request = function()
  local path = "/kv/load-" .. math.random(0, keys - 1)
  if math.random() < 0.5 then return wrk.format("GET", path) end
  return wrk.format("PUT", path, nil, value)
end
