-- The ceiling: nginx serving a static file as large as a paint's JSON.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

function request()
  return wrk.format("GET", "/bench-static.json")
end
