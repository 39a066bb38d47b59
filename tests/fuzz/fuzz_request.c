/* Request parsing: paths, query strings, paint ids, cookies, entity tags, audit times. */
#include <stdlib.h>
#include <string.h>

#include "resources/audit.h"
#include "fuzz.h"
#include "base/util.h"
#include "http/http.h"
#include "resources/paint_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1), *path = NULL, cookie[64];
	struct http_query q;
	int64_t id;

	memcpy(s, data, size);
	s[size] = '\0';
	if (http_decode_path(s, &path) == 0)
		free(path);
	if (http_parse_query(s, &q) == 0) {
		(void)http_query_get(&q, "brand");
		http_query_free(&q);
	}
	(void)paint_parse_id(s, strlen(s), &id);
	(void)http_cookie_get(s, "__Host-ps_session", cookie, sizeof(cookie));
	(void)http_etag_matches(s, "\"v3\"", 1);
	(void)http_etag_matches(s, "\"v3\"", 0);
	(void)paint_price_error(s);
	free(paint_like_pattern(s));
	(void)audit_time_valid(s);
	free(s);
	return 0;
}
