-- wrk script: GET a random key of a preloaded key space load-0 .. load-(N-1).
-- wrk -t2 -c16 -d10s -s harness/bench/wrk/get.lua http://127.0.0.1:8080 -- 100000
-- (python -m harness bench preloads the keys; harness.load.KEY_TEMPLATE names them.)
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
local thread_id = 0
setup = function(thread) thread:set("id", thread_id); thread_id = thread_id + 1 end
init = function(args)
  keys = tonumber(args[1]) or 100000
  math.randomseed(7919 * (id + 1))  -- each thread its own sequence
end
request = function()
  return wrk.format("GET", "/kv/load-" .. math.random(0, keys - 1))
end
