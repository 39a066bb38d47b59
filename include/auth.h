/*
 * auth: users and their passwords. Passwords are hashed with Argon2id
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

#define AUTH_HASH_LEN crypto_pwhash_STRBYTES

/* Call once at start-up; -1 if libsodium cannot initialise. */
int auth_init(void);

/* Hash password into out (NUL-terminated). -1 only if memory ran out. */
int auth_hash_password(const char *password, char out[AUTH_HASH_LEN]);

/* 1 when password matches hash, else 0 (constant time in the password). */
int auth_verify_password(const char *hash, const char *password);

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
