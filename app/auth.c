#include "auth.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

#define MIN_PASSWORD 12

int auth_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

int auth_hash_password(const char *password, char out[AUTH_HASH_LEN])
{
	return crypto_pwhash_str(out, password, strlen(password),
				 crypto_pwhash_OPSLIMIT_INTERACTIVE,
				 crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0 ? 0 : -1;
}

int auth_verify_password(const char *hash, const char *password)
{
	return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

void auth_generate_password(char *buf, size_t len)
{
	unsigned char raw[32];
	char enc[64];

	if (len < 17 || len > 43)
		die("auth_generate_password: length %zu out of range", len);
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(enc, sizeof(enc), raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	memcpy(buf, enc, len - 1);
	buf[len - 1] = '\0';
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(enc, sizeof(enc));
}

int auth_username_ok(const char *username)
{
	size_t len = strlen(username);

	return len >= 1 && len <= 64 &&
	       strspn(username, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

int auth_create_admin(PGconn *pg, const char *username, const char *password,
		      int if_missing, int *created, char *err, size_t errlen)
{
	char hash[AUTH_HASH_LEN];
	const char *params[2];
	PGresult *r;
	int rc = -1;

	*created = 0;
	if (!auth_username_ok(username)) {
		snprintf(err, errlen, "username must be 1-64 characters of A-Z a-z 0-9 . _ -");
		return -1;
	}
	if (strlen(password) < MIN_PASSWORD) {
		snprintf(err, errlen, "password must have at least %d characters", MIN_PASSWORD);
		return -1;
	}
	if (auth_hash_password(password, hash) != 0) {
		snprintf(err, errlen, "cannot hash the password (out of memory)");
		return -1;
	}
	params[0] = username;
	params[1] = hash;
	r = PQexecParams(pg, if_missing
		? "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, true) "
		  "ON CONFLICT (username) DO NOTHING RETURNING id"
		: "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, true) "
		  "ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, "
		  "is_admin = true, disabled = false, updated_at = now() "
		  "RETURNING (xmax = 0)",
		2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
		err[strcspn(err, "\n")] = '\0';
		goto out;
	}
	if (if_missing)
		*created = PQntuples(r) == 1;
	else
		*created = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	rc = 0;
out:
	PQclear(r);
	sodium_memzero(hash, sizeof(hash));
	return rc;
}
