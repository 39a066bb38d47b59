/*
 * sessions: who is asking. A session is a row of the sessions table known
 * only by the SHA-256 of its 256-bit random token; the token lives in the
 * user's cookie, signed (a keyed BLAKE2b MAC under the service's "cookies"
 * key, shared by every process through the service_keys table), so a
 * forged or damaged cookie is refused without a query. This module opens
 * and ends sessions, admits each request at its route's level (session,
 * role, Origin and CSRF token), signs the known-device cookie of logins,
 * and keeps the process's short session cache.
 *
 * Revocation is immediate: once a logout, a change of rights, a disable or
 * a password change has been answered, no process accepts the old session
 * or the old rights for a request that starts afterwards. The cache trusts
 * an entry for half a second from when its query was sent, and every
 * revocation is answered only after that half second has passed since its
 * commit (sessions_revoked).
 */
#ifndef PS_SESSIONS_H
#define PS_SESSIONS_H

#include <libpq-fe.h>
#include <stdint.h>

#include "http/router.h"
#include "resources/resources.h"

struct ctx;
struct config;

#define SESSIONS_COOKIE "__Host-ps_session"
/* A browser that has logged in to an account before (auth's login policy). */
#define SESSIONS_DEVICE_COOKIE "__Host-ps_device"
#define SESSIONS_DEVICE_MAX_AGE (365 * 24 * 3600)
/* A device's id in hex and a NUL. */
#define SESSIONS_DEVICE_KEY_LEN 33
/* Bytes of a cookie's MAC. */
#define SESSIONS_MAC_LEN 16
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
 * End the request's own session (logout): delete its row (and record the
 * logout in the audit trail), clear the cookie, and answer only once no
 * process accepts it any more (sessions_revoked). Returns 0, or -1 with
 * the response set.
 */
int sessions_end(struct ctx *c);

/*
 * After a revocation committed (a logout, or user_id's rights, password
 * or sessions changed): forget user_id's cached sessions in this process
 * (user_id 0: none; sessions_end forgets its own token), give back the
 * request's connection, and wait until no process can still be trusting
 * an entry read before the commit. Call after COMMIT, before answering.
 */
void sessions_revoked(struct ctx *c, int64_t user_id);

/*
 * The request's known-device cookie, when it is genuine: 1 with the user
 * it was issued to in *user_id and the device's id in id (hex); 0 when
 * there is none (or it is forged); -1 with 503 set when the cookies' key
 * cannot be read. Call outside any transaction.
 */
int sessions_device(struct ctx *c, int64_t *user_id, char id[SESSIONS_DEVICE_KEY_LEN]);

/*
 * After a good login of user_id: set a known-device cookie naming a new
 * device, unless the request's already names this user. 0, or -1 with
 * 503 set.
 */
int sessions_device_remember(struct ctx *c, int64_t user_id);

/*
 * The session cache's rule, for an entry read age seconds ago (exposed for
 * its unit test): 1 if it may be served; 0 if it must be read again; 2 if
 * it may be served and this caller has it read again in the background.
 * An entry is never served at SESSION_CACHE_SECONDS (0.5) or older; from
 * SESSION_REFRESH_SECONDS (0.25) on, the first caller gets 2 and
 * *refreshing is set, so the callers after it get 1 until the new read
 * replaces the entry (a failed read clears the flag, or the entry expires).
 */
int sessions_cache_serves(double age, int *refreshing);

/*
 * Stop the thread that reads sessions again before their entries expire
 * (started by the first session look-up): before the pool shuts down.
 */
void sessions_stop(void);

#endif
