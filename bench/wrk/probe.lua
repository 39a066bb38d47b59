-- A probe of the bad day: a light, paced load (each connection waits
-- BENCH_DELAY_MS between its requests) that measures how long a request
-- that needs no database takes while others overload PostgreSQL:
-- BENCH_PROBE=healthz (GET /healthz), hot (GET /admin/paints/{1..BENCH_HOT},
-- served from the cache), poll (the UI's background list poll with
-- If-None-Match, BENCH_ETAG, answered 304 from the cache) or static (a
-- file nginx serves itself, as large as /healthz's answer: the machine's
-- own latency under the same load, the ceiling).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local cookie = os.getenv("BENCH_COOKIE")
local probe = os.getenv("BENCH_PROBE") or "healthz"
local hot = tonumber(os.getenv("BENCH_HOT") or "10")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "10")
local poll_path = os.getenv("BENCH_POLL_PATH") or "/admin/paints?sort=-created_at&limit=50"
local etag = os.getenv("BENCH_ETAG")

function request()
  if probe == "healthz" then
    return wrk.format("GET", "/healthz")
  elseif probe == "static" then
    return wrk.format("GET", "/bench-healthz.json")
  elseif probe == "hot" then
    return wrk.format("GET", "/admin/paints/" .. math.random(1, hot), { ["Cookie"] = cookie })
  end
  local h = { ["Cookie"] = cookie, ["X-Request-Purpose"] = "background" }
  if etag and etag ~= "" then h["If-None-Match"] = etag end
  return wrk.format("GET", poll_path, h)
end

function delay()
  return pause
end
