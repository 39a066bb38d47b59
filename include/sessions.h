/*
 * sessions: who is asking. A session is a row of the sessions table known
 * only by the SHA-256 of its 256-bit random token (the token lives in the
 * user's cookie and nowhere else); this module opens and ends sessions,
 * admits each request at its route's level (session, role, Origin and CSRF
 * token), and keeps the process's short session cache: what PostgreSQL
 * said about a token is trusted for one second, so logout, expiry and
 * disabling a user take effect on every process within a second.
 */
#ifndef PS_SESSIONS_H
#define PS_SESSIONS_H

#include <libpq-fe.h>
#include <stdint.h>

#include "resource.h"
#include "router.h"

struct ctx;
struct config;

#define SESSIONS_COOKIE "__Host-ps_session"
/* A CSRF token: 43 base64url characters and a NUL. */
#define SESSIONS_CSRF_LEN 44

/* The statements behind sessions (no routes: /auth/ is auth's). */
extern const struct resource sessions_resource;

/* Keep cfg (idle and absolute limits, origins, metrics token); once, before serving. */
void sessions_setup(const struct config *cfg);

/*
 * Admit the request at level: AUTH_USER needs a valid session, AUTH_ADMIN
 * a session of an enabled admin, AUTH_LOOPBACK_OR_ADMIN also a scraper
 * (router.h); state-changing methods also need an allowed Origin and the
 * session's CSRF token in X-CSRF-Token. Returns 0 with c->user_id,
 * username, is_admin and the session's token and hash set, or -1 with the
 * 401/403/503 response set.
 */
int sessions_require(struct ctx *c, enum auth_level level);

/* The request's Origin is the site itself or in ALLOWED_ORIGINS: 1 or 0. */
int sessions_origin_allowed(struct ctx *c);

/* The CSRF token of a session token, base64url into out. */
void sessions_csrf_for(const unsigned char token[32], char out[SESSIONS_CSRF_LEN]);

/*
 * Open a session for user_id on pg (inside the caller's transaction if it
 * has one), set its cookie on the response and its CSRF token in csrf.
 * Returns 0, or -1 after ctx_db_error set the response (the caller rolls
 * back any transaction).
 */
int sessions_open(struct ctx *c, PGconn *pg, int64_t user_id, char csrf[SESSIONS_CSRF_LEN]);

/*
 * End the request's own session (logout): delete its row, forget it in
 * this process and clear the cookie. Returns 0, or -1 with the response set.
 */
int sessions_end(struct ctx *c);

/*
 * Forget every cached session of user_id in this process (after its
 * sessions were deleted): this process refuses them at once, the others
 * within the cache's second.
 */
void sessions_forget_user(int64_t user_id);

/*
 * The session cache's rule, for an entry read age seconds ago (exposed for
 * its unit test): 1 if it may be served; 0 if it must be read again. An
 * entry is never served at SESSION_CACHE_SECONDS or older; from
 * SESSION_REFRESH_SECONDS on, the first caller gets 0 and *refreshing is
 * set, so the callers after it are served until the new read replaces the
 * entry (a failed read leaves the entry to expire).
 */
int sessions_cache_serves(double age, int *refreshing);

#endif
