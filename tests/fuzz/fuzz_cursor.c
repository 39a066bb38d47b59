/* Pagination cursors (paints and audit) as clients may send them back (altered, or not at all). */
#include <stdlib.h>
#include <string.h>

#include "resources/audit.h"
#include "fuzz.h"
#include "base/util.h"
#include "resources/paint_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const sorts[] = { "-created_at", "name", "-price", "stock" };
	char *s = xmalloc(size + 1), *value = NULL, id[24];
	size_t i;

	memcpy(s, data, size);
	s[size] = '\0';
	for (i = 0; i < sizeof(sorts) / sizeof(sorts[0]); i++) {
		if (paint_cursor_decode(s, sorts[i], &value, id) == 0) {
			free(value);
			value = NULL;
		}
	}
	(void)audit_cursor_decode(s, id);
	free(s);
	return 0;
}
