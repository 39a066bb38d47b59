/* Unit tests of the router: patterns, variables, 404 and 405 with Allow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "http/router.h"
#include "resources/auth.h"
#include "resources/resources.h"

static void h_list(struct ctx *c) { (void)c; }
static void h_get(struct ctx *c) { (void)c; }
static void h_put(struct ctx *c) { (void)c; }
static void h_stats(struct ctx *c) { (void)c; }
static void h_stock(struct ctx *c) { (void)c; }

static const struct route table[] = {
	{ "GET", "/admin/paints", h_list, "list", AUTH_ADMIN, true, 0 },
	{ "POST", "/admin/paints", h_list, "create", AUTH_ADMIN, false, 0 },
	{ "GET", "/admin/paints/stats", h_stats, "stats", AUTH_ADMIN, true, 0 },
	{ "GET", "/admin/paints/{id}", h_get, "get", AUTH_ADMIN, true, 0 },
	{ "PUT", "/admin/paints/{id}", h_put, "put", AUTH_ADMIN, false, 0 },
	{ "DELETE", "/admin/paints/{id}", h_put, "delete", AUTH_ADMIN, false, 0 },
	{ "POST", "/admin/paints/{id}/stock", h_stock, "stock", AUTH_ADMIN, false, 0 },
	{ "POST", "/admin/paints/late", h_stats, "late", AUTH_ADMIN, false, 0 },
};
#define N (sizeof(table) / sizeof(table[0]))

static void test_literal_and_variable(void **state)
{
	struct route_match m;

	(void)state;
	assert_int_equal(router_match(table, N, "GET", "/admin/paints", &m), ROUTE_FOUND);
	assert_string_equal(m.route->name, "list");
	assert_int_equal(router_match(table, N, "GET", "/admin/paints/stats", &m), ROUTE_FOUND);
	assert_string_equal(m.route->name, "stats");
	assert_int_equal(router_match(table, N, "GET", "/admin/paints/42", &m), ROUTE_FOUND);
	assert_string_equal(m.route->name, "get");
	assert_int_equal(m.nvars, 1);
	assert_int_equal(m.varlen[0], 2);
	assert_memory_equal(m.var[0], "42", 2);
	assert_int_equal(router_match(table, N, "POST", "/admin/paints/7/stock", &m), ROUTE_FOUND);
	assert_string_equal(m.route->name, "stock");
	assert_memory_equal(m.var[0], "7", 1);
}

static void test_head_is_get(void **state)
{
	struct route_match m;

	(void)state;
	assert_int_equal(router_match(table, N, "HEAD", "/admin/paints/1", &m), ROUTE_FOUND);
	assert_string_equal(m.route->name, "get");
}

static void test_not_found(void **state)
{
	struct route_match m;

	(void)state;
	assert_int_equal(router_match(table, N, "GET", "/admin/paint", &m), ROUTE_NOT_FOUND);
	assert_int_equal(router_match(table, N, "GET", "/admin/paints/", &m), ROUTE_NOT_FOUND);
	assert_int_equal(router_match(table, N, "GET", "/admin/paints//stock", &m), ROUTE_NOT_FOUND);
	assert_int_equal(router_match(table, N, "GET", "/admin/paints/1/stock/x", &m), ROUTE_NOT_FOUND);
	assert_int_equal(router_match(table, N, "GET", "", &m), ROUTE_NOT_FOUND);
	assert_int_equal(router_match(table, N, "GET", "/", &m), ROUTE_NOT_FOUND);
}

static void test_method_not_allowed_lists_allow(void **state)
{
	struct route_match m;

	(void)state;
	assert_int_equal(router_match(table, N, "PATCH", "/admin/paints/1", &m),
			 ROUTE_METHOD_NOT_ALLOWED);
	assert_string_equal(m.allow, "GET, HEAD, PUT, DELETE");
	assert_int_equal(router_match(table, N, "DELETE", "/admin/paints", &m),
			 ROUTE_METHOD_NOT_ALLOWED);
	assert_string_equal(m.allow, "GET, HEAD, POST");
	/*
	 * stats also matches {id}, but a literal path is its own routes' only
	 * (the fewest variables win): a PUT there is a 405, never a bad id.
	 */
	assert_int_equal(router_match(table, N, "POST", "/admin/paints/stats", &m),
			 ROUTE_METHOD_NOT_ALLOWED);
	assert_string_equal(m.allow, "GET, HEAD");
	assert_int_equal(router_match(table, N, "PUT", "/admin/paints/stats", &m),
			 ROUTE_METHOD_NOT_ALLOWED);
	assert_string_equal(m.allow, "GET, HEAD");
	assert_null(m.route);
	/* wherever the literal stands: one listed after the variable pattern */
	assert_int_equal(router_match(table, N, "GET", "/admin/paints/late", &m),
			 ROUTE_METHOD_NOT_ALLOWED);
	assert_string_equal(m.allow, "POST");
	assert_int_equal(router_match(table, N, "POST", "/admin/paints/late", &m), ROUTE_FOUND);
	assert_string_equal(m.route->name, "late");
}

static void test_service_table_is_sane(void **state)
{
	size_t n, i, k;
	const struct route *r = resources_routes(&n);
	struct route_match m;

	(void)state;
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		assert_non_null(r[i].handler);
		assert_non_null(r[i].name);
		assert_true(r[i].pattern[0] == '/');
		/* least privilege: every /admin/ route needs an admin session */
		if (strncmp(r[i].pattern, "/admin/", 7) == 0 && r[i].auth != AUTH_ADMIN)
			fail_msg("%s %s is not admin-only", r[i].method, r[i].pattern);
		/* a read-only route may be sent to a replica: it must be a GET */
		if (r[i].read_only && strcmp(r[i].method, "GET") != 0)
			fail_msg("%s %s is marked read-only", r[i].method, r[i].pattern);
		for (k = 0; k < i; k++)
			if (strcmp(r[k].name, r[i].name) == 0)
				fail_msg("two routes are named %s", r[i].name);
		/* a literal route is reached by its own path, never shadowed */
		if (strchr(r[i].pattern, '{') == NULL &&
		    (router_match(r, n, r[i].method, r[i].pattern, &m) != ROUTE_FOUND ||
		     m.route != &r[i]))
			fail_msg("%s %s is shadowed by an earlier route", r[i].method, r[i].pattern);
	}
	assert_int_equal(router_match(r, n, "GET", "/healthz", &m), ROUTE_FOUND);
	assert_int_equal(router_match(r, n, "GET", "/readyz", &m), ROUTE_FOUND);
	assert_int_equal(router_match(r, n, "GET", "/admin/paints/1", &m), ROUTE_FOUND);
	assert_string_equal(m.route->name, "paints.get");
}

/* Statement names are global on a connection: two resources must not share one. */
static void test_statement_names_are_unique(void **state)
{
	int n, i, k;
	const struct pool_stmt *s = resources_statements(&n);

	(void)state;
	assert_true(n > 0);
	for (i = 0; i < n; i++)
		for (k = 0; k < i; k++)
			if (strcmp(s[k].name, s[i].name) == 0)
				fail_msg("two statements are named %s", s[i].name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literal_and_variable),
		cmocka_unit_test(test_head_is_get),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_method_not_allowed_lists_allow),
		cmocka_unit_test(test_service_table_is_sane),
		cmocka_unit_test(test_statement_names_are_unique),
	};

	return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
