/*
 * users: handlers and SQL of the users resource. Each write runs in one
 * transaction with its audit entry; a change of admin rights first locks
 * every enabled admin's row in id order, so concurrent demotions are
 * serialised and the last enabled admin stays (Argon2id: no connection held).
 */
#include "resources/users.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "db/pool.h"
#include "http/context.h"
#include "resources/audit.h"
#include "resources/auth.h"
#include "resources/sessions.h"
#include "resources/users_model.h"

/* login_failures' counter for password changes, bumped in a window of $2 seconds. */
#define BUMP_WINDOW \
	"failures = CASE WHEN f.window_start > now() - make_interval(secs => $2::int) " \
	"  THEN least(f.failures + 1, 1000000) ELSE 1 END, " \
	"window_start = CASE WHEN f.window_start > now() - make_interval(secs => $2::int) " \
	"  THEN f.window_start ELSE now() END"

static const struct pool_stmt statements[] = {
	/* $1 idle limit in seconds (active sessions), $2 id; users_list: $2 after this id, $3 rows */
	{ "users_list",
	  "SELECT " USERS_COLUMNS " FROM users u WHERE u.id > $2::int8 ORDER BY u.id LIMIT $3::int8" },
	{ "users_get", "SELECT " USERS_COLUMNS " FROM users u WHERE u.id = $2::int8" },
	/*
	 * Row locks are FOR NO KEY UPDATE, the lock an UPDATE of a user takes:
	 * they serialise user writes but not the key-share locks of foreign
	 * keys (a login inserting a session names its user), so those neither
	 * wait here nor deadlock with a write.
	 */
	{ "users_get_for_update",
	  "SELECT " USERS_COLUMNS " FROM users u WHERE u.id = $2::int8 FOR NO KEY UPDATE OF u" },
	{ "users_username", "SELECT username FROM users WHERE id = $1::int8" },
	/* Every enabled admin's row, locked in id order (no deadlock between two). */
	{ "users_lock_admins",
	  "SELECT id FROM users WHERE is_admin AND NOT disabled ORDER BY id FOR NO KEY UPDATE" },
	{ "users_insert",
	  "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, $3::bool) "
	  "ON CONFLICT (username) DO NOTHING RETURNING id" },
	/* $1 id, $2 is_admin, $3 disabled, $4 a new hash or NULL */
	{ "users_update",
	  "UPDATE users SET is_admin = $2::bool, disabled = $3::bool, "
	  "password_hash = coalesce($4, password_hash), updated_at = now() WHERE id = $1::int8" },
	{ "users_end_sessions", "DELETE FROM sessions WHERE user_id = $1::int8" },
	/*
	 * A password change is counted before its current password is checked,
	 * as logins are: $1 key, $2 window seconds, $3 user id; returns the
	 * count, the seconds left in the window and the hash to check.
	 */
	{ "users_password_attempt",
	  "WITH a AS (INSERT INTO login_failures AS f (key, failures, window_start) "
	  "  VALUES ($1::text, 1, now()) ON CONFLICT (key) DO UPDATE SET " BUMP_WINDOW
	  "  RETURNING failures, window_start) "
	  "SELECT a.failures, "
	  "  ceil(extract(epoch FROM a.window_start + make_interval(secs => $2::int) - now()))::int, "
	  "  u.password_hash FROM a, users u WHERE u.id = $3::int8" },
	/* $1 id, $2 new hash, $3 the hash the current password matched */
	{ "users_set_password",
	  "UPDATE users SET password_hash = $2, updated_at = now() "
	  "WHERE id = $1::int8 AND password_hash = $3 AND NOT disabled" },
	{ "users_forget_attempts", "DELETE FROM login_failures WHERE key = $1::text" },
};

