/* Unit tests of pure observability pieces: quantiles, log line formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "obs/metrics.h"
#include "obs/status.h"

static void test_quantiles(void **state)
{
	unsigned long long counts[HIST_NBUCKETS + 1] = { 0 };

	(void)state;
	assert_true(metrics_quantile(counts, 0.5) == 0);
	counts[2] = 90;		/* <= 2.5 ms */
	counts[8] = 9;		/* <= 250 ms */
	counts[HIST_NBUCKETS] = 1;	/* > 10 s */
	assert_true(metrics_quantile(counts, 0.5) == hist_buckets[2]);
	assert_true(metrics_quantile(counts, 0.9) == hist_buckets[2]);
	assert_true(metrics_quantile(counts, 0.95) == hist_buckets[8]);
	assert_true(metrics_quantile(counts, 1.0) == hist_buckets[HIST_NBUCKETS - 1]);
}

/* Capture what one log call writes to stderr. */
static void capture(enum log_format fmt, enum log_level threshold, char *out, size_t size)
{
	int fds[2], saved = dup(STDERR_FILENO);
	struct log_line l;
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	dup2(fds[1], STDERR_FILENO);
	log_setup(threshold, fmt);
	log_begin(&l, LOG_INFO, "request");
	log_str(&l, "path", "/a \"b\"\n\xff");
	log_int(&l, "status", 200);
	log_num(&l, "total_ms", 1.5);
	log_end(&l);
	log_msg(LOG_DEBUG, "hidden at info");
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fds[1]);
	n = read(fds[0], out, size - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fds[0]);
}

static void test_json_lines(void **state)
{
	char out[1024];
	struct json_object *o, *v;

	(void)state;
	capture(LOG_FORMAT_JSON, LOG_INFO, out, sizeof(out));
	assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));	/* one line */
	o = json_tokener_parse(out);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "path", &v));
	assert_string_equal(json_object_get_string(v), "/a \"b\"\n\xef\xbf\xbd");
	assert_true(json_object_object_get_ex(o, "status", &v));
	assert_int_equal(json_object_get_int(v), 200);
	assert_true(json_object_object_get_ex(o, "ts", &v));
	assert_true(json_object_object_get_ex(o, "level", &v));
	assert_string_equal(json_object_get_string(v), "info");
	json_object_put(o);
	assert_null(strstr(out, "hidden"));
}

static void test_text_lines_and_levels(void **state)
{
	char out[1024];

	(void)state;
	capture(LOG_FORMAT_TEXT, LOG_INFO, out, sizeof(out));
	assert_non_null(strstr(out, " info  request path=\"/a \\\"b\\\"\\n\\ufffd\" status=200 total_ms=1.500\n"));
	capture(LOG_FORMAT_TEXT, LOG_WARN, out, sizeof(out));
	assert_string_equal(out, "");	/* info is below warn */
	log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
}

static void test_status_reads_samples(void **state)
{
	const char *text = "# TYPE a gauge\na 3\nab 4\nc{x=\"1\"} 5\nc{x=\"2\"} 6\n";

	(void)state;
	assert_true(status_metric(text, "a") == 3);
	assert_true(status_metric(text, "ab") == 4);
	assert_true(status_metric(text, "c") == 5);
	assert_true(status_metric(text, "c{x=\"2\"}") == 6);
	assert_true(status_metric(text, "missing") == -1);
}

/* Connections the server closed on a timeout reach the snapshot, each under its reason's name. */
static void test_fcgi_closes_in_the_snapshot(void **state)
{
	struct metrics_snapshot m;

	(void)state;
	metrics_setup(NULL, 0);
	metrics_fcgi_closed(METRICS_FCGI_IDLE_TIMEOUT, 2);
	metrics_fcgi_closed(METRICS_FCGI_REQUEST_TIMEOUT, 1);
	metrics_fcgi_closed(METRICS_FCGI_IDLE_TIMEOUT, 1);
	metrics_snapshot(&m);
	assert_string_equal(m.fcgi_closed[METRICS_FCGI_REQUEST_TIMEOUT].reason, "request_timeout");
	assert_int_equal(m.fcgi_closed[METRICS_FCGI_REQUEST_TIMEOUT].count, 1);
	assert_string_equal(m.fcgi_closed[METRICS_FCGI_IDLE_TIMEOUT].reason, "idle_timeout");
	assert_int_equal(m.fcgi_closed[METRICS_FCGI_IDLE_TIMEOUT].count, 3);
	metrics_snapshot_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_json_lines),
		cmocka_unit_test(test_text_lines_and_levels),
		cmocka_unit_test(test_status_reads_samples),
		cmocka_unit_test(test_fcgi_closes_in_the_snapshot),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
