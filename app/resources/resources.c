/*
 * resources: the one list of what the service serves. Each entry is a
 * module's struct resource (routes and prepared statements); the router's
 * table and the pool's statements are both gathered from it, so a route
 * and the SQL it runs are registered in one place.
 */
#include "resources/resources.h"

#include "base/util.h"
#include "resources/analytics.h"
#include "resources/audit.h"
#include "resources/auth.h"
#include "resources/bulk.h"
#include "resources/images.h"
#include "resources/imports.h"
#include "resources/ops.h"
#include "resources/paints.h"
#include "resources/sessions.h"
#include "resources/users.h"

/* Order matters only for routes whose patterns overlap (none across resources). */
static const struct resource *const all[] = {
	&ops_resource,
	&auth_resource,
	&sessions_resource,
	&paints_resource,
	&images_resource,
	&imports_resource,
	&bulk_resource,
	&audit_resource,
	&users_resource,
	&analytics_resource,
};

#define NRESOURCES RESOURCE_ARRAY_LEN(all)
#define MAX_ROUTES 80
#define MAX_STMTS 128

const struct route *resources_routes(size_t *n)
{
	static struct route table[MAX_ROUTES];
	static size_t count;
	size_t i, k;

	if (count == 0) {
		for (i = 0; i < NRESOURCES; i++)
			for (k = 0; k < all[i]->nroutes; k++) {
				if (count == MAX_ROUTES)
					die("too many routes: raise MAX_ROUTES in resources.c");
				table[count++] = all[i]->routes[k];
			}
	}
	*n = count;
	return table;
}

const struct pool_stmt *resources_statements(int *n)
{
	static struct pool_stmt table[MAX_STMTS];
	static int count;
	size_t i, k;

	if (count == 0) {
		for (i = 0; i < NRESOURCES; i++)
			for (k = 0; k < all[i]->nstmts; k++) {
				if (count == MAX_STMTS)
					die("too many prepared statements: raise MAX_STMTS in resources.c");
				table[count++] = all[i]->stmts[k];
			}
	}
	*n = count;
	return table;
}
