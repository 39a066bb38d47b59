-- The ceiling: nginx serving a static file as large as the service's
-- answer (BENCH_STATIC names it: one paint, or one list page).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local path = "/" .. (os.getenv("BENCH_STATIC") or "bench-paint.json")

function request()
  return wrk.format("GET", path)
end