/* Every /admin/ route is admin-only; /auth/password is for any user. */
static const struct route routes[] = {
	{ "GET", "/admin/users", users_list, "users.list", AUTH_ADMIN, true, 0 },
	{ "POST", "/admin/users", users_create, "users.create", AUTH_ADMIN, false, 0 },
	{ "PATCH", "/admin/users/{id}", users_patch, "users.patch", AUTH_ADMIN, false, 0 },
	{ "DELETE", "/admin/users/{id}/sessions", users_end_sessions, "users.end_sessions",
	  AUTH_ADMIN, false, 0 },
	{ "POST", "/auth/password", users_change_password, "users.password", AUTH_USER, false, 0 },
};

const struct resource users_resource = {
	"users", routes, RESOURCE_ARRAY_LEN(routes), statements, RESOURCE_ARRAY_LEN(statements),
};

/* ---- helpers ------------------------------------------------------------------ */

static int password_check(struct ctx *c, const struct user_input *in, const char *key,
			  char hash[AUTH_HASH_LEN]);

static void invalid(struct ctx *c, struct json_object *errors)
{
	http_problem(&c->resp, 422, users_errors_detail(errors), errors);
}

/* Roll back what a failed write left open (no-op after COMMIT). */
static void rollback_open(struct ctx *c)
{
	if (c->db && PQtransactionStatus(ctx_db(c, 0)) != PQTRANS_IDLE)
		PQclear(PQexec(ctx_db(c, 0), "ROLLBACK"));
}

/* The {id} of the path as text; -1 with 400 set when it is not an id. */
static int path_id(struct ctx *c, char text[24], int64_t *id)
{
	if (users_parse_id(c->match.var[0], c->match.varlen[0], id) != 0) {
		http_problem(&c->resp, 400,
			     "the user id must be a whole number from 1 to 9223372036854775807", NULL);
		return -1;
	}
	snprintf(text, 24, "%lld", (long long)*id);
	return 0;
}

/*
 * Run a statement of USERS_COLUMNS for user id (stmt: users_get or
 * users_get_for_update). Returns the result with its one row, or NULL
 * with the response set (404 when there is no such user).
 */
static PGresult *get_user(struct ctx *c, PGconn *pg, const char *stmt, const char *id)
{
	char idle[16];
	const char *params[2] = { idle, id };
	PGresult *r;

	snprintf(idle, sizeof(idle), "%d", c->app->cfg->session_idle);
	r = pool_exec_prepared(pg, stmt, 2, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return NULL;
	}
	if (PQntuples(r) != 1) {
		http_problem(&c->resp, 404, "no user has this id", NULL);
		PQclear(r);
		return NULL;
	}
	return r;
}

/* Record the entry of a user write, on the write's transaction. */
static int audit(struct ctx *c, PGconn *pg, const char *id, const char *action,
		 struct json_object *before, struct json_object *after, struct json_object *extra)
{
	PGresult *failed;

	if (audit_record(pg, c->user_id, c->username, AUDIT_USER, strtoll(id, NULL, 10), action,
			 before, after, extra, &failed) == 0)
		return 0;
	ctx_db_error(c, failed);
	PQclear(failed);
	return -1;
}

/* {"password": {"changed": true}}: the audit's only trace of a password. */
static struct json_object *password_changed(void)
{
	struct json_object *o = json_object_new_object(), *p = json_object_new_object();

	json_object_object_add(p, "changed", json_object_new_boolean(1));
	json_object_object_add(o, "password", p);
	return o;
}

static void send_user(struct ctx *c, int status, const PGresult *r)
{
	struct json_object *o = users_row_json(r, 0);

	http_resp_json(&c->resp, status, o);
	json_object_put(o);
}

static void put(struct json_object *o)
{
	if (o)
		json_object_put(o);
}

/*
 * Lock every enabled admin's row, in id order, first thing in a user
 * write's transaction, and check that the actor is still one of them (its
 * session may have been read before its rights were withdrawn). A
 * concurrent change of rights waits for this write or this write for it.
 * Returns the rows (the caller PQclears), or NULL with the response set
 * (403 when the actor is no longer an enabled admin).
 */
