/*
 * cursor: base64url(JSON) page tokens (cursor.h), made and read with
 * libsodium's constant-shape base64 and json-c. Decoding is bounded by the
 * caller's max_len before anything is allocated.
 */
#include "base/cursor.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

char *cursor_encode(struct json_object *o)
{
	size_t len, enclen;
	const char *js = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	char *enc;

	enclen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	enc = xmalloc(enclen);
	sodium_bin2base64(enc, enclen, (const unsigned char *)js, len,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return enc;
}

struct json_object *cursor_decode(const char *text, size_t max_len)
{
	size_t tlen = strlen(text), len;
	unsigned char *bin;
	struct json_object *o = NULL;

	if (tlen > max_len)
		return NULL;
	bin = xmalloc(tlen + 1);	/* base64 never decodes to more than it is */
	if (sodium_base642bin(bin, tlen, text, tlen, NULL, &len, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0) {
		bin[len] = '\0';
		o = json_tokener_parse((const char *)bin);
		if (o && !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			o = NULL;
		}
	}
	free(bin);
	return o;
}

int cursor_get_id(struct json_object *o, const char *key, char id[24])
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) <= 0)
		return -1;
	snprintf(id, 24, "%lld", (long long)json_object_get_int64(v));
	return 0;
}
