/*
 * Unit tests of where a request's time went: histograms (hist.h), the
 * statement trace and its per-name histograms (trace.h), the slow-request
 * ring (slowlog.h), and telling a statement's name from its text as
 * PostgreSQL shows it (analytics.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hist.h"
#include "db/trace.h"
#include "obs/slowlog.h"
#include "resources/analytics.h"

static void test_hist_buckets(void **state)
{
	static struct hist h;
	unsigned long long counts[HIST_NBUCKETS + 1];
	double sum;

	(void)state;
	assert_int_equal(hist_bucket(0), 0);
	assert_int_equal(hist_bucket(hist_buckets[0]), 0);	/* le: the bound is inside */
	assert_int_equal(hist_bucket(hist_buckets[0] * 1.01), 1);
	assert_int_equal(hist_bucket(hist_buckets[HIST_NBUCKETS - 1] + 1), HIST_NBUCKETS);
	hist_observe(&h, 0.003);
	hist_observe(&h, 0.003);
	hist_observe(&h, 100);
	hist_observe(&h, -1);	/* a clock step back counts as 0 */
	hist_copy(&h, counts, &sum);
	assert_int_equal(counts[hist_bucket(0.003)], 2);
	assert_int_equal(counts[HIST_NBUCKETS], 1);
	assert_int_equal(counts[0], 1);
	assert_true(sum > 100.005 && sum < 100.007);
}

/* The histogram of name, from trace_stats; fails the test when absent. */
static unsigned long long count_of(const char *name)
{
	struct trace_stat *st = calloc(TRACE_NAMES_MAX, sizeof(*st));
	unsigned long long n = 0;
	int i, k, found = 0;

	assert_non_null(st);
	k = trace_stats(st, TRACE_NAMES_MAX);
	for (i = 0; i < k; i++)
		if (strcmp(st[i].name, name) == 0) {
			int b;

			found = 1;
			for (b = 0; b <= HIST_NBUCKETS; b++)
				n += st[i].counts[b];
		}
	free(st);
	assert_true(found);
	return n;
}

static void test_trace_keeps_a_request_statements(void **state)
{
	static struct trace t;
	int i;

	(void)state;
	trace_note("unit_outside", 0, 0.001);	/* no trace begun: histograms only */
	assert_int_equal(count_of("unit_outside"), 1);
	trace_begin(&t, 100.0, 1);
	trace_note("unit_a", 100.5, 0.010);
	trace_note("unit_slow", 100.6, 0.300);
	trace_note("unit_a", 101.0, 0.020);
	assert_int_equal(t.n, 3);
	assert_string_equal(t.e[1].name, "unit_slow");
	assert_true(t.e[1].at > 0.599 && t.e[1].at < 0.601);
	assert_string_equal(t.slowest, "unit_slow");
	assert_true(t.seconds > 0.329 && t.seconds < 0.331);
	for (i = 0; i < TRACE_MAX; i++)
		trace_note("unit_many", 102.0, 0.001);
	assert_int_equal(t.n, TRACE_MAX);
	assert_int_equal(t.more, 3);
	trace_end();
	trace_note("unit_a", 103.0, 0.5);
	assert_int_equal(t.n, TRACE_MAX);	/* ended: not noted */
	assert_string_equal(t.slowest, "unit_slow");
	assert_int_equal(count_of("unit_a"), 3);
	assert_int_equal(count_of("unit_many"), TRACE_MAX);
	/* a second begin without fresh goes on with the same trace (a parked request) */
	trace_begin(&t, 0, 0);
	trace_note("unit_a", 104.0, 0.001);
	trace_end();
	assert_int_equal(t.more, 4);
	assert_true(t.t0 == 100.0);
}

static void test_trace_names_are_cut_and_bounded(void **state)
{
	static struct trace t;
	char longname[100], name[16];
	int i;

	(void)state;
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	trace_begin(&t, 0, 1);
	trace_note(longname, 0, 0.001);
	trace_end();
	assert_int_equal(strlen(t.e[0].name), TRACE_NAME_LEN - 1);
	/* More names than slots: the rest share "other", nothing overflows. */
	for (i = 0; i < TRACE_NAMES_MAX + 10; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		trace_note(name, 0, 0.001);
	}
	assert_true(count_of("other") >= 10);
}

static void test_slowlog_keeps_the_newest(void **state)
{
	struct slow_request r, *out = calloc(SLOWLOG_MAX, sizeof(*out));
	uint64_t total;
	int i, n;

	(void)state;
	assert_non_null(out);
	n = slowlog_list(out, &total);
	assert_int_equal(n, 0);
	memset(&r, 0, sizeof(r));
	for (i = 0; i < SLOWLOG_MAX + 5; i++) {
		r.status = i;
		slowlog_add(&r);
	}
	n = slowlog_list(out, &total);
	assert_int_equal(n, SLOWLOG_MAX);
	assert_int_equal(total, SLOWLOG_MAX + 5);
	assert_int_equal(out[0].status, SLOWLOG_MAX + 4);		/* newest first */
	assert_int_equal(out[SLOWLOG_MAX - 1].status, 5);	/* the oldest five dropped */
	free(out);
}

