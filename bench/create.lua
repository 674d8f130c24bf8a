-- POST /api/v1/students with an email unique per request: run tag (the
-- script argument) + thread number + per-thread counter, so the warm-up and
-- measured runs never collide with each other or with the seed data.
scenario = "create"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

local tag
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   tag = (args[1] or "run") .. "-" .. os.time()
end

function request()
   counter = counter + 1
   local body = string.format(
      '{"name":"Bench Student %d-%d","email":"bench.%s.t%d.n%d@example.com","domain":"Benchmarking","gpa":%.2f}',
      tid, counter, tag, tid, counter, (counter % 1001) / 100)
   return wrk.format("POST", "/api/v1/students", headers, body)
end
