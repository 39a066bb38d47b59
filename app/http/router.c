/*
 * router: matches a method and a path against a route table (each
 * "{name}" placeholder is one segment), answering the route, or, for a
 * 405, the methods the path allows. The service's table is gathered from
 * the resources (resources.c); this file knows none of them.
 */
#include "http/router.h"

#include <string.h>

/* Match one pattern against path; fill m's vars on success. */
static int pattern_match(const char *pattern, const char *path, struct route_match *m)
{
	const char *p = pattern, *s = path;

	m->nvars = 0;
	while (*p && *s) {
		if (*p == '{') {
			const char *pend = strchr(p, '}');
			size_t len = strcspn(s, "/");

			if (pend == NULL || len == 0 || m->nvars == ROUTER_MAX_VARS)
				return 0;
			m->var[m->nvars] = s;
			m->varlen[m->nvars] = len;
			m->nvars++;
			p = pend + 1;
			s += len;
		} else if (*p == *s) {
			p++;
			s++;
		} else {
			return 0;
		}
	}
	return *p == '\0' && *s == '\0';
}

static int method_matches(const char *route_method, const char *method)
{
	if (strcmp(route_method, method) == 0)
		return 1;
	return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Add method to a comma-separated list unless it is there already. */
static void allow_add(char *allow, size_t size, const char *method)
{
	size_t len = strlen(allow), mlen = strlen(method);
	const char *at = allow;

	while ((at = strstr(at, method)) != NULL) {
		if ((at == allow || at[-1] == ' ') && (at[mlen] == ',' || at[mlen] == '\0'))
			return;
		at += mlen;
	}
	if (len + mlen + 3 >= size)
		return;
	if (len) {
		memcpy(allow + len, ", ", 2);
		len += 2;
	}
	memcpy(allow + len, method, mlen + 1);
}

enum route_result router_match(const struct route *table, size_t n,
			       const char *method, const char *path,
			       struct route_match *m)
{
	int path_known = 0, fewest = ROUTER_MAX_VARS + 1;
	size_t i;

	/*
	 * In table order, literals first: once a pattern with fewer variables
	 * matched the path, those with more are not the path's. So
	 * /admin/paints/import is the import's path, never a paint id, and a
	 * GET there is a 405, not a bad id.
	 */
	memset(m, 0, sizeof(*m));
	for (i = 0; i < n; i++) {
		struct route_match tmp;

		if (!pattern_match(table[i].pattern, path, &tmp) || tmp.nvars > fewest)
			continue;
		if (tmp.nvars < fewest) {
			fewest = tmp.nvars;
			m->allow[0] = '\0';
		}
		if (method_matches(table[i].method, method)) {
			*m = tmp;
			m->route = &table[i];
			m->allow[0] = '\0';
			return ROUTE_FOUND;
		}
		path_known = 1;
		allow_add(m->allow, sizeof(m->allow), table[i].method);
		if (strcmp(table[i].method, "GET") == 0)
			allow_add(m->allow, sizeof(m->allow), "HEAD");
	}
	return path_known ? ROUTE_METHOD_NOT_ALLOWED : ROUTE_NOT_FOUND;
}
