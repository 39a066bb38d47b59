/*
 * users: the admin users resource. GET/POST /admin/users, PATCH
 * /admin/users/{id}, DELETE /admin/users/{id}/sessions (admins only) and
 * POST /auth/password (any user, for their own password). Every write
 * records its audit entry in its transaction; nobody can disable or
 * demote themselves or the last enabled admin (409).
 */
#ifndef PS_USERS_H
#define PS_USERS_H

#include "resources/resources.h"

struct ctx;

/* The routes above and their statements (app/resources/resources.c lists it). */
extern const struct resource users_resource;

void users_list(struct ctx *c);
void users_create(struct ctx *c);
void users_patch(struct ctx *c);
void users_end_sessions(struct ctx *c);
void users_change_password(struct ctx *c);

#endif
