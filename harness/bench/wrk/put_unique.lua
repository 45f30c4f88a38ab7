-- wrk script: PUT a 100-byte value to a new key per request (key-<thread>-<n>).
-- wrk -t2 -c256 -d10s -s harness/bench/wrk/put_unique.lua http://127.0.0.1:8080
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
local thread_id = 0
setup = function(thread) thread:set("id", thread_id); thread_id = thread_id + 1 end
init = function(args) counter = 0; value = string.rep("v", 100) end
request = function()
  counter = counter + 1
  return wrk.format("PUT", "/kv/key-" .. id .. "-" .. counter, nil, value)
end
