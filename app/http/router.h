/*
 * router: method + path pattern -> handler. Patterns are literal segments
 * and "{name}" placeholders, one segment each ("/admin/paints/{id}").
 * Routes are tried in table order, so a literal route listed before a
 * placeholder route wins ("/admin/paints/stats" before "/admin/paints/{id}").
 * The service's table is gathered from its resources (resources/resources.h)
 * and handed down by main (struct app).
 */
#ifndef PS_ROUTER_H
#define PS_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

struct ctx;

/* Who a route is for (sessions_require admits the request). */
enum auth_level {
	AUTH_NONE,
	AUTH_USER,
	AUTH_ADMIN,
	/*
	 * /metrics: an admin, or a scraper without a session that came
	 * through a listener only this machine can reach (nginx's
	 * LISTENER_LOCAL parameter) or sends "Authorization: Bearer
	 * <METRICS_TOKEN>". Never decided by the client's address.
	 */
	AUTH_LOOPBACK_OR_ADMIN,
};

typedef void (*route_handler)(struct ctx *c);

struct route {
	const char *method;	/* "GET", "POST", ...; GET also answers HEAD */
	const char *pattern;
	route_handler handler;
	const char *name;	/* stable label for logs and metrics */
	enum auth_level auth;	/* who may call it */
	bool read_only;		/* reads only: never writes the database */
	/*
	 * 0: the body is read whole before the handler runs, at most
	 * MAX_BODY_KB. Else the handler reads it in pieces itself
	 * (ctx_body_read), after the request was admitted, and a
	 * Content-Length over this many bytes is answered 413 unread.
	 */
	size_t body_stream;
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

#endif
