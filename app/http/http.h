/*
 * http: the request as the handlers see it (method, decoded path, query
 * parameters, headers, a bounded body) and the response they build
 * (status, headers, body), written back over FastCGI in one piece.
 *
 * Strings borrowed from FastCGI parameters (method, headers) are valid only
 * until the request ends; everything else here is owned by the request.
 */
#ifndef PS_HTTP_H
#define PS_HTTP_H

#include <json-c/json.h>
#include <stddef.h>

#include "base/strbuf.h"

#define HTTP_MAX_PARAMS 64

struct http_param {
	char *key;	/* percent-decoded, valid UTF-8, no NUL */
	char *value;
};

struct http_query {
	struct http_param params[HTTP_MAX_PARAMS];
	int count;
};

struct http_req {
	const char *method;	/* borrowed */
	char *path;		/* decoded path, owned */
	struct http_query query;
	char **envp;		/* FastCGI parameters, borrowed */
	char *body;		/* NUL-terminated copy, owned; NULL when none */
	size_t body_len;
};

struct http_resp {
	int status;		/* 0 until a handler sets one */
	struct strbuf headers;	/* "Name: value\r\n" lines */
	struct strbuf body;
	const char *content_type;	/* static string */
	int streamed;		/* the body goes out after the head, its length unknown then */
};

/*
 * Decode the path part of a raw request URI (before '?'): %XX escapes
 * decoded, result valid UTF-8 without NUL, starts with '/'. Returns 0 and a
 * malloc'd path in *out, or -1 for a malformed one (the caller answers 400).
 */
int http_decode_path(const char *uri, char **out);

/*
 * Parse an application/x-www-form-urlencoded query string into q (keys
 * and values decoded, '+' as space). Returns 0, or -1 on a bad escape,
 * invalid UTF-8, a NUL, or more than HTTP_MAX_PARAMS parameters; q then
 * holds nothing. Free with http_query_free.
 */
int http_parse_query(const char *qs, struct http_query *q);
void http_query_free(struct http_query *q);
/* The first value of name, or NULL. */
const char *http_query_get(const struct http_query *q, const char *name);

/*
 * Add "<name>": "is not a filter of this list" to errors for each
 * parameter of q not named in the table of n entries starting at names,
 * stride bytes apart (a table of structs whose first member is the name:
 * pass &table[0].name, n, sizeof(table[0])).
 */
void http_query_reject_unknown(const struct http_query *q, const char *const *names, size_t n,
			       size_t stride, struct json_object *errors);

/*
 * The value of cookie name in a Cookie header ("a=1; b=2"), copied into
 * buf. Returns 0, or -1 when absent, empty or longer than size - 1.
 */
int http_cookie_get(const char *header, const char *name, char *buf, size_t size);

/* A request header by its CGI name ("HTTP_IF_NONE_MATCH"), or NULL. */
const char *http_param(const struct http_req *req, const char *name);

/*
 * Check every \u escape in the strings of the JSON text s (len bytes):
 * a high surrogate must be followed by a \u low surrogate, a low one may
 * not stand alone, and the four digits must be hex. Returns 0, or -1 with
 * the name of the member whose key or value holds the first bad escape
 * in field (raw, cut at a character boundary to fit; "(body)" when it is
 * in no member). Does not otherwise validate the JSON.
 */
int http_json_escapes_ok(const char *s, size_t len, char *field, size_t fieldlen);

void http_resp_init(struct http_resp *resp);
void http_resp_free(struct http_resp *resp);
/* Drop whatever a handler set so far (status, headers, body). */
void http_resp_reset(struct http_resp *resp);
/*
 * Add a header line. Returns 0, or -1 when name is not a token or the
 * value would hold a control byte other than tab (CR, LF, NUL...) or
 * exceed 1023 bytes: then nothing is added (the response stays whole, the
 * header is missing) and the refusal is logged, at most once a minute.
 * Whatever reaches a header from outside (a client, Redis, the database)
 * is checked before this; this is the last line, not the check.
 */
int http_resp_header(struct http_resp *resp, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Set status and a JSON body from obj (not consumed). */
void http_resp_json(struct http_resp *resp, int status, struct json_object *obj);
/* Set status and the body bytes as JSON (already serialised). */
void http_resp_json_raw(struct http_resp *resp, int status, const char *json, size_t len);

/*
 * An application/problem+json error (RFC 9457) with type, title, status,
 * detail and the original system's "error" member. errors, when not NULL,
 * is a JSON object of per-field messages and is consumed.
 */
void http_problem(struct http_resp *resp, int status, const char *detail,
		  struct json_object *errors);

/*
 * As http_problem, with the members of the JSON object members (consumed;
 * NULL for none) after detail, in their order: an answer that is both a
 * problem and a report (an import's 422).
 */
void http_problem_with(struct http_resp *resp, int status, const char *detail,
		       struct json_object *members);

/* The longest entity tag the service sends, quotes included. */
#define HTTP_ETAG_MAX 64

/*
 * Whether s[0..len) is a strong entity tag of the kind the service makes:
 * '"', 1 to HTTP_ETAG_MAX - 2 of [0-9A-Za-z-_./:], '"'. 1 or 0.
 */
int http_etag_valid(const char *s, size_t len);

/*
 * Whether an If-Match / If-None-Match header value (a list of entity
 * tags, or "*") matches etag (a quoted strong tag such as "\"v3\"").
 * weak: If-None-Match's weak comparison (W/ prefixes ignored); otherwise
 * If-Match's strong comparison (a W/ tag never matches). 1 or 0.
 */
int http_etag_matches(const char *header, const char *etag, int weak);

/* The standard reason phrase of a status code ("Not Found"). */
const char *http_reason(int status);

/* Serialise the response as a FastCGI/CGI response into out. */
void http_resp_serialise(const struct http_resp *resp, int head_only, struct strbuf *out);

/*
 * Serialise only the status line and headers (ending with the blank line)
 * into out, with a Content-Length of resp->body unless resp->streamed.
 * Returns 1 when a body must follow them (not HEAD, not a 204 or 304), so
 * the caller can send the body from where it lies.
 */
int http_resp_head(const struct http_resp *resp, int head_only, struct strbuf *out);

#endif
