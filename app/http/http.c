/*
 * http: the request and the response as plain data. Paths, query strings,
 * cookies and conditional headers are parsed with bounds, %-escapes and
 * UTF-8 checked; responses are built in memory, errors as problem+json.
 * The only libfcgi call reads a parameter; context.c does the I/O.
 */
#define _GNU_SOURCE
#include "http/http.h"

#include <fcgiapp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

int http_decode_path(const char *uri, char **out)
{
	size_t n = strcspn(uri, "?#");

	if (n == 0 || uri[0] != '/')
		return -1;
	return pct_decode(uri, n, 0, out);
}

int http_parse_query(const char *qs, struct http_query *q)
{
	const char *p = qs;

	memset(q, 0, sizeof(*q));
	if (qs == NULL)
		return 0;
	while (*p) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		struct http_param *prm;

		if (len == 0) {	/* "a=1&&b=2": tolerate empty pieces */
			p++;
			continue;
		}
		if (q->count == HTTP_MAX_PARAMS)
			goto bad;
		prm = &q->params[q->count];
		if (eq) {
			if (pct_decode(p, (size_t)(eq - p), 1, &prm->key))
				goto bad;
			if (pct_decode(eq + 1, (size_t)(p + len - eq - 1), 1, &prm->value)) {
				free(prm->key);
				prm->key = NULL;
				goto bad;
			}
		} else {
			if (pct_decode(p, len, 1, &prm->key))
				goto bad;
			prm->value = xstrdup("");
		}
		q->count++;
		p += len;
		if (*p == '&')
			p++;
	}
	return 0;
bad:
	http_query_free(q);
	return -1;
}

void http_query_free(struct http_query *q)
{
	int i;

	for (i = 0; i < q->count; i++) {
		free(q->params[i].key);
		free(q->params[i].value);
	}
	q->count = 0;
}

const char *http_query_get(const struct http_query *q, const char *name)
{
	int i;

	for (i = 0; i < q->count; i++)
		if (strcmp(q->params[i].key, name) == 0)
			return q->params[i].value;
	return NULL;
}

const char *http_param(const struct http_req *req, const char *name)
{
	if (req->envp == NULL)
		return NULL;
	return FCGX_GetParam(name, req->envp);
}

void http_resp_init(struct http_resp *resp)
{
	resp->status = 0;
	resp->content_type = NULL;
	resp->streamed = 0;
	strbuf_init(&resp->headers);
	strbuf_init(&resp->body);
}

void http_resp_free(struct http_resp *resp)
{
	strbuf_free(&resp->headers);
	strbuf_free(&resp->body);
}

void http_resp_reset(struct http_resp *resp)
{
	resp->status = 0;
	resp->content_type = NULL;
	resp->streamed = 0;
	strbuf_reset(&resp->headers);
	strbuf_reset(&resp->body);
}

/* When a refused header was last logged: at most one line a minute. */
static atomic_llong refused_log_ms;

/* Whether s is a header field name: an RFC 9110 token. */
static int header_name_ok(const char *s)
{
	size_t n = strspn(s, "!#$%&'*+-.^_`|~0123456789"
			  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");

	return n > 0 && s[n] == '\0';
}

/* Whether s is a header field value: no control byte but tab (no CR, no LF, no NUL). */
static int header_value_ok(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return 0;
	return 1;
}

int http_resp_header(struct http_resp *resp, const char *name, const char *fmt, ...)
{
	va_list ap;
	char value[1024];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(value) || !header_name_ok(name) || !header_value_ok(value)) {
		/* Never sent: a split or cut header would be a response of someone else's making. */
		if (log_allowed(&refused_log_ms, 60.0)) {
			struct log_line l;

			log_begin(&l, LOG_WARN, "http: a response header with a control byte, "
				  "a bad name or too long a value was dropped");
			log_str(&l, "header", header_name_ok(name) ? name : "(bad name)");
			log_end(&l);
		}
		return -1;
	}
	strbuf_printf(&resp->headers, "%s: %s\r\n", name, value);
	return 0;
}

