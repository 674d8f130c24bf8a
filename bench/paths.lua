-- GET each path of the file named by BENCH_PATHS (one per line, written by
-- bench/scale_paths.py), in turn; each wrk thread starts at its own place in
-- the list. BENCH_SCENARIO names the run in the BENCH line.
scenario = os.getenv("BENCH_SCENARIO") or "paths"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

local requests = {}
local next_index = 1

function init(_)
   local file = assert(os.getenv("BENCH_PATHS"), "BENCH_PATHS is not set")
   for line in io.lines(file) do
      if line ~= "" then
         requests[#requests + 1] = wrk.format("GET", line)
      end
   end
   assert(#requests > 0, "no paths in " .. file)
   -- Threads start at different places rather than all on the same path
   -- (a thread's init may run before the next thread exists, so the number
   -- of threads is not known here).
   next_index = 1 + ((tid or 1) - 1) * 7919 % #requests
end

function request()
   local req = requests[next_index]
   next_index = next_index % #requests + 1
   return req
end