static PGresult *lock_admins(struct ctx *c, PGconn *pg)
{
	PGresult *r = pool_exec_prepared(pg, "users_lock_admins", 0, NULL, NULL, NULL, 0);
	char me[24];
	int i;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return NULL;
	}
	/*
	 * The actor among them, checked here, before the write: a write that
	 * changes the actor's own row (a demoted admin promoting itself again)
	 * would pass the audit entry's later check.
	 */
	snprintf(me, sizeof(me), "%lld", (long long)c->user_id);
	for (i = 0; i < PQntuples(r); i++)
		if (strcmp(PQgetvalue(r, i, 0), me) == 0)
			return r;
	http_problem(&c->resp, 403, "your admin rights were withdrawn: the change was not made", NULL);
	PQclear(r);
	return NULL;
}

/* ---- GET and POST /admin/users --------------------------------------------------- */

/* The parameters GET /admin/users takes (a table for http_query_reject_unknown). */
static const struct {
	const char *name;
} list_params[] = { { "limit" }, { "cursor" } };

/* The page's parameters from the query; 0, or -1 with the 400 set. */
static int list_page(struct ctx *c, struct users_page *page)
{
	struct json_object *errors = json_object_new_object();
	const struct http_query *q = &c->req.query;

	http_query_reject_unknown(q, &list_params[0].name, RESOURCE_ARRAY_LEN(list_params),
				  sizeof(list_params[0]), errors);
	if (users_page_parse(http_query_get(q, "limit"), http_query_get(q, "cursor"), page,
			     errors) == 0 && json_object_object_length(errors) == 0) {
		json_object_put(errors);
		return 0;
	}
	http_problem(&c->resp, 400, "some query parameters are invalid: see errors", errors);
	return -1;
}

/*
 * {"items": [...], "next_cursor": ...}: users by id, keyset pages (one row
 * more than the page is read to know whether another follows).
 */