void http_resp_json_raw(struct http_resp *resp, int status, const char *json, size_t len)
{
	resp->status = status;
	resp->content_type = "application/json";
	strbuf_reset(&resp->body);
	strbuf_append(&resp->body, json, len);
}

void http_resp_json(struct http_resp *resp, int status, struct json_object *obj)
{
	size_t len;
	const char *s = json_object_to_json_string_length(obj,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

	http_resp_json_raw(resp, status, s, len);
}

void http_problem(struct http_resp *resp, int status, const char *detail,
		  struct json_object *errors)
{
	struct json_object *members = NULL;

	if (errors) {
		members = json_object_new_object();
		json_object_object_add(members, "errors", errors);
	}
	http_problem_with(resp, status, detail, members);
}

void http_problem_with(struct http_resp *resp, int status, const char *detail,
		       struct json_object *members)
{
	struct json_object *o = json_object_new_object();
	const char *title = http_reason(status);

	json_object_object_add(o, "type", json_object_new_string("about:blank"));
	json_object_object_add(o, "title", json_object_new_string(title));
	json_object_object_add(o, "status", json_object_new_int(status));
	json_object_object_add(o, "detail", json_object_new_string(detail));
	if (members) {
		json_object_object_foreach(members, key, val)
			json_object_object_add(o, key, json_object_get(val));
		json_object_put(members);
	}
	json_object_object_add(o, "error", json_object_new_string(title));
	http_resp_json(resp, status, o);
	resp->content_type = "application/problem+json";
	json_object_put(o);
}

const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

int http_resp_head(const struct http_resp *resp, int head_only, struct strbuf *out)
{
	int status = resp->status ? resp->status : 500;
	int bodyless = status == 204 || status == 304;

	strbuf_printf(out, "Status: %d %s\r\n", status, http_reason(status));
	if (!bodyless && resp->content_type)
		strbuf_printf(out, "Content-Type: %s\r\n", resp->content_type);
	if (!bodyless && !resp->streamed)
		strbuf_printf(out, "Content-Length: %zu\r\n", resp->body.len);
	strbuf_append(out, resp->headers.buf, resp->headers.len);
	strbuf_puts(out, "\r\n");
	return !bodyless && !head_only;
}

void http_resp_serialise(const struct http_resp *resp, int head_only, struct strbuf *out)
{
	if (http_resp_head(resp, head_only, out))
		strbuf_append(out, resp->body.buf, resp->body.len);
}

int http_etag_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 3 || len > HTTP_ETAG_MAX || s[0] != '"' || s[len - 1] != '"')
		return 0;
	for (i = 1; i < len - 1; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || strchr("-_./:", s[i]) != NULL) || s[i] == '\0')
			return 0;
	return 1;
}

int http_etag_matches(const char *header, const char *etag, int weak)
{
	size_t elen = strlen(etag);
	const char *p = header;

	if (header == NULL)
		return 0;
	while (*p) {
		int is_weak = 0;
		const char *end;

		p += strspn(p, " \t,");
		if (*p == '\0')
			break;
		if (*p == '*')
			return 1;
		if (p[0] == 'W' && p[1] == '/') {
			is_weak = 1;
			p += 2;
		}
		if (*p != '"')
			return 0;	/* malformed list: match nothing */
		end = strchr(p + 1, '"');
		if (end == NULL)
			return 0;
		if ((size_t)(end + 1 - p) == elen && memcmp(p, etag, elen) == 0 &&
		    (weak || !is_weak))
			return 1;
		p = end + 1;
	}
	return 0;
}

