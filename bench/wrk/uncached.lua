-- The bad day's database-bound load: GET /admin/paints/{id} for random ids
-- in BENCH_MIN_ID..BENCH_MAX_ID, a range the cache does not hold (bench/
-- badday.sh evicts it before each row). BENCH_PURPOSE=background marks
-- the requests as the UI's background refreshes do. BENCH_BACKOFF=1 waits
-- out Retry-After after a 503 before the thread's next request, as the UI
-- does (wrk's delay() is per thread, not per connection: a count of
-- pending back-offs approximates it).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local cookie = os.getenv("BENCH_COOKIE")
local min_id = tonumber(os.getenv("BENCH_MIN_ID") or "1")
local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "10000")
local purpose = os.getenv("BENCH_PURPOSE")
local backoff = os.getenv("BENCH_BACKOFF") == "1"
local headers = { ["Cookie"] = cookie }
if purpose and purpose ~= "" then headers["X-Request-Purpose"] = purpose end
local pending = 0
local base_setup, base_init, base_response = setup, init, response
local nthreads = 0

-- Each thread its own random sequence (LuaJIT seeds every state alike:
-- two threads would ask for the same paints at the same moments).
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
  return wrk.format("GET", "/admin/paints/" .. math.random(min_id, max_id), headers)
end

if backoff then
  function response(status, hdrs, body)
    base_response(status, hdrs, body)
    if status == 503 then
      pending = pending + 1
    end
  end

  function delay()
    if pending > 0 then
      pending = pending - 1
      return 1000
    end
    return 0
  end
end
