-- GET /healthz: the FastCGI round trip alone (the service's floor).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

function request()
  return wrk.format("GET", "/healthz")
end
