/* JSON bodies as the service parses them, through paint validation. */
#include <json-c/json.h>
#include <string.h>

#include "fuzz.h"
#include "base/util.h"
#include "resources/paint_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char base_text[] =
		"{\"id\":1,\"name\":\"Base\",\"brand\":\"B\",\"stock\":4,\"price\":2.50,"
		"\"color_preview\":\"#010203\",\"version\":2}";
	struct json_tokener *tok;
	struct json_object *o, *base, *errors;
	struct paint_input in;

	if (!utf8_valid((const char *)data, size) && size > 0)
		return 0;	/* the service answers 400 before parsing */
	tok = json_tokener_new_ex(16);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (o == NULL)
		return 0;
	if (json_object_is_type(o, json_type_object)) {
		base = json_tokener_parse(base_text);
		if (paint_validate(o, NULL, &in, &errors) == 0)
			paint_input_free(&in);
		else
			json_object_put(errors);
		if (paint_validate(o, base, &in, &errors) == 0)
			paint_input_free(&in);
		else
			json_object_put(errors);
		json_object_put(base);
	}
	json_object_put(o);
	return 0;
}
