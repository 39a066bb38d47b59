-- Writes only: PATCH the stock of a random paint (mix.lua's write, without
-- its reads), so every request pays a commit: on HA=1 one the standby has
-- confirmed (synchronous replication). Each thread its own random
-- sequence, as in uncached.lua: two threads would otherwise PATCH the same
-- paints at the same moments and measure row-lock waits.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local cookie = os.getenv("BENCH_COOKIE")
local csrf = os.getenv("BENCH_CSRF")
local origin = os.getenv("BENCH_ORIGIN")
local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "10000")
local headers = { ["Cookie"] = cookie, ["X-CSRF-Token"] = csrf, ["Origin"] = origin,
                  ["Content-Type"] = "application/json" }
local base_setup, base_init = setup, init
local nthreads = 0

function setup(thread)
  base_setup(thread)
  nthreads = nthreads + 1
  thread:set("seed", os.time() * 1000 + nthreads * 7919 + math.floor(os.clock() * 1e6) % 1000)
end

function init(args)
  base_init(args)
  math.randomseed(seed)
end

function request()
  return wrk.format("PATCH", "/admin/paints/" .. math.random(1, max_id), headers,
                    string.format('{"stock": %d}', math.random(50, 500)))
end
