/*
 * json_scan: check JSON text without building it. A cursor steps through
 * the text value by value, so a caller checks both that the text is JSON
 * and that it has the shape it expects (which members an object has, of
 * what kind) in one pass, allocating nothing: for text from outside the
 * process that is only passed on, such as a value read back from Redis.
 *
 * The grammar is RFC 8259's, strictly: strings are valid UTF-8 without
 * control bytes, their escapes well formed, surrogate escapes paired;
 * numbers as the RFC spells them; nothing but whitespace after the last
 * value; no NUL anywhere. Containers nest at most JSON_SCAN_MAX_DEPTH deep.
 * Duplicate member names are not looked for.
 */
#ifndef PS_JSON_SCAN_H
#define PS_JSON_SCAN_H

#include <stddef.h>

#define JSON_SCAN_MAX_DEPTH 32

enum json_kind {
	JSON_BAD = -1,		/* not JSON (here), or nested too deep */
	JSON_NULL,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

/*
 * A cursor into s[0..len) (not copied: s must outlive it). tok/toklen: the
 * text of the last scalar json_scan_value stepped over (a string's without
 * its quotes, escapes as written).
 */
struct json_scan {
	const char *s;
	size_t len, pos;
	int depth;		/* containers entered and not yet left */
	const char *tok;
	size_t toklen;
};

void json_scan_init(struct json_scan *js, const char *s, size_t len);

/*
 * Check the next value whole (a container with everything in it) and step
 * past it. Returns its kind, or JSON_BAD (the cursor is then somewhere in
 * it, and the text is not JSON).
 */
enum json_kind json_scan_value(struct json_scan *js);

/*
 * Step into the next value when it is a container of kind (JSON_OBJECT
 * or JSON_ARRAY): 0, or -1 when it is something else.
 */
int json_scan_enter(struct json_scan *js, enum json_kind kind);

/*
 * In an object entered: 1 when a member follows, with its name (as
 * written, without quotes) in *key and *keylen and the cursor at its value,
 * which the caller steps over (json_scan_value, or json_scan_enter and the
 * members or elements in it); 0 after the object's closing brace; -1 when
 * the text is not JSON here.
 */
int json_scan_member(struct json_scan *js, const char **key, size_t *keylen);

/*
 * In an array entered: 1 when an element follows (the cursor at it, to be
 * stepped over as above); 0 after the closing bracket; -1 when not JSON.
 */
int json_scan_element(struct json_scan *js);

/* After the last value: 0 when only whitespace is left, else -1. */
int json_scan_end(struct json_scan *js);

/* 0 when s[0..len) is one JSON value (any kind), else -1. */
int json_scan_check(const char *s, size_t len);

#endif
