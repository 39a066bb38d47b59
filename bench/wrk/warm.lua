-- Read every paint 1..BENCH_MAX_ID once (threads interleave), to fill the cache.
local cookie = os.getenv("BENCH_COOKIE")
local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "10000")
local n = 0
local threads = 0

function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
  thread:set("stride", 2)
end

function request()
  n = n + 1
  local id = ((offset + (n - 1) * stride) % max_id) + 1
  return wrk.format("GET", "/admin/paints/" .. id, { ["Cookie"] = cookie })
end
