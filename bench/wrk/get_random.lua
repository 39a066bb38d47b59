-- GET /admin/paints/{random id} of the demo catalogue.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local cookie = os.getenv("BENCH_COOKIE")
local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "10000")

function request()
  return wrk.format("GET", "/admin/paints/" .. math.random(1, max_id), { ["Cookie"] = cookie })
end