static void test_slowlog_shared_entries_are_checked(void **state)
{
	static struct slow_request r;
	struct json_object *o, *back;
	const char *text;
	static const char *const hostile[] = {
		"", "null", "[]", "{}", "{\"at\": 1}", "{{{{{{{{{{", "\"x\"",
		/* one field of the wrong type, one missing, one too many */
		NULL,
	};
	char buf[4096];
	size_t i;

	(void)state;
	snprintf(r.request_id, sizeof(r.request_id), "abc123");
	snprintf(r.method, sizeof(r.method), "PATCH");
	snprintf(r.path, sizeof(r.path), "/admin/paints/7");
	snprintf(r.route, sizeof(r.route), "paints.patch");
	r.status = 200;
	r.total = 1.5;
	trace_begin(&r.trace, 0, 1);
	trace_note("paint_get_for_update", 0.1, 1.2);
	trace_end();
	o = slowlog_json(&r);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	back = slowlog_entry_parse(text, strlen(text));
	assert_non_null(back);
	assert_string_equal(json_object_get_string(json_object_object_get(back, "slowest_statement")),
			    "paint_get_for_update");
	json_object_put(back);
	/* whatever else Redis may hold under the key is refused */
	for (i = 0; hostile[i]; i++)
		assert_null(slowlog_entry_parse(hostile[i], strlen(hostile[i])));
	/* a trailing byte, a cut copy */
	snprintf(buf, sizeof(buf), "%s ", text);
	assert_non_null(back = slowlog_entry_parse(buf, strlen(buf) - 1));
	json_object_put(back);
	assert_null(slowlog_entry_parse(buf, strlen(text) - 1));
	snprintf(buf, sizeof(buf), "%sx", text);
	assert_null(slowlog_entry_parse(buf, strlen(buf)));
	/* a field of the wrong type, one missing, one more */
	json_object_object_add(o, "status", json_object_new_string("200"));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	assert_null(slowlog_entry_parse(text, strlen(text)));
	json_object_object_del(o, "status");
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	assert_null(slowlog_entry_parse(text, strlen(text)));
	json_object_object_add(o, "status", json_object_new_int(200));
	json_object_object_add(o, "extra", json_object_new_int(1));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	assert_null(slowlog_entry_parse(text, strlen(text)));
	json_object_object_del(o, "extra");
	json_object_object_add(o, "path", json_object_new_string(
		"/a-path-longer-than-any-the-service-keeps-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	assert_null(slowlog_entry_parse(text, strlen(text)));
	json_object_put(o);
}

static void test_statement_tag(void **state)
{
	char name[TRACE_NAME_LEN];
	const char *rest;

	(void)state;
	assert_int_equal(analytics_statement_tag("/* paint_get */ SELECT 1", name, sizeof(name), &rest), 0);
	assert_string_equal(name, "paint_get");
	assert_string_equal(rest, "SELECT 1");
	assert_int_equal(analytics_statement_tag("SELECT 1", name, sizeof(name), &rest), -1);
	assert_string_equal(rest, "SELECT 1");
	/* not the pool's comment: left whole */
	assert_int_equal(analytics_statement_tag("/* Drop */ SELECT 1", name, sizeof(name), &rest), -1);
	assert_int_equal(analytics_statement_tag("/* a b */ SELECT 1", name, sizeof(name), &rest), -1);
	assert_int_equal(analytics_statement_tag("/*  */ SELECT 1", name, sizeof(name), &rest), -1);
	assert_int_equal(analytics_statement_tag("/* abc", name, sizeof(name), &rest), -1);
	assert_int_equal(analytics_statement_tag("/* abc */", name, sizeof(name), &rest), -1);
	assert_string_equal(rest, "/* abc */");
	/* a name that does not fit is no name */
	assert_int_equal(analytics_statement_tag("/* abcdefgh */ SELECT 1", name, 8, &rest), -1);
	assert_int_equal(analytics_statement_tag("/* abcdefg */ SELECT 1", name, 8, &rest), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hist_buckets),
		cmocka_unit_test(test_trace_keeps_a_request_statements),
		cmocka_unit_test(test_trace_names_are_cut_and_bounded),
		cmocka_unit_test(test_slowlog_keeps_the_newest),
		cmocka_unit_test(test_slowlog_shared_entries_are_checked),
		cmocka_unit_test(test_statement_tag),
	};

	return cmocka_run_group_tests_name("trace", tests, NULL, NULL);
}