void users_list(struct ctx *c)
{
	char idle[16], after[24], rows[24], *next;
	const char *params[3] = { idle, after, rows };
	struct json_object *o, *items;
	struct users_page page;
	PGconn *pg;
	PGresult *r;
	int i;

	if (list_page(c, &page) != 0 || (pg = ctx_db(c, 0)) == NULL)
		return;
	snprintf(idle, sizeof(idle), "%d", c->app->cfg->session_idle);
	snprintf(after, sizeof(after), "%lld", (long long)page.after);
	snprintf(rows, sizeof(rows), "%lld", (long long)page.limit + 1);
	r = pool_exec_prepared(pg, "users_list", 3, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	o = json_object_new_object();
	items = json_object_new_array();
	for (i = 0; i < PQntuples(r) && i < page.limit; i++)
		json_object_array_add(items, users_row_json(r, i));
	json_object_object_add(o, "items", items);
	if (PQntuples(r) > page.limit) {
		next = users_cursor_make(strtoll(PQgetvalue(r, (int)page.limit - 1, 0), NULL, 10));
		json_object_object_add(o, "next_cursor", json_object_new_string(next));
		free(next);
	} else {
		json_object_object_add(o, "next_cursor", NULL);
	}
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
	PQclear(r);
}

/* Insert the user, audit it and answer 201; the caller rolls back on failure. */
static void create_in_transaction(struct ctx *c, PGconn *pg, const struct user_input *in,
				  const char *hash)
{
	const char *params[3] = { in->username, hash, in->is_admin ? "true" : "false" };
	struct json_object *after = NULL;
	PGresult *admins, *r = NULL, *row = NULL;
	char detail[128];

	if ((admins = lock_admins(c, pg)) == NULL)
		return;
	r = pool_exec_prepared(pg, "users_insert", 3, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		goto out;
	}
	if (PQntuples(r) == 0) {
		snprintf(detail, sizeof(detail), "a user named %s already exists", in->username);
		http_problem(&c->resp, 409, detail, NULL);
		goto out;
	}
	if ((row = get_user(c, pg, "users_get", PQgetvalue(r, 0, 0))) == NULL)
		goto out;
	after = users_audit_json(row, 0);
	if (audit(c, pg, PQgetvalue(r, 0, 0), "create", NULL, after, NULL) != 0 ||
	    ctx_db_exec(c, "COMMIT") != 0)
		goto out;
	http_resp_header(&c->resp, "Location", "/admin/users/%s", PQgetvalue(r, 0, 0));
	send_user(c, 201, row);
out:
	put(after);
	PQclear(admins);
	PQclear(row);
	PQclear(r);
}

void users_create(struct ctx *c)
{
	struct json_object *body = ctx_json_body(c, 0), *errors;
	struct user_input in;
	char hash[AUTH_HASH_LEN];
	PGconn *pg;

	if (body == NULL)
		return;
	if (users_validate(body, USER_USERNAME | USER_PASSWORD | USER_IS_ADMIN,
			   USER_USERNAME | USER_PASSWORD, NULL, &in, &errors) != 0) {
		invalid(c, errors);
		return;
	}
	ctx_db_release(c);	/* no connection held while hashing */
	if (auth_hash_bounded(c, in.password, hash) != 0)
		return;
	if ((pg = ctx_db(c, 0)) != NULL && ctx_db_exec(c, "BEGIN") == 0)
		create_in_transaction(c, pg, &in, hash);
	rollback_open(c);
	sodium_memzero(hash, sizeof(hash));
}

/* ---- PATCH /admin/users/{id} ------------------------------------------------------ */

/*
 * May this change be made? Nobody disables or demotes themselves, and the
 * last enabled admin stays one. admins are the enabled admins' rows, locked
 * by this transaction, before the target's locked row. 0, or -1 with 409 set.
 */
static int patch_allowed(struct ctx *c, int64_t id, const PGresult *admins,
			 const PGresult *before, const struct user_input *in)
{
	int was_admin = *PQgetvalue(before, 0, 2) == 't' && *PQgetvalue(before, 0, 3) != 't';
	int admin_after = (in->sent & USER_IS_ADMIN) ? in->is_admin : *PQgetvalue(before, 0, 2) == 't';
	int disabled_after = (in->sent & USER_DISABLED) ? in->disabled : *PQgetvalue(before, 0, 3) == 't';
	char detail[160];

	if (id == c->user_id && (in->sent & USER_IS_ADMIN) && !in->is_admin) {
		http_problem(&c->resp, 409,
			     "you cannot take away your own admin rights: ask another admin", NULL);
		return -1;
	}
	if (id == c->user_id && (in->sent & USER_DISABLED) && in->disabled) {
		http_problem(&c->resp, 409, "you cannot disable yourself: ask another admin", NULL);
		return -1;
	}
	if (was_admin && (!admin_after || disabled_after) && PQntuples(admins) <= 1) {
		snprintf(detail, sizeof(detail),
			 "%s is the last enabled admin: make another user an admin first",
			 PQgetvalue(before, 0, 1));
		http_problem(&c->resp, 409, detail, NULL);
		return -1;
	}
	return 0;
}

/* Lock, check, update and audit; the caller rolls back on failure. */
static void patch_in_transaction(struct ctx *c, PGconn *pg, const char *id, int64_t nid,
				 const struct user_input *in, const char *hash)
{
	PGresult *admins, *before = NULL, *after = NULL, *u = NULL;
	struct json_object *b = NULL, *a = NULL, *extra = NULL;
	const char *params[4];

	int revokes;

	if ((admins = lock_admins(c, pg)) == NULL)
		return;
	if ((before = get_user(c, pg, "users_get_for_update", id)) == NULL ||
	    patch_allowed(c, nid, admins, before, in) != 0)
		goto out;
	params[0] = id;
	params[1] = ((in->sent & USER_IS_ADMIN) ? in->is_admin : *PQgetvalue(before, 0, 2) == 't')
		    ? "true" : "false";
	params[2] = ((in->sent & USER_DISABLED) ? in->disabled : *PQgetvalue(before, 0, 3) == 't')
		    ? "true" : "false";
	params[3] = in->password ? hash : NULL;
	u = pool_exec_prepared(pg, "users_update", 4, params, NULL, NULL, 0);
	if (PQresultStatus(u) != PGRES_COMMAND_OK) {
		ctx_db_error(c, u);
		goto out;
	}
	/* Read after the update: the trigger has ended the sessions it ends. */
	if ((after = get_user(c, pg, "users_get", id)) == NULL)
		goto out;
	b = users_audit_json(before, 0);
	a = users_audit_json(after, 0);
	extra = in->password ? password_changed() : NULL;
	if (audit(c, pg, id, "update", b, a, extra) != 0 || ctx_db_exec(c, "COMMIT") != 0)
		goto out;
	/* A new password, a disable or a demotion: the old rights end everywhere first. */
	revokes = in->password != NULL ||
		  (*PQgetvalue(after, 0, 3) == 't' && *PQgetvalue(before, 0, 3) != 't') ||
		  (*PQgetvalue(after, 0, 2) != 't' && *PQgetvalue(before, 0, 2) == 't');
	if (revokes)
		sessions_revoked(c, nid);
	send_user(c, 200, after);
out:
	put(b);
	put(a);
	put(extra);
	PQclear(admins);
	PQclear(before);
	PQclear(after);
	PQclear(u);
}

/*
 * Validate the body against the target (the password policy needs its
 * username); your own password also needs the current one
 * (users_own_password_errors). 0 with in filled, or -1 with the response set.
 */
static int patch_input(struct ctx *c, struct json_object *body, const char *id, int64_t nid,
		       struct user_input *in)
{
	unsigned allowed = USER_PASSWORD | USER_IS_ADMIN | USER_DISABLED;
	const char *params[1] = { id };
	struct json_object *errors;
	PGconn *pg;
	PGresult *r;
	int rc = -1;

	if (nid == c->user_id)
		allowed |= USER_CURRENT_PASSWORD;
	if ((pg = ctx_db(c, 0)) == NULL)
		return -1;
	r = pool_exec_prepared(pg, "users_username", 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		ctx_db_error(c, r);
	else if (PQntuples(r) != 1)
		http_problem(&c->resp, 404, "no user has this id", NULL);
	else if (users_validate(body, allowed, 0, PQgetvalue(r, 0, 0), in, &errors) != 0)
		invalid(c, errors);
	else if (nid == c->user_id && (errors = users_own_password_errors(in)) != NULL)
		invalid(c, errors);
	else
		rc = 0;
	PQclear(r);
	return rc;
}

/*
 * Clear the count of wrong current passwords, on the write's transaction:
 * they are forgotten exactly when the change commits. 0, or -1 with the
 * response set.
 */
static int forget_attempts(struct ctx *c, PGconn *pg, const char *key)
{
	const char *params[1] = { key };
	PGresult *r = pool_exec_prepared(pg, "users_forget_attempts", 1, params, NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		rc = -1;
	}
	PQclear(r);
	return rc;
}

/*
 * An admin's own new password goes through password_check first, as on
 * POST /auth/password: the attempt is counted under the same key, 429 past
 * the limit, 403 when the current password is wrong. Another user's reset
 * needs no current password.
 */
void users_patch(struct ctx *c)
{
	struct json_object *body;
	struct user_input in;
	char id[24], key[40], checked[AUTH_HASH_LEN], hash[AUTH_HASH_LEN];
	int64_t nid;
	PGconn *pg;
	int own;

	if (path_id(c, id, &nid) != 0 || (body = ctx_json_body(c, 1)) == NULL ||
	    patch_input(c, body, id, nid, &in) != 0)
		return;
	own = in.password && nid == c->user_id;
	snprintf(key, sizeof(key), "password:%lld", (long long)nid);
	if (own && password_check(c, &in, key, checked) != 0)
		goto out;
	if (in.password) {
		ctx_db_release(c);	/* no connection held while hashing */
		if (auth_hash_bounded(c, in.password, hash) != 0)
			goto out;
	}
	if ((pg = ctx_db(c, 0)) != NULL && ctx_db_exec(c, "BEGIN") == 0 &&
	    (!own || forget_attempts(c, pg, key) == 0))
		patch_in_transaction(c, pg, id, nid, &in, hash);
	rollback_open(c);
out:
	sodium_memzero(checked, sizeof(checked));
	sodium_memzero(hash, sizeof(hash));
}

/* ---- DELETE /admin/users/{id}/sessions ---------------------------------------------- */

void users_end_sessions(struct ctx *c)
{
	struct json_object *extra = NULL, *ended;
	PGresult *admins = NULL, *user = NULL, *r = NULL;
	const char *params[1];
	char id[24];
	int64_t nid;
	PGconn *pg;

	if (path_id(c, id, &nid) != 0 || (pg = ctx_db(c, 0)) == NULL ||
	    ctx_db_exec(c, "BEGIN") != 0)
		return;
	if ((admins = lock_admins(c, pg)) == NULL ||
	    (user = get_user(c, pg, "users_get_for_update", id)) == NULL)
		goto out;
	params[0] = id;
	r = pool_exec_prepared(pg, "users_end_sessions", 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		goto out;
	}
	extra = json_object_new_object();
	ended = json_object_new_object();
	json_object_object_add(ended, "ended", json_object_new_int64(atoll(PQcmdTuples(r))));
	json_object_object_add(extra, "sessions", ended);
	if (audit(c, pg, id, "end_sessions", NULL, NULL, extra) != 0 ||
	    ctx_db_exec(c, "COMMIT") != 0)
		goto out;
	sessions_revoked(c, nid);
	c->resp.status = 204;
out:
	rollback_open(c);
	put(extra);
	PQclear(admins);
	PQclear(user);
	PQclear(r);
}

/* ---- POST /auth/password -------------------------------------------------------------- */

/*
 * Count the attempt, then check the current password with no connection
 * held. 0 with the checked hash in hash, or -1 with the response set
 * (429 after too many wrong ones in the login window, 403 when wrong).
 */
static int password_check(struct ctx *c, const struct user_input *in, const char *key,
			  char hash[AUTH_HASH_LEN])
{
	char window[16], uid[24];
	const char *params[3] = { key, window, uid };
	int failures = 0, retry = 1, ok = -1;
	PGconn *pg;
	PGresult *r;

	if ((pg = ctx_db(c, 0)) == NULL)
		return -1;
	snprintf(window, sizeof(window), "%d", c->app->cfg->login_window);
	snprintf(uid, sizeof(uid), "%lld", (long long)c->user_id);
	r = pool_exec_prepared(pg, "users_password_attempt", 3, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
	} else if (PQntuples(r) != 1) {
		http_problem(&c->resp, 401, "the session has ended: log in again", NULL);
	} else {
		failures = atoi(PQgetvalue(r, 0, 0));
		retry = atoi(PQgetvalue(r, 0, 1));
		snprintf(hash, AUTH_HASH_LEN, "%s", PQgetvalue(r, 0, 2));
		ok = 0;
	}
	PQclear(r);
	ctx_db_release(c);	/* never held while hashing */
	if (ok != 0)
		return -1;
	if (failures > c->app->cfg->login_max_failures) {
		http_resp_header(&c->resp, "Retry-After", "%d", retry > 0 ? retry : 1);
		http_problem(&c->resp, 429,
			     "too many wrong current passwords: wait before trying again", NULL);
		return -1;
	}
	if ((ok = auth_verify_bounded(c, hash, in->current_password)) != 1) {
		if (ok == 0) {
			struct json_object *errors = json_object_new_object();

			json_object_object_add(errors, "current_password",
					       json_object_new_string("is not your current password"));
			http_problem(&c->resp, 403, "the current password is wrong", errors);
		}
		return -1;
	}
	return 0;
}

/*
 * Store the new hash (only if the hash checked is still the user's), which
 * ends every session of the user (migration 0005's trigger); open a fresh
 * one for the caller, clear the attempt count, audit, commit, answer
 * {user, csrf_token} with the new cookie. The caller rolls back on failure.
 */
static void password_store(struct ctx *c, PGconn *pg, const char *key, const char *old_hash,
			   const char *new_hash)
{
	char uid[24], csrf[SESSIONS_CSRF_LEN];
	const char *params[3] = { uid, new_hash, old_hash };
	struct json_object *extra = password_changed(), *o, *u;
	PGresult *r;

	snprintf(uid, sizeof(uid), "%lld", (long long)c->user_id);
	r = pool_exec_prepared(pg, "users_set_password", 3, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		goto out;
	}
	if (strcmp(PQcmdTuples(r), "1") != 0) {
		http_problem(&c->resp, 409,
			     "your password or account was changed meanwhile: log in again", NULL);
		goto out;
	}
	PQclear(r);
	params[0] = key;
	r = pool_exec_prepared(pg, "users_forget_attempts", 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		goto out;
	}
	if (sessions_open(c, pg, c->user_id, csrf) != 0 ||
	    audit(c, pg, uid, "password", NULL, NULL, extra) != 0 ||
	    ctx_db_exec(c, "COMMIT") != 0)
		goto out;
	sessions_revoked(c, c->user_id);	/* the old sessions; the new one is not cached yet */
	o = json_object_new_object();
	u = json_object_new_object();
	json_object_object_add(u, "id", json_object_new_int64(c->user_id));
	json_object_object_add(u, "username", json_object_new_string(c->username));
	json_object_object_add(u, "is_admin", json_object_new_boolean(c->is_admin));
	json_object_object_add(o, "user", u);
	json_object_object_add(o, "csrf_token", json_object_new_string(csrf));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
out:
	sodium_memzero(csrf, sizeof(csrf));
	json_object_put(extra);
	PQclear(r);
}

void users_change_password(struct ctx *c)
{
	struct json_object *body = ctx_json_body(c, 0), *errors;
	char key[40], old_hash[AUTH_HASH_LEN], new_hash[AUTH_HASH_LEN];
	struct user_input in;
	PGconn *pg;

	if (body == NULL)
		return;
	if (users_validate(body, USER_CURRENT_PASSWORD | USER_NEW_PASSWORD,
			   USER_CURRENT_PASSWORD | USER_NEW_PASSWORD, c->username, &in, &errors) != 0) {
		invalid(c, errors);
		return;
	}
	if (strcmp(in.current_password, in.password) == 0) {
		errors = json_object_new_object();
		json_object_object_add(errors, "new_password",
				       json_object_new_string("must differ from the current password"));
		invalid(c, errors);
		return;
	}
	snprintf(key, sizeof(key), "password:%lld", (long long)c->user_id);
	if (password_check(c, &in, key, old_hash) == 0 &&
	    auth_hash_bounded(c, in.password, new_hash) == 0 &&
	    (pg = ctx_db(c, 0)) != NULL && ctx_db_exec(c, "BEGIN") == 0)
		password_store(c, pg, key, old_hash, new_hash);
	rollback_open(c);
	sodium_memzero(old_hash, sizeof(old_hash));
	sodium_memzero(new_hash, sizeof(new_hash));
}
