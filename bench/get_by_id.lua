-- GET /api/v1/students/{id} with an id drawn uniformly from the seeded range.
scenario = "get_by_id"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "10000")
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

function init(_)
   -- Distinct sequences per thread.
   math.randomseed(os.time() * 100 + (tid or 0))
end

function request()
   return wrk.format("GET", "/api/v1/students/" .. math.random(1, max_id))
end
