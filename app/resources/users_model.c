/*
 * users_model: validation of the users resource's bodies and the JSON
 * shape of a user. Pure functions (no database, no HTTP), so the rules
 * live in one place and the unit tests reach them directly. The password
 * policy itself is auth's (auth_password_problem), shared with create-admin.
 */
#include "resources/users_model.h"

#include <stdlib.h>
#include <string.h>

#include "base/cursor.h"
#include "base/util.h"
#include "resources/auth.h"

/* The members a body may name, with their bit. */
static const struct {
	const char *name;
	enum user_field bit;
} fields[] = {
	{ "username", USER_USERNAME },
	{ "password", USER_PASSWORD },
	{ "is_admin", USER_IS_ADMIN },
	{ "disabled", USER_DISABLED },
	{ "current_password", USER_CURRENT_PASSWORD },
	{ "new_password", USER_NEW_PASSWORD },
};

static void field_error(struct json_object *errors, const char *name, const char *why)
{
	if (!json_object_object_get_ex(errors, name, NULL))
		json_object_object_add(errors, name, json_object_new_string(why));
}

/* A JSON string without NUL, or NULL. */
static const char *plain_string(struct json_object *v)
{
	if (!json_object_is_type(v, json_type_string))
		return NULL;
	if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
		return NULL;
	return json_object_get_string(v);
}

/* Check one member; its value goes into in. */
static void check_member(enum user_field bit, const char *name, struct json_object *v,
			 struct user_input *in, struct json_object *errors)
{
	const char *s;

	if (bit == USER_IS_ADMIN || bit == USER_DISABLED) {
		if (!json_object_is_type(v, json_type_boolean)) {
			field_error(errors, name, "must be true or false");
			return;
		}
		if (bit == USER_IS_ADMIN)
			in->is_admin = json_object_get_boolean(v);
		else
			in->disabled = json_object_get_boolean(v);
		return;
	}
	if ((s = plain_string(v)) == NULL) {
		field_error(errors, name, "must be a string (without NUL characters)");
		return;
	}
	if (bit == USER_USERNAME) {
		if (!auth_username_ok(s))
			field_error(errors, name, "must be 1-64 characters of A-Z a-z 0-9 . _ -");
		in->username = s;
	} else if (bit == USER_CURRENT_PASSWORD) {
		in->current_password = s;
	} else {
		in->password = s;
	}
}

int users_validate(struct json_object *body, unsigned allowed, unsigned required,
		   const char *policy_username, struct user_input *in,
		   struct json_object **errors)
{
	struct json_object *e = json_object_new_object();
	size_t i;

	memset(in, 0, sizeof(*in));
	json_object_object_foreach(body, key, val) {
		enum user_field bit = 0;

		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (strcmp(key, fields[i].name) == 0)
				bit = fields[i].bit;
		if (bit == 0 || !(allowed & bit)) {
			field_error(e, key, "is not a field you can send here");
			continue;
		}
		in->sent |= bit;
		check_member(bit, key, val, in, e);
	}
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if ((required & fields[i].bit) && !(in->sent & fields[i].bit))
			field_error(e, fields[i].name, "is required");
	if (in->password) {
		const char *why = auth_password_problem(
			policy_username ? policy_username : in->username, in->password);

		if (why)
			field_error(e, (in->sent & USER_NEW_PASSWORD) ? "new_password" : "password", why);
	}
	if (required == 0 && in->sent == 0)
		field_error(e, "(body)", "send at least one of the fields you may change");
	if (json_object_object_length(e) == 0) {
		json_object_put(e);
		*errors = NULL;
		return 0;
	}
	*errors = e;
	return -1;
}

struct json_object *users_own_password_errors(const struct user_input *in)
{
	struct json_object *e = json_object_new_object();

	if (in->password && !in->current_password)
		field_error(e, "current_password", "is required to change your own password");
	else if (!in->password && in->current_password)
		field_error(e, "current_password", "is sent only with a new password");
	else if (in->password && strcmp(in->password, in->current_password) == 0)
		field_error(e, "password", "must differ from the current password");
	if (json_object_object_length(e) == 0) {
		json_object_put(e);
		return NULL;
	}
	return e;
}

const char *users_errors_detail(struct json_object *errors)
{
	if (json_object_object_length(errors) == 1) {
		json_object_object_foreach(errors, key, val) {
			(void)key;
			return json_object_get_string(val);
		}
	}
	return "some fields are invalid: see errors";
}

int users_parse_id(const char *s, size_t len, int64_t *id)
{
	char buf[24];

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return parse_int64(buf, 1, INT64_MAX, id);
}

int users_page_parse(const char *limit, const char *cursor, struct users_page *p,
		     struct json_object *errors)
{
	struct json_object *o;
	char id[24];
	int rc = 0;

	p->after = 0;
	p->limit = USERS_PAGE_DEFAULT;
	if (limit && parse_int64(limit, 1, USERS_PAGE_MAX, &p->limit) != 0) {
		field_error(errors, "limit", "must be a whole number from 1 to " PS_STR(USERS_PAGE_MAX));
		rc = -1;
	}
	if (cursor) {
		o = cursor_decode(cursor, 80);
		if (o == NULL || cursor_get_id(o, "u", id) != 0 ||
		    parse_int64(id, 1, INT64_MAX, &p->after) != 0) {
			field_error(errors, "cursor", "is not a cursor of this list (it was altered)");
			rc = -1;
		}
		if (o)
			json_object_put(o);
	}
	return rc;
}

char *users_cursor_make(int64_t id)
{
	struct json_object *o = json_object_new_object();
	char *enc;

	json_object_object_add(o, "u", json_object_new_int64(id));
	enc = cursor_encode(o);
	json_object_put(o);
	return enc;
}

struct json_object *users_row_json(const PGresult *r, int row)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_int64(strtoll(PQgetvalue(r, row, 0), NULL, 10)));
	json_object_object_add(o, "username", json_object_new_string(PQgetvalue(r, row, 1)));
	json_object_object_add(o, "is_admin", json_object_new_boolean(*PQgetvalue(r, row, 2) == 't'));
	json_object_object_add(o, "disabled", json_object_new_boolean(*PQgetvalue(r, row, 3) == 't'));
	json_object_object_add(o, "created_at", json_object_new_string(PQgetvalue(r, row, 4)));
	json_object_object_add(o, "last_login_at", PQgetisnull(r, row, 5)
			       ? NULL : json_object_new_string(PQgetvalue(r, row, 5)));
	json_object_object_add(o, "active_sessions",
			       json_object_new_int64(strtoll(PQgetvalue(r, row, 6), NULL, 10)));
	return o;
}

struct json_object *users_audit_json(const PGresult *r, int row)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "username", json_object_new_string(PQgetvalue(r, row, 1)));
	json_object_object_add(o, "is_admin", json_object_new_boolean(*PQgetvalue(r, row, 2) == 't'));
	json_object_object_add(o, "disabled", json_object_new_boolean(*PQgetvalue(r, row, 3) == 't'));
	return o;
}
