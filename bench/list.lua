-- GET /api/v1/students?limit=20: the first page, counted over the whole table.
scenario = "list"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local req = wrk.format("GET", "/api/v1/students?limit=20")

function request()
   return req
end
