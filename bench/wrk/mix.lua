-- 90 % reads of random paints, 10 % writes: PATCH a stock value or move
-- stock by one through the atomic route.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local cookie = os.getenv("BENCH_COOKIE")
local csrf = os.getenv("BENCH_CSRF")
local origin = os.getenv("BENCH_ORIGIN")
local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "10000")

function request()
  local id = math.random(1, max_id)
  local r = math.random(1, 100)
  if r <= 90 then
    return wrk.format("GET", "/admin/paints/" .. id, { ["Cookie"] = cookie })
  end
  local h = { ["Cookie"] = cookie, ["X-CSRF-Token"] = csrf, ["Origin"] = origin,
              ["Content-Type"] = "application/json" }
  if r <= 95 then
    return wrk.format("PATCH", "/admin/paints/" .. id, h,
                      string.format('{"stock": %d}', math.random(50, 500)))
  end
  return wrk.format("POST", "/admin/paints/" .. id .. "/stock", h, '{"delta": 1}')
end
