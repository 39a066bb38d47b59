/*
 * router: method + path pattern -> handler. Patterns are literal segments
 * and "{name}" placeholders, one segment each ("/admin/paints/{id}").
 * Routes are tried in table order, so a literal route listed before a
 * placeholder route wins ("/admin/paints/stats" before "/admin/paints/{id}").
 */
#ifndef PS_ROUTER_H
#define PS_ROUTER_H

#include <stddef.h>

struct ctx;

typedef void (*route_handler)(struct ctx *c);

struct route {
	const char *method;	/* "GET", "POST", ...; GET also answers HEAD */
	const char *pattern;
	route_handler handler;
	const char *name;	/* stable label for logs and metrics */
	int auth;		/* enum auth_level: who may call it */
};

#define ROUTER_MAX_VARS 4

struct route_match {
	const struct route *route;	/* NULL unless ROUTE_FOUND */
	int nvars;
	const char *var[ROUTER_MAX_VARS];	/* into the path: not copied */
	size_t varlen[ROUTER_MAX_VARS];
	char allow[128];		/* for ROUTE_METHOD_NOT_ALLOWED */
};

enum route_result { ROUTE_FOUND, ROUTE_NOT_FOUND, ROUTE_METHOD_NOT_ALLOWED };

/*
 * Match method and path against table[0..n). On ROUTE_FOUND m->route and
 * m->var[] are set (the vars point into path, which must outlive m); on
 * ROUTE_METHOD_NOT_ALLOWED m->allow lists the methods the path accepts.
 */
enum route_result router_match(const struct route *table, size_t n,
			       const char *method, const char *path,
			       struct route_match *m);

/* The service's route table. */
const struct route *router_routes(size_t *n);

#endif
