/*
 * Values read back from Redis (what Redis holds is input): every check a
 * cached value meets before use, on the same bytes. The first byte picks
 * the paint id a paint entry must name (0 to 255), the rest is the value.
 * A value the checks accept must also be what the checks promise: a
 * header-safe entity tag and JSON that json_scan reads whole.
 */
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "fuzz.h"
#include "base/json_scan.h"
#include "http/http.h"
#include "resources/paint_model.h"

/* The body after the first newline, as the checks read it. */
static void body_is_json(const char *v, size_t len)
{
	const char *nl = memchr(v, '\n', len);

	if (nl == NULL || json_scan_check(nl + 1, len - (size_t)(nl - v) - 1) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *v = (const char *)data + 1;
	size_t len;
	uint64_t lsn;

	if (size == 0)
		return 0;
	len = size - 1;
	if (paint_cached_paint_check(v, len, data[0]) == 0 && !(len == 1 && v[0] == '-'))
		body_is_json(v, len);
	if (paint_cached_list_check(v, len) == 0 || paint_cached_stats_check(v, len) == 0) {
		const char *nl = memchr(v, '\n', len);

		if (!http_etag_valid(v, (size_t)(nl - v)) || memchr(v, '\r', (size_t)(nl - v)) != NULL)
			abort();
		body_is_json(v, len);
	}
	(void)json_scan_check(v, len);
	(void)cache_gen_valid(v, len);
	(void)cache_wal_parse(v, len, &lsn);
	return 0;
}
