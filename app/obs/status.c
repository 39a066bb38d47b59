/*
 * status: `paintstudio status`. It speaks just enough FastCGI (one
 * request, records built by hand) to ask the running process's own socket
 * for /metrics, then prints its pool, cache and alert lines, with a
 * bounded wait so a stuck process cannot hang the operator.
 */
#define _GNU_SOURCE
#include "obs/status.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/util.h"
#include "obs/metrics.h"

enum { FCGI_BEGIN = 1, FCGI_END = 3, FCGI_PARAMS = 4, FCGI_STDIN = 5, FCGI_STDOUT = 6 };

static void record(struct strbuf *sb, int type, const void *data, size_t len)
{
	unsigned char h[8] = { 1, (unsigned char)type, 0, 1,
			       (unsigned char)(len >> 8), (unsigned char)len, 0, 0 };

	strbuf_append(sb, h, sizeof(h));
	strbuf_append(sb, data, len);
}

static void param(struct strbuf *p, const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value);

	/* Short names and values only here: one length byte each. */
	strbuf_putc(p, (char)n);
	strbuf_putc(p, (char)v);
	strbuf_append(p, name, n);
	strbuf_append(p, value, v);
}

static int connect_to(const char *spec, double timeout, char *err, size_t errlen)
{
	struct timeval tv = { (time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6) };
	int fd = -1;

	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		if (strlen(spec + 5) >= sizeof(sa.sun_path)) {
			snprintf(err, errlen, "socket path too long");
			return -1;
		}
		strcpy(sa.sun_path, spec + 5);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			snprintf(err, errlen, "cannot connect to %s: %s", spec + 5, strerror(errno));
			close(fd);
			return -1;
		}
	} else {
		char host[256];
		const char *colon = strrchr(spec, ':');
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
		size_t hlen = colon ? (size_t)(colon - spec) : 0;

		if (colon == NULL || hlen >= sizeof(host)) {
			snprintf(err, errlen, "bad FCGI_LISTEN %s", spec);
			return -1;
		}
		memcpy(host, spec, hlen);
		host[hlen] = '\0';
		if (getaddrinfo(hlen ? host : "127.0.0.1", colon + 1, &hints, &res) != 0) {
			snprintf(err, errlen, "cannot resolve %s", spec);
			return -1;
		}
		for (ai = res; ai; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
				break;
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd < 0) {
			snprintf(err, errlen, "cannot connect to %s: %s", spec, strerror(errno));
			return -1;
		}
	}
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static int read_full(int fd, unsigned char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

int status_fcgi_get(const char *spec, const char *path, double timeout, struct strbuf *out,
		    char *err, size_t errlen)
{
	static const unsigned char begin[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };	/* responder */
	struct strbuf req, params;
	int fd = connect_to(spec, timeout, err, errlen), rc = -1;
	size_t off = 0;

	if (fd < 0)
		return -1;
	strbuf_init(&req);
	strbuf_init(&params);
	param(&params, "REQUEST_METHOD", "GET");
	param(&params, "REQUEST_URI", path);
	param(&params, "QUERY_STRING", "");
	param(&params, "REMOTE_ADDR", "127.0.0.1");
	/* We reached the service's own socket: a local scraper (auth.h). */
	param(&params, "LISTENER_LOCAL", "1");
	param(&params, "SERVER_PROTOCOL", "HTTP/1.1");
	param(&params, "CONTENT_LENGTH", "0");
	record(&req, FCGI_BEGIN, begin, sizeof(begin));
	record(&req, FCGI_PARAMS, params.buf, params.len);
	record(&req, FCGI_PARAMS, "", 0);
	record(&req, FCGI_STDIN, "", 0);
	while (off < req.len) {
		ssize_t w = write(fd, req.buf + off, req.len - off);

		if (w <= 0) {
			snprintf(err, errlen, "write: %s", strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	for (;;) {
		unsigned char h[8], body[65536 + 256];
		size_t len, pad;

		if (read_full(fd, h, 8) != 0) {
			snprintf(err, errlen, "no complete answer within %.0f s", timeout);
			goto out;
		}
		len = ((size_t)h[4] << 8) | h[5];
		pad = h[6];
		if (read_full(fd, body, len + pad) != 0) {
			snprintf(err, errlen, "answer cut short");
			goto out;
		}
		if (h[1] == FCGI_STDOUT)
			strbuf_append(out, body, len);
		else if (h[1] == FCGI_END)
			break;
	}
	rc = 0;
out:
	close(fd);
	strbuf_free(&req);
	strbuf_free(&params);
	return rc;
}

double status_metric(const char *text, const char *metric)
{
	size_t n = strlen(metric);
	const char *p = text;

	/* A sample line: the name at a line start, then " value" or "{labels} value". */
	while ((p = strstr(p, metric)) != NULL) {
		int line_start = p == text || p[-1] == '\n';

		if (line_start && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		if (line_start && p[n] == '{' && strchr(metric, '{') == NULL) {
			const char *sp = strchr(p + n, ' ');

			if (sp)
				return strtod(sp + 1, NULL);
		}
		p += n;
	}
	return -1;
}

/*
 * The first label's value of metric's sample in text ("" when it has
 * none), at most outlen - 1 bytes of it, printable ASCII only.
 */
static void status_label(const char *text, const char *metric, char *out, size_t outlen)
{
	size_t n = strlen(metric), k = 0;
	const char *p = text, *v;

	out[0] = '\0';
	while ((p = strstr(p, metric)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '{' && (v = strchr(p + n, '"')) != NULL) {
			for (v++; *v && *v != '"' && *v != '\n' && k + 1 < outlen; v++)
				if (*v >= 0x20 && *v < 0x7f)
					out[k++] = *v;
			out[k] = '\0';
			return;
		}
		p += n;
	}
}

/* Which servers the process uses: the database primary, the Redis master (with sentinels). */
static void print_server(const char *body)
{
	char server[128];
	double unreachable = status_metric(body, "paintstudio_database_unreachable_seconds");

	status_label(body, "paintstudio_database_server_info", server, sizeof(server));
	printf("%-22s %s, %.0f failovers (the last took %.1f s)%s\n", "database server",
	       server[0] ? server : "(none yet)",
	       status_metric(body, "paintstudio_database_failovers_total"),
	       status_metric(body, "paintstudio_database_failover_seconds"),
	       unreachable > 0 ? ", UNREACHABLE" : "");
	if (unreachable > 0)
		printf("%-22s for %.1f s\n", "", unreachable);
	status_label(body, "paintstudio_redis_master_info", server, sizeof(server));
	if (server[0])
		printf("%-22s %s (sentinels), %.0f switches (the last took %.1f s)\n",
		       "redis master", server,
		       status_metric(body, "paintstudio_redis_master_switches_total"),
		       status_metric(body, "paintstudio_redis_master_last_switch_seconds"));
}

int status_run(const char *spec)
{
	struct strbuf out;
	char err[256], key[96];
	const char *body;
	double hits, misses;
	size_t i;

	strbuf_init(&out);
	if (status_fcgi_get(spec, "/metrics", 5.0, &out, err, sizeof(err)) != 0 ||
	    (body = strstr(out.buf, "\r\n\r\n")) == NULL || strncmp(out.buf, "Status: 200", 11) != 0) {
		fprintf(stderr, "status: %s: %s\n", spec, err[0] ? err : "unexpected answer");
		strbuf_free(&out);
		return 1;
	}
	body += 4;
	hits = status_metric(body, "paintstudio_cache_hits_total");
	misses = status_metric(body, "paintstudio_cache_misses_total");
	printf("%-22s %s\n", "process", spec);
	printf("%-22s %.0f busy of %.0f threads\n", "workers",
	       status_metric(body, "paintstudio_threads_busy"), status_metric(body, "paintstudio_threads"));
	printf("%-22s %.0f MiB resident\n", "memory",
	       status_metric(body, "process_resident_memory_bytes") / 1048576.0);
	printf("%-22s %.0f active, %.0f idle, %.0f waiting, max %.0f\n", "pool",
	       status_metric(body, "paintstudio_pool_connections_active"),
	       status_metric(body, "paintstudio_pool_connections_idle"),
	       status_metric(body, "paintstudio_pool_connections_pending"),
	       status_metric(body, "paintstudio_pool_connections_max"));
	printf("%-22s %.0f timeouts, %.0f opened, %.0f closed\n", "pool totals",
	       status_metric(body, "paintstudio_pool_connections_timeout_total"),
	       status_metric(body, "paintstudio_pool_connections_created_total"),
	       status_metric(body, "paintstudio_pool_connections_closed_total"));
	print_server(body);
	for (i = 1; i <= 8; i++) {	/* the replicas' pools, when there are any */
		char up[96], k2[128], k3[128], k4[128];
		double lag;

		snprintf(up, sizeof(up), "paintstudio_replica_up{pool=\"replica%zu\"}", i);
		if (status_metric(body, up) < 0)
			break;
		snprintf(key, sizeof(key), "paintstudio_replica_lag_seconds{pool=\"replica%zu\"}", i);
		lag = status_metric(body, key);
		snprintf(key, sizeof(key), "paintstudio_replica_pool_connections_active{pool=\"replica%zu\"}", i);
		snprintf(k2, sizeof(k2), "paintstudio_replica_pool_connections_idle{pool=\"replica%zu\"}", i);
		snprintf(k3, sizeof(k3), "paintstudio_replica_reads_total{pool=\"replica%zu\"}", i);
		snprintf(k4, sizeof(k4), "paintstudio_replica_fallbacks_total{pool=\"replica%zu\"}", i);
		printf("replica%-15zu %s, lag %.3f s, %.0f active, %.0f idle, %.0f reads, %.0f fallbacks\n", i,
		       status_metric(body, up) == 1 ? "in use" : "LEFT OUT", lag, status_metric(body, key),
		       status_metric(body, k2), status_metric(body, k3), status_metric(body, k4));
	}
	printf("%-22s %s, %.0f hits, %.0f misses (%.1f%% hit rate), %.0f errors\n", "cache",
	       status_metric(body, "paintstudio_redis_up") == 1 ? "up" : "DOWN", hits, misses,
	       hits + misses > 0 ? 100.0 * hits / (hits + misses) : 0.0,
	       status_metric(body, "paintstudio_cache_errors_total"));
	for (i = 0; i < METRICS_NALERTS; i++) {
		snprintf(key, sizeof(key), "paintstudio_alert_firing{alert=\"%s\"}", metrics_alert_names[i]);
		printf("%-22s %-20s %s\n", i == 0 ? "alerts" : "", metrics_alert_names[i],
		       status_metric(body, key) == 1 ? "FIRING" : "ok");
	}
	strbuf_free(&out);
	return 0;
}
