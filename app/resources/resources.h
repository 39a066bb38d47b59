/*
 * resources: what a module of the service brings (a struct resource: its
 * routes and the prepared statements they run), and the one list of them
 * all, in resources.c. The router and the pool are both fed from that
 * list (main hands them down), so adding a resource is one new module
 * and one line there (docs/development.md, "Adding a resource").
 */
#ifndef PS_RESOURCES_H
#define PS_RESOURCES_H

#include <stddef.h>

#include "db/pool.h"
#include "http/router.h"

struct resource {
	const char *name;		/* for messages: "paints" */
	const struct route *routes;	/* tried in order: literals first */
	size_t nroutes;
	const struct pool_stmt *stmts;	/* prepared on every pooled connection */
	size_t nstmts;
};

/* Fill a struct resource from two static arrays (either may be NULL, 0). */
#define RESOURCE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * The service's route table: every resource's routes in list order,
 * gathered once (the first call; before threads start). Never fails:
 * overflowing the fixed table is a bug and aborts.
 */
const struct route *resources_routes(size_t *n);

/* Every resource's prepared statements, gathered once like the routes. */
const struct pool_stmt *resources_statements(int *n);

#endif
