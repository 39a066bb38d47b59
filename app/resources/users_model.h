/*
 * users_model: the users resource's pure parts, apart from HTTP and SQL:
 * which members a body may carry and their rules (username, password
 * policy, flags), and the JSON shape of a user. No I/O; the unit tests
 * target these.
 */
#ifndef PS_USERS_MODEL_H
#define PS_USERS_MODEL_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdint.h>

/* Members a body may carry (a bit set). */
enum user_field {
	USER_USERNAME = 1 << 0,
	USER_PASSWORD = 1 << 1,
	USER_IS_ADMIN = 1 << 2,
	USER_DISABLED = 1 << 3,
	USER_CURRENT_PASSWORD = 1 << 4,	/* POST /auth/password */
	USER_NEW_PASSWORD = 1 << 5,
};

/* A validated body; strings are borrowed from the body (live as long as it). */
struct user_input {
	unsigned sent;			/* enum user_field bits present */
	const char *username;
	const char *password;		/* "password" or "new_password" */
	const char *current_password;
	int is_admin, disabled;
};

/*
 * Check body against allowed (enum user_field bits) and required (a
 * subset of allowed). policy_username, when not NULL, is the username the
 * password policy compares against (else the body's username). Returns 0
 * with in filled, or -1 with *errors a new JSON object of per-field
 * messages (caller owns it; http_problem consumes it).
 */
int users_validate(struct json_object *body, unsigned allowed, unsigned required,
		   const char *policy_username, struct user_input *in,
		   struct json_object **errors);

/*
 * The rules of a change to your own password through PATCH /admin/users:
 * with "password" comes "current_password" (as POST /auth/password asks),
 * and the new one differs from it; "current_password" comes only with
 * "password". in is a validated body. NULL when it passes, else a new JSON
 * object of per-field messages (caller owns it; http_problem consumes it).
 */
struct json_object *users_own_password_errors(const struct user_input *in);

/* The detail line for a 422 with these errors: the one message, or a summary. */
const char *users_errors_detail(struct json_object *errors);

/*
 * Parse a user id from s[0..len): a whole number 1..INT64_MAX, no sign or
 * spaces. 0 and *id set, or -1.
 */
int users_parse_id(const char *s, size_t len, int64_t *id);

/* GET /admin/users pages: limit 1..USERS_PAGE_MAX, USERS_PAGE_DEFAULT when absent. */
#define USERS_PAGE_DEFAULT 50
#define USERS_PAGE_MAX 200

/* One page of the list: the users whose id is above after (0: the first), at most limit. */
struct users_page {
	int64_t after;
	int64_t limit;
};

/*
 * Read the list's parameters, limit and cursor (the next_cursor of the
 * previous page), each NULL when absent, into p. Returns 0, or -1 after
 * adding a message for each bad one to errors (a JSON object the caller owns).
 */
int users_page_parse(const char *limit, const char *cursor, struct users_page *p,
		     struct json_object *errors);

/* The next_cursor of a page whose last user has id: base64url of {"u": id}. Caller frees. */
char *users_cursor_make(int64_t id);

/*
 * The SQL columns of a user as users_row_json reads them; $1 is the idle
 * limit (seconds) that decides which sessions are active.
 */
#define USERS_COLUMNS \
	"u.id, u.username, u.is_admin, u.disabled, " \
	"to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
	"to_char(u.last_login_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
	"(SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at > now() " \
	"  AND s.last_seen_at > now() - make_interval(secs => $1::int))"

/*
 * Row row of r (USERS_COLUMNS) as {id, username, is_admin, disabled,
 * created_at, last_login_at (null: never), active_sessions}. Caller puts.
 */
struct json_object *users_row_json(const PGresult *r, int row);

/* {username, is_admin, disabled} of row row: what an audit entry compares. */
struct json_object *users_audit_json(const PGresult *r, int row);

#endif
