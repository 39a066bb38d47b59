-- GET /admin/paints?brand=...: list pages (BENCH_INM=1 adds the page's
-- ETag as If-None-Match, as the admin UI's polling does).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local cookie = os.getenv("BENCH_COOKIE")
local brands = {}
for b in string.gmatch(os.getenv("BENCH_BRANDS"), "[^|]+") do table.insert(brands, b) end
local etags = {}
for e in string.gmatch(os.getenv("BENCH_ETAGS") or "", "[^|]+") do table.insert(etags, e) end
local inm = os.getenv("BENCH_INM") == "1"

function request()
  local i = math.random(1, #brands)
  local h = { ["Cookie"] = cookie }
  if inm then h["If-None-Match"] = etags[i] end
  return wrk.format("GET", "/admin/paints?limit=50&brand=" .. brands[i], h)
end
