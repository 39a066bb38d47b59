/*
 * mkimage: a real test image on standard output, for the integration tests.
 *
 *   mkimage png|jpeg|webp WIDTH HEIGHT [--alpha] [--exif-orientation N] [--comment TEXT] > file
 *
 * The pixels are a deterministic gradient (red rising left to right,
 * green top to bottom, blue 128): the same arguments give the same bytes.
 *   --alpha                 the left half fully transparent (png, webp;
 *                           a JPEG has no alpha: refused)
 *   --exif-orientation N    jpeg only: an APP1 Exif segment with
 *                           Orientation N (1-8), the pixels left as stored
 *   --comment TEXT          png: a tEXt chunk "Comment" with TEXT;
 *                           jpeg: a COM segment with TEXT and an APP1
 *                           segment holding TEXT (not Exif); webp: refused
 * JPEG at quality 90, 4:4:4; WebP lossy at quality 90. Exit status 2 on
 * a usage error. Built as build/tools/mkimage (make unit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgen.h"

static _Noreturn void usage(const char *msg)
{
	fprintf(stderr,
		"mkimage: %s\nusage: mkimage png|jpeg|webp WIDTH HEIGHT [--alpha] "
		"[--exif-orientation N] [--comment TEXT] > file\n",
		msg);
	exit(2);
}

static uint32_t side(const char *s)
{
	int64_t v;

	if (parse_int64(s, 1, 16383, &v) != 0)
		usage("WIDTH and HEIGHT are whole numbers from 1 to 16383");
	return (uint32_t)v;
}

int main(int argc, char **argv)
{
	const char *type, *comment = NULL;
	int alpha = 0, i;
	int64_t orientation = 0;
	uint32_t w, h;
	unsigned char *px, *img, exif[32];
	size_t len;

	if (argc < 4)
		usage("too few arguments");
	type = argv[1];
	w = side(argv[2]);
	h = side(argv[3]);
	for (i = 4; i < argc; i++) {
		if (strcmp(argv[i], "--alpha") == 0)
			alpha = 1;
		else if (strcmp(argv[i], "--exif-orientation") == 0 && i + 1 < argc &&
			 parse_int64(argv[i + 1], 1, 8, &orientation) == 0)
			i++;
		else if (strcmp(argv[i], "--comment") == 0 && i + 1 < argc)
			comment = argv[++i];
		else
			usage("unknown option or bad value");
	}
	if (orientation != 0 && strcmp(type, "jpeg") != 0)
		usage("--exif-orientation is for jpeg only");
	px = imgen_gradient(w, h, alpha);
	if (strcmp(type, "png") == 0) {
		img = imgen_png(px, w, h, comment, &len);
	} else if (strcmp(type, "jpeg") == 0) {
		if (alpha)
			usage("a JPEG has no alpha");
		img = imgen_jpeg(px, w, h, 90, &len);
		if (comment != NULL) {
			img = imgen_jpeg_add(img, &len, 0xfe, comment, strlen(comment));
			img = imgen_jpeg_add(img, &len, 0xe1, comment, strlen(comment));
		}
		if (orientation != 0)	/* first, so that it is the first APP1 */
			img = imgen_jpeg_add(img, &len, 0xe1, exif,
					     imgen_exif(exif, (unsigned)orientation));
	} else if (strcmp(type, "webp") == 0) {
		if (comment != NULL)
			usage("--comment is for png and jpeg");
		img = imgen_webp(px, w, h, 90, &len);
	} else {
		usage("the type is png, jpeg or webp");
	}
	free(px);
	if (fwrite(img, 1, len, stdout) != len || fflush(stdout) != 0) {
		perror("mkimage");
		return 1;
	}
	free(img);
	return 0;
}
