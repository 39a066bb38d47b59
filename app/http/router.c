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
	struct route_match best;
	int path_known = 0, fewest = ROUTER_MAX_VARS + 1;
	size_t i;

	/*
	 * The patterns with the fewest variables that match are the path's,
	 * wherever they stand in the table: /admin/paints/import is the
	 * import's path, never a paint id, so a GET there is a 405, not a
	 * bad id. A literal match (no variables) cannot be beaten: it ends
	 * the search at once.
	 */
	memset(m, 0, sizeof(*m));
	memset(&best, 0, sizeof(best));
	for (i = 0; i < n && !(best.route && fewest == 0); i++) {
		struct route_match tmp;

		if (!pattern_match(table[i].pattern, path, &tmp) || tmp.nvars > fewest)
			continue;
		if (tmp.nvars < fewest) {
			fewest = tmp.nvars;
			best.route = NULL;
			m->allow[0] = '\0';
		}
		if (best.route == NULL && method_matches(table[i].method, method)) {
			best = tmp;
			best.route = &table[i];
		}
		path_known = 1;
		allow_add(m->allow, sizeof(m->allow), table[i].method);
		if (strcmp(table[i].method, "GET") == 0)
			allow_add(m->allow, sizeof(m->allow), "HEAD");
	}
	if (best.route) {
		*m = best;
		m->allow[0] = '\0';
		return ROUTE_FOUND;
	}
	return path_known ? ROUTE_METHOD_NOT_ALLOWED : ROUTE_NOT_FOUND;
}