int http_cookie_get(const char *header, const char *name, char *buf, size_t size)
{
	size_t nlen = strlen(name);
	const char *p = header;

	if (header == NULL)
		return -1;
	while (*p) {
		size_t len;

		p += strspn(p, " \t;");
		len = strcspn(p, ";");
		if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			const char *v = p + nlen + 1;
			size_t vlen = len - nlen - 1;

			while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
				vlen--;
			if (vlen == 0 || vlen >= size)
				return -1;
			memcpy(buf, v, vlen);
			buf[vlen] = '\0';
			return 0;
		}
		p += len;
	}
	return -1;
}

static int json_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* The value of the four hex digits at s, or -1. */
static long hex4(const char *s)
{
	long v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char ch = s[i];

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v |= ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			v |= ch - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* Copy the raw text [p, p + n) into field, cut at a UTF-8 boundary. */
static void name_field(const char *p, size_t n, char *field, size_t fieldlen)
{
	if (fieldlen == 0)
		return;
	if (n >= fieldlen) {
		n = fieldlen - 1;
		while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(field, p, n);
	field[n] = '\0';
}

/*
 * Scan the string whose contents start at s[start] up to its closing quote.
 * Returns the index of that quote (or len when unterminated), with *bad
 * set when a \u escape in it is not valid Unicode (a lone or misordered
 * surrogate, or not four hex digits); then the index is where it stopped.
 */
static size_t scan_string(const char *s, size_t len, size_t start, int *bad)
{
	size_t j = start;

	*bad = 0;
	while (j < len && s[j] != '"') {
		long cp, lo;

		if (s[j] != '\\') {
			j++;
			continue;
		}
		if (j + 1 >= len)
			return len;
		if (s[j + 1] != 'u') {
			j += 2;
			continue;
		}
		cp = j + 6 <= len ? hex4(s + j + 2) : -1;
		if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) {
			*bad = 1;
			return j;
		}
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			lo = j + 12 <= len && s[j + 6] == '\\' && s[j + 7] == 'u' ? hex4(s + j + 8) : -1;
			if (lo < 0xDC00 || lo > 0xDFFF) {
				*bad = 1;
				return j;
			}
			j += 6;
		}
		j += 6;
	}
	return j;
}

/* Whether the string ending (closing quote) at s[end] is a member name. */
static int followed_by_colon(const char *s, size_t len, size_t end)
{
	size_t k = end + 1;

	while (k < len && json_ws(s[k]))
		k++;
	return k < len && s[k] == ':';
}

int http_json_escapes_ok(const char *s, size_t len, char *field, size_t fieldlen)
{
	const char *key = NULL;		/* the last member name seen (raw) */
	size_t keylen = 0, i = 0;

	if (memmem(s, len, "\\u", 2) == NULL)
		return 0;	/* the common case: nothing to check */
	while (i < len) {
		size_t start, j, end;
		int bad;

		if (s[i] != '"') {
			i++;
			continue;
		}
		start = i + 1;
		j = scan_string(s, len, start, &bad);
		if (bad) {
			/* Name the member: this string if it is a key, else the last key. */
			for (end = j; end < len && s[end] != '"';)
				end += s[end] == '\\' ? 2 : 1;
			if (end > len)
				end = len;
			if (followed_by_colon(s, len, end))
				name_field(s + start, end - start, field, fieldlen);
			else if (key)
				name_field(key, keylen, field, fieldlen);
			else
				name_field("(body)", 6, field, fieldlen);
			return -1;
		}
		if (j >= len)
			return 0;	/* unterminated: the parser reports it */
		if (followed_by_colon(s, len, j)) {
			key = s + start;
			keylen = j - start;
		}
		i = j + 1;
	}
	return 0;
}

void http_query_reject_unknown(const struct http_query *q, const char *const *names, size_t n,
			       size_t stride, struct json_object *errors)
{
	int i;
	size_t k;

	for (i = 0; i < q->count; i++) {
		for (k = 0; k < n; k++)
			if (strcmp(q->params[i].key,
				   *(const char *const *)((const char *)names + k * stride)) == 0)
				break;
		if (k == n)
			json_object_object_add(errors, q->params[i].key,
					       json_object_new_string("is not a filter of this list"));
	}
}
