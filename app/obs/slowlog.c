/*
 * slowlog: a ring of the last slow requests under one mutex, and the
 * shared log in Redis (slowlog.h).
 */
#include "obs/slowlog.h"

#include <pthread.h>
#include <string.h>

#include "base/util.h"
#include "cache/cache.h"

/* Entries of the shared log are small: anything deeper or longer is not ours. */
#define ENTRY_DEPTH 4

static struct slow_request ring[SLOWLOG_MAX];
static uint64_t added;		/* ring[(added - 1) % SLOWLOG_MAX] is the newest */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void slowlog_add(const struct slow_request *r)
{
	struct json_object *o;
	const char *text;

	pthread_mutex_lock(&mu);
	ring[added % SLOWLOG_MAX] = *r;
	added++;
	pthread_mutex_unlock(&mu);
	o = slowlog_json(r);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	cache_log_push(SLOWLOG_SHARED, text, strlen(text), SLOWLOG_MAX, SLOWLOG_SHARED_TTL);
	(void)cache_take_time();	/* after the request's answer: no request's Redis time */
	json_object_put(o);
}

static struct json_object *ms(double seconds)
{
	return json_object_new_double((double)(long long)(seconds * 1e6) / 1000.0);
}

struct json_object *slowlog_json(const struct slow_request *s)
{
	struct json_object *o = json_object_new_object(), *st = json_object_new_array();
	char at[40];
	int i;

	format_iso8601(s->at, at, sizeof(at));
	json_object_object_add(o, "at", json_object_new_string(at));
	json_object_object_add(o, "request_id", json_object_new_string(s->request_id));
	json_object_object_add(o, "method", json_object_new_string(s->method));
	json_object_object_add(o, "path", json_object_new_string(s->path));
	json_object_object_add(o, "route", json_object_new_string(s->route));
	json_object_object_add(o, "status", json_object_new_int(s->status));
	json_object_object_add(o, "user_id", s->user_id ? json_object_new_int64(s->user_id) : NULL);
	json_object_object_add(o, "total_ms", ms(s->total));
	json_object_object_add(o, "auth_ms", ms(s->auth));
	json_object_object_add(o, "queue_ms", ms(s->queue));
	json_object_object_add(o, "pool_wait_ms", ms(s->pool_wait));
	json_object_object_add(o, "db_ms", ms(s->db));
	json_object_object_add(o, "cache_ms", ms(s->cache));
	json_object_object_add(o, "shed", s->shed[0] ? json_object_new_string(s->shed) : NULL);
	json_object_object_add(o, "slowest_statement", s->trace.slowest[0]
			       ? json_object_new_string(s->trace.slowest) : NULL);
	for (i = 0; i < s->trace.n; i++) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "name", json_object_new_string(s->trace.e[i].name));
		json_object_object_add(e, "at_ms", ms(s->trace.e[i].at));
		json_object_object_add(e, "ms", ms(s->trace.e[i].seconds));
		json_object_array_add(st, e);
	}
	json_object_object_add(o, "statements", st);
	json_object_object_add(o, "statements_not_listed", json_object_new_int(s->trace.more));
	return o;
}

/* o's member key is of type t (json_type_null too when nullable); strings at most max bytes. */
static int member_is(struct json_object *o, const char *key, enum json_type t, int nullable,
		     size_t max)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (v == NULL)
		return nullable;
	if (t == json_type_double && json_object_is_type(v, json_type_int))
		return 1;
	if (!json_object_is_type(v, t))
		return 0;
	return t != json_type_string || (size_t)json_object_get_string_len(v) <= max;
}

static int statements_valid(struct json_object *o)
{
	struct json_object *st;
	size_t i, n;

	if (!json_object_object_get_ex(o, "statements", &st) || !json_object_is_type(st, json_type_array))
		return 0;
	n = json_object_array_length(st);
	if (n > TRACE_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(st, i);

		if (!json_object_is_type(e, json_type_object) ||
		    !member_is(e, "name", json_type_string, 0, TRACE_NAME_LEN) ||
		    !member_is(e, "at_ms", json_type_double, 0, 0) ||
		    !member_is(e, "ms", json_type_double, 0, 0))
			return 0;
	}
	return 1;
}

struct json_object *slowlog_entry_parse(const char *value, size_t len)
{
	static const struct { const char *key; enum json_type t; int nullable; size_t max; } fields[] = {
		{ "at", json_type_string, 0, 40 },
		{ "request_id", json_type_string, 0, 64 },
		{ "method", json_type_string, 0, 8 },
		{ "path", json_type_string, 0, 160 },
		{ "route", json_type_string, 0, 40 },
		{ "status", json_type_int, 0, 0 },
		{ "user_id", json_type_int, 1, 0 },
		{ "total_ms", json_type_double, 0, 0 },
		{ "auth_ms", json_type_double, 0, 0 },
		{ "queue_ms", json_type_double, 0, 0 },
		{ "pool_wait_ms", json_type_double, 0, 0 },
		{ "db_ms", json_type_double, 0, 0 },
		{ "cache_ms", json_type_double, 0, 0 },
		{ "shed", json_type_string, 1, 24 },
		{ "slowest_statement", json_type_string, 1, TRACE_NAME_LEN },
		{ "statements_not_listed", json_type_int, 0, 0 },
	};
	struct json_tokener *tok = json_tokener_new_ex(ENTRY_DEPTH);
	struct json_object *o;
	size_t i;

	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = len <= (size_t)CACHE_LOG_VALUE_MAX ? json_tokener_parse_ex(tok, value, (int)len) : NULL;
	if (o && (json_tokener_get_error(tok) != json_tokener_success ||
		  json_tokener_get_parse_end(tok) != len))
		o = (json_object_put(o), NULL);
	json_tokener_free(tok);
	if (o == NULL || !json_object_is_type(o, json_type_object) ||
	    json_object_object_length(o) != (int)(sizeof(fields) / sizeof(fields[0])) + 1 ||
	    !statements_valid(o))
		goto bad;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!member_is(o, fields[i].key, fields[i].t, fields[i].nullable, fields[i].max))
			goto bad;
	return o;
bad:
	if (o)
		json_object_put(o);
	return NULL;
}

int slowlog_list(struct slow_request *out, uint64_t *total)
{
	int n = 0;

	pthread_mutex_lock(&mu);
	while ((uint64_t)n < added && n < SLOWLOG_MAX) {
		out[n] = ring[(added - 1 - (uint64_t)n) % SLOWLOG_MAX];
		n++;
	}
	*total = added;
	pthread_mutex_unlock(&mu);
	return n;
}
