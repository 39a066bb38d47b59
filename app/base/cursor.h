/*
 * cursor: the keyset page tokens of the lists (paints, audit). A cursor is
 * base64url (no padding) of a small JSON object: opaque to clients,
 * readable by us, and checked member by member by its list when it comes
 * back, since a client may send anything.
 */
#ifndef PS_CURSOR_H
#define PS_CURSOR_H

#include <json-c/json.h>
#include <stddef.h>

/* The cursor of o as a new string (caller frees). */
char *cursor_encode(struct json_object *o);

/*
 * The JSON object inside text, or NULL when text is longer than max_len,
 * not base64url, or not a JSON object. The caller puts the result.
 */
struct json_object *cursor_decode(const char *text, size_t max_len);

/*
 * The member key of a decoded cursor o when it is a positive integer (a
 * row id), as decimal text in id: 0, or -1 when absent or not one.
 */
int cursor_get_id(struct json_object *o, const char *key, char id[24]);

#endif
