-- The bad day's database-bound load: GET /admin/paints/{id} for ids in
-- BENCH_MIN_ID..BENCH_MAX_ID, a range the cache does not hold (bench/
-- badday.sh evicts it before each row). Each id is asked once until the
-- range is used up (a shuffled walk, the threads taking turns: wrk -tN
-- needs BENCH_THREADS=N), so no answer comes from a fill of the same row.
-- BENCH_PURPOSE=background marks the requests as the UI's background
-- refreshes do. BENCH_BACKOFF=1 waits out Retry-After after a 503 before
-- the thread's next request, as the UI does (wrk's delay() is per thread,
-- not per connection: a count of pending back-offs approximates it).
-- BENCH_THINK_MS=N makes each connection a person: after an answer it
-- thinks for a random time of mean N ms (exponential, at most 4N) before
-- its next click.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local cookie = os.getenv("BENCH_COOKIE")
local min_id = tonumber(os.getenv("BENCH_MIN_ID") or "1")
local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "10000")
local purpose = os.getenv("BENCH_PURPOSE")
local backoff = os.getenv("BENCH_BACKOFF") == "1"
local think = tonumber(os.getenv("BENCH_THINK_MS") or "0")
local headers = { ["Cookie"] = cookie }
if purpose and purpose ~= "" then headers["X-Request-Purpose"] = purpose end
local pending = 0
local base_setup, base_init, base_response = setup, init, response
local nthreads = 0
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
local span = max_id - min_id + 1
local stride = 7919		-- a prime: the walk visits every id once when it does not divide span
if span % stride == 0 then stride = 1 end
local asked = 0

-- Each thread its own random sequence for the think times (LuaJIT seeds
-- every state alike) and its turn in the walk.
function setup(thread)
  base_setup(thread)
  nthreads = nthreads + 1
  thread:set("seed", os.time() * 1000 + nthreads * 7919 + math.floor(os.clock() * 1e6) % 1000)
  thread:set("turn", nthreads - 1)
end

function init(args)
  base_init(args)
  math.randomseed(seed)
end

function request()
  local k = asked * threads + turn
  asked = asked + 1
  return wrk.format("GET", "/admin/paints/" .. (min_id + (k * stride) % span), headers)
end

if backoff then
  function response(status, hdrs, body)
    base_response(status, hdrs, body)
    if status == 503 then
      pending = pending + 1
    end
  end
end

if backoff or think > 0 then
  function delay()
    if pending > 0 then
      pending = pending - 1
      return 1000
    end
    if think > 0 then
      return math.floor(math.min(4 * think, -think * math.log(1 - math.random())))
    end
    return 0
  end
end
