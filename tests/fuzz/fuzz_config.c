/* Configuration: the environment as lines of NAME=value, and Redis URLs. */
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "fuzz.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1), *env[33], err[256], *line, *save = NULL;
	struct config cfg;
	struct redis_url u;
	int n = 0;

	memcpy(s, data, size);
	s[size] = '\0';
	if (redis_url_parse(s, &u, err, sizeof(err)) == 0)
		redis_url_free(&u);
	for (line = strtok_r(s, "\n", &save); line && n < 32; line = strtok_r(NULL, "\n", &save))
		env[n++] = line;
	env[n] = NULL;
	if (config_load(&cfg, env, err, sizeof(err)) == 0)
		config_free(&cfg);
	free(s);
	return 0;
}
