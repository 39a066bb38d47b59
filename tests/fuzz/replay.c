/*
 * Replays fuzzing inputs without libFuzzer (any compiler, any sanitizer):
 * replay FILE... runs each file through LLVMFuzzerTestOneInput. make test
 * runs the committed corpora this way under ASan+UBSan.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "base/util.h"

int main(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		unsigned char *buf;
		long n;

		if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
			perror(argv[i]);
			return 2;
		}
		rewind(f);
		buf = xmalloc((size_t)n + 1);
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			perror(argv[i]);
			return 2;
		}
		fclose(f);
		LLVMFuzzerTestOneInput(buf, (size_t)n);
		free(buf);
	}
	printf("replayed %d inputs\n", argc - 1);
	return 0;
}
