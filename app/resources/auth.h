/*
 * auth: passwords and logins (sessions themselves are sessions.h's).
 * Passwords are hashed with Argon2id
 * through libsodium's crypto_pwhash_str (64 MiB, 2 passes: above OWASP's
 * minimum of 19 MiB); the hash string carries its own salt and cost, so
 * costs can rise later without breaking old hashes. Passwords and hashes
 * are never logged or returned.
 */
#ifndef PS_AUTH_H
#define PS_AUTH_H

#include <libpq-fe.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#include "db/pool.h"
#include "resources/resources.h"

struct ctx;
struct config;

#define AUTH_HASH_LEN crypto_pwhash_STRBYTES
/* The password policy (auth_password_problem). */
#define AUTH_PASSWORD_MIN_CHARS 12
#define AUTH_PASSWORD_MAX_BYTES 256

/* A client address's key in login_failures: "addr:" and the address. */
#define AUTH_ADDR_KEY_LEN 64

/*
 * The login policy's key of a client address into out: "addr:1.2.3.4",
 * IPv6 by its /64 ("addr:2001:db8:1:2::/64"; an IPv4-mapped address as
 * IPv4). Returns 0, or -1 with "addr:unknown" in out when addr is NULL or
 * not an address.
 */
int auth_addr_key(const char *addr, char out[AUTH_ADDR_KEY_LEN]);

/* Call once at start-up; -1 if libsodium cannot initialise. */
int auth_init(void);

/*
 * Prepare what logins and sessions need (a dummy hash, so that an unknown
 * user costs the same time as a wrong password). Call once before serving.
 */
void auth_setup(const struct config *cfg);

/* The /auth/ routes and the statements behind logins. */
extern const struct resource auth_resource;

/* POST /auth/login, POST /auth/logout, GET /auth/me */
void auth_login(struct ctx *c);
void auth_logout(struct ctx *c);
void auth_me(struct ctx *c);

/* Delete expired sessions and stale login counters; returns rows removed. */
int auth_cleanup(struct pool *p, const struct config *cfg);

/* Hash password into out (NUL-terminated). -1 only if memory ran out. */
int auth_hash_password(const char *password, char out[AUTH_HASH_LEN]);

/* 1 when password matches hash, else 0 (constant time in the password). */
int auth_verify_password(const char *hash, const char *password);

/*
 * The same two for request handlers: each waits (bounded) for one of the
 * process's Argon2id slots, shared with logins, so password work never
 * takes more than its share of memory and CPU. Call with no database
 * connection held (ctx_db_release first; asserted). auth_hash_bounded
 * returns 0, or -1 with a 503 (or 500) response set; auth_verify_bounded
 * returns 1 (match), 0 (no match), or -1 with a 503 set.
 */
int auth_hash_bounded(struct ctx *c, const char *password, char out[AUTH_HASH_LEN]);
int auth_verify_bounded(struct ctx *c, const char *hash, const char *password);

/*
 * The password policy: at least AUTH_PASSWORD_MIN_CHARS characters (UTF-8
 * code points), at most AUTH_PASSWORD_MAX_BYTES bytes, and not the
 * username in any case (username may be NULL). NULL when password passes,
 * else a static message for the user saying which rule failed.
 */
const char *auth_password_problem(const char *username, const char *password);

/* A random password of len - 1 URL-safe characters (len >= 17). */
void auth_generate_password(char *buf, size_t len);

/* Usernames: 1..64 of [A-Za-z0-9._-]. 1 or 0. */
int auth_username_ok(const char *username);

/*
 * Create the admin user username with password, or, when it exists,
 * reset its password, make it an enabled admin. With if_missing, an
 * existing user is left untouched and *created is 0. Returns 0, or -1
 * with the reason in err.
 */
int auth_create_admin(PGconn *pg, const char *username, const char *password,
		      int if_missing, int *created, char *err, size_t errlen);

#endif
