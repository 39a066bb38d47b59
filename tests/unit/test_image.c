/*
 * Unit tests of image: sniffing; each type decoded, shrunk and re-encoded
 * (the WebP out decoded again to check sizes, alpha and colours); the
 * limits checked before decoding; truncated and corrupt files refused;
 * the EXIF orientation applied, malformed EXIF ignored; metadata gone;
 * the output deterministic. Inputs are made here by the same libraries
 * (tests/tools/imgen.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>

#include "base/image.h"
#include "base/util.h"
#include "../tools/imgen.h"

/* The service's settings, with smaller stored sizes where a test says so. */
static struct image_settings settings(uint32_t full_side, uint32_t thumb_side)
{
	return (struct image_settings){ 10u << 20, 8192, 24000000, full_side, thumb_side, 82 };
}

enum kind { K_PNG, K_JPEG, K_WEBP, K_WEBP_LOSSLESS, K_KINDS };

/* rgba (w x h) encoded as kind. */
static unsigned char *make(enum kind k, const unsigned char *rgba, uint32_t w, uint32_t h,
			   size_t *len)
{
	switch (k) {
	case K_PNG:
		return imgen_png(rgba, w, h, NULL, len);
	case K_JPEG:
		return imgen_jpeg(rgba, w, h, 95, len);
	case K_WEBP:
		return imgen_webp(rgba, w, h, 90, len);
	default:
		return imgen_webp(rgba, w, h, -1, len);
	}
}

/* A noisy gradient (so that it does not compress to nothing), encoded as kind. */
static unsigned char *make_noisy(enum kind k, uint32_t w, uint32_t h, size_t *len)
{
	unsigned char *px = imgen_gradient(w, h, 0), *img;
	uint32_t s = 2463534242u;
	size_t i;

	for (i = 0; i < (size_t)w * h * 4; i++) {
		s ^= s << 13;
		s ^= s >> 17;
		s ^= s << 5;
		if (i % 4 != 3)
			px[i] = (unsigned char)(px[i] / 2 + s % 128);
	}
	img = make(k, px, w, h, len);
	free(px);
	return img;
}

/* Process data expecting st; on IMAGE_OK the caller frees out. */
static void process(const unsigned char *data, size_t len, const struct image_settings *set,
		    struct image_out *out, enum image_status st)
{
	char why[200];

	memset(why, 'x', sizeof(why));
	if (image_process(data, len, set, out, why, sizeof(why)) != st)
		fail_msg("expected status %d, got: %s", (int)st, why);
	assert_non_null(memchr(why, '\0', sizeof(why)));
	if (st != IMAGE_OK) {
		assert_true(strlen(why) > 10);
		assert_null(out->full.data);
		assert_null(out->thumb.data);
	}
}

/* The pixels of w (WebPFree them), checking its size is what it says. */
static unsigned char *unwebp(const struct image_webp *w)
{
	int dw = 0, dh = 0;
	unsigned char *px = WebPDecodeRGBA(w->data, w->len, &dw, &dh);

	assert_non_null(px);
	assert_int_equal(dw, w->width);
	assert_int_equal(dh, w->height);
	return px;
}

/* 1 if the RIFF chunk list of w has a chunk named fourcc. */
static int has_chunk(const struct image_webp *w, const char *fourcc)
{
	size_t pos = 12, n;

	assert_true(w->len >= 12 && memcmp(w->data, "RIFF", 4) == 0);
	while (pos + 8 <= w->len) {
		if (memcmp(w->data + pos, fourcc, 4) == 0)
			return 1;
		n = w->data[pos + 4] | w->data[pos + 5] << 8 | w->data[pos + 6] << 16 |
		    (size_t)w->data[pos + 7] << 24;
		pos += 8 + n + (n & 1);
	}
	return 0;
}

static int contains(const unsigned char *h, size_t n, const char *needle)
{
	size_t i, k = strlen(needle);

	for (i = 0; i + k <= n; i++)
		if (memcmp(h + i, needle, k) == 0)
			return 1;
	return 0;
}

static void test_sniff(void **state)
{
	unsigned char *px = imgen_gradient(4, 4, 1), *img;
	size_t len;
	enum kind k;
	static const enum image_type types[K_KINDS] = { IMAGE_PNG, IMAGE_JPEG, IMAGE_WEBP,
							IMAGE_WEBP };
	static const char *const others[] = {
		"GIF89a\x01\x00\x01\x00", "BM\x3a\x00\x00\x00\x00\x00", "<svg xmlns=\"x\"/>",
		"<!doctype html><html>", "RIFF\x10\x00\x00\x00WAVEfmt ", "\xff\xd8",
		"\x89PNG\r\n\x1a", "RIFF\x10\x00\x00\x00WEB",
	};
	size_t i;

	(void)state;
	for (k = 0; k < K_KINDS; k++) {
		img = make(k, px, 4, 4, &len);
		assert_int_equal(image_sniff(img, len), types[k]);
		assert_int_equal(image_sniff(img, 12), types[k]);
		free(img);
	}
	for (i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		assert_int_equal(image_sniff((const unsigned char *)others[i], strlen(others[i])),
				 IMAGE_UNKNOWN);
	assert_int_equal(image_sniff((const unsigned char *)"", 0), IMAGE_UNKNOWN);
	assert_string_equal(image_type_mime(IMAGE_PNG), "image/png");
	assert_string_equal(image_type_mime(IMAGE_JPEG), "image/jpeg");
	assert_string_equal(image_type_mime(IMAGE_WEBP), "image/webp");
	assert_null(image_type_mime(IMAGE_UNKNOWN));
	free(px);
}

static void test_unsupported(void **state)
{
	struct image_settings set = settings(1200, 160);
	struct image_out out;
	char why[200];
	const char *gif = "GIF89a\x01\x00\x01\x00\x80\x00\x00";

	(void)state;
	assert_int_equal(image_process((const unsigned char *)gif, strlen(gif), &set, &out, why,
				       sizeof(why)),
			 IMAGE_UNSUPPORTED);
	assert_string_equal(why, "is not a PNG, JPEG or WebP image (by its content)");
	process((const unsigned char *)"", 0, &set, &out, IMAGE_UNSUPPORTED);
}

/* w x h of kind processed under full/thumb sides: the sizes out, each decodable. */
static void check_sizes(enum kind k, uint32_t w, uint32_t h, uint32_t full, uint32_t thumb,
			uint32_t fw, uint32_t fh, uint32_t tw, uint32_t th)
{
	struct image_settings set = settings(full, thumb);
	struct image_out out;
	unsigned char *img;
	size_t len;

	img = make_noisy(k, w, h, &len);
	process(img, len, &set, &out, IMAGE_OK);
	assert_int_equal(out.source, k == K_PNG ? IMAGE_PNG : k == K_JPEG ? IMAGE_JPEG : IMAGE_WEBP);
	assert_int_equal(out.source_width, w);
	assert_int_equal(out.source_height, h);
	assert_int_equal(out.full.width, fw);
	assert_int_equal(out.full.height, fh);
	assert_int_equal(out.thumb.width, tw);
	assert_int_equal(out.thumb.height, th);
	WebPFree(unwebp(&out.full));
	WebPFree(unwebp(&out.thumb));
	image_out_free(&out);
	free(img);
}

static void test_sizes(void **state)
{
	enum kind k;

	(void)state;
	for (k = 0; k < K_KINDS; k++) {
		/* Shrunk, the aspect ratio kept; a JPEG shrunk on load (1/8 is 125 x 75). */
		check_sizes(k, 1000, 600, 120, 30, 120, 72, 30, 18);
		check_sizes(k, 600, 1000, 120, 30, 72, 120, 18, 30);
		/* The short side rounded (7 * 120 / 301 = 2.79), and at least 1. */
		check_sizes(k, 301, 7, 120, 30, 120, 3, 30, 1);
		check_sizes(k, 1000, 1, 120, 30, 120, 1, 30, 1);
		/* Never enlarged. */
		check_sizes(k, 50, 40, 120, 30, 50, 40, 30, 24);
		check_sizes(k, 20, 10, 120, 30, 20, 10, 20, 10);
	}
}

/* A greyscale JPEG decodes to RGB. */
static void test_grey_jpeg(void **state)
{
	struct image_settings set = settings(1200, 160);
	struct image_out out;
	unsigned char *px = imgen_gradient(16, 16, 0), *jpeg = NULL, *dec;
	unsigned long n = 0;
	tjhandle tj = tjInitCompress();

	(void)state;
	assert_int_equal(tjCompress2(tj, px, 16, 64, 16, TJPF_RGBA, &jpeg, &n, TJSAMP_GRAY, 90, 0),
			 0);
	process(jpeg, n, &set, &out, IMAGE_OK);
	dec = unwebp(&out.full);
	assert_true(abs(dec[0] - dec[1]) < 8 && abs(dec[1] - dec[2]) < 8);
	WebPFree(dec);
	image_out_free(&out);
	tjFree(jpeg);
	tjDestroy(tj);
	free(px);
}

/* A CMYK (YCCK) JPEG is refused with a why that says so. */
static void test_cmyk_jpeg(void **state)
{
	struct image_settings set = settings(1200, 160);
	struct image_out out;
	unsigned char cmyk[8 * 8 * 4], *jpeg = NULL;
	unsigned long n = 0;
	char why[200];
	tjhandle tj = tjInitCompress();

	(void)state;
	memset(cmyk, 0x40, sizeof(cmyk));
	assert_int_equal(tjCompress2(tj, cmyk, 8, 32, 8, TJPF_CMYK, &jpeg, &n, TJSAMP_444, 90, 0),
			 0);
	assert_int_equal(image_process(jpeg, n, &set, &out, why, sizeof(why)), IMAGE_UNSUPPORTED);
	assert_non_null(strstr(why, "CMYK"));
	tjFree(jpeg);
	tjDestroy(tj);
}

/*
 * The left half transparent stays transparent, the right half opaque,
 * also when shrunk (64 -> 32: the edge falls between pixels); the output
 * has an alpha plane. An opaque image's output has none.
 */
static void test_alpha(void **state)
{
	unsigned char *px = imgen_gradient(64, 32, 1), *img, *dec;
	struct image_out out;
	struct image_settings set;
	uint32_t full[2] = { 1200, 32 }, x, y, i;
	size_t len;
	enum kind k;

	(void)state;
	for (k = 0; k < K_KINDS; k++) {
		if (k == K_JPEG)
			continue;
		img = make(k, px, 64, 32, &len);
		for (i = 0; i < 2; i++) {
			set = settings(full[i], 16);
			process(img, len, &set, &out, IMAGE_OK);
			assert_true(has_chunk(&out.full, "ALPH"));
			dec = unwebp(&out.full);
			for (y = 0; y < out.full.height; y++)
				for (x = 0; x < out.full.width; x++)
					assert_int_equal(dec[(y * out.full.width + x) * 4 + 3],
							 x < out.full.width / 2 ? 0 : 255);
			WebPFree(dec);
			image_out_free(&out);
		}
		free(img);
	}
	free(px);
	px = imgen_gradient(64, 32, 0);
	for (k = 0; k < K_KINDS; k++) {
		img = make(k, px, 64, 32, &len);
		set = settings(40, 16);
		process(img, len, &set, &out, IMAGE_OK);
		assert_false(has_chunk(&out.full, "ALPH"));
		assert_false(has_chunk(&out.thumb, "ALPH"));
		image_out_free(&out);
		free(img);
	}
	free(px);
}

/* Every pixel of w is within tol of (r, g, b), or has alpha below min_alpha. */
static void assert_colour(const struct image_webp *w, int r, int g, int b, int tol, int min_alpha)
{
	unsigned char *dec = unwebp(w), *p;
	size_t i;

	for (i = 0; i < (size_t)w->width * w->height; i++) {
		p = dec + i * 4;
		if (p[3] < min_alpha)
			continue;
		if (abs(p[0] - r) > tol || abs(p[1] - g) > tol || abs(p[2] - b) > tol)
			fail_msg("pixel %zu of %ux%u is %d,%d,%d,%d; want %d,%d,%d", i, w->width,
				 w->height, p[0], p[1], p[2], p[3], r, g, b);
	}
	WebPFree(dec);
}

/*
 * Solid red stays red, to its edges, when shrunk by fractions (100 -> 33,
 * -> 7); red beside transparent black stays red wherever it shows (with
 * premultiplied alpha the black does not bleed in).
 */
static void test_colour(void **state)
{
	unsigned char *px = xmalloc(100 * 100 * 4), *img;
	struct image_settings set = settings(33, 7);
	struct image_out out;
	size_t len, i;
	enum kind k;

	(void)state;
	for (k = 0; k < K_KINDS; k++) {
		for (i = 0; i < 100 * 100; i++)
			memcpy(px + i * 4, "\xff\x00\x00\xff", 4);
		img = make(k, px, 100, 100, &len);
		process(img, len, &set, &out, IMAGE_OK);
		assert_colour(&out.full, 255, 0, 0, 24, 0);
		assert_colour(&out.thumb, 255, 0, 0, 24, 0);
		image_out_free(&out);
		free(img);
		if (k == K_JPEG)
			continue;
		for (i = 0; i < 100 * 100; i++)
			if (i % 100 < 49)
				memcpy(px + i * 4, "\x00\x00\x00\x00", 4);
		img = make(k, px, 100, 100, &len);
		process(img, len, &set, &out, IMAGE_OK);
		assert_colour(&out.full, 255, 0, 0, 40, 64);
		assert_colour(&out.thumb, 255, 0, 0, 40, 64);
		image_out_free(&out);
		free(img);
	}
	free(px);
}

/* A PNG whose IHDR declares w x h, with a tiny (empty) IDAT. */
static unsigned char *png_declaring(uint32_t w, uint32_t h, size_t *len)
{
	static const unsigned char empty_zlib[] = { 0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01 };
	unsigned char ihdr[13] = { 0 }, *buf = xmalloc(8);

	memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
	*len = 8;
	imgen_be32(ihdr, w);
	imgen_be32(ihdr + 4, h);
	ihdr[8] = 8;
	ihdr[9] = 6;
	buf = imgen_png_chunk(buf, len, *len, "IHDR", ihdr, 13);
	buf = imgen_png_chunk(buf, len, *len, "IDAT", empty_zlib, sizeof(empty_zlib));
	return imgen_png_chunk(buf, len, *len, "IEND", NULL, 0);
}

/* A small JPEG whose SOF0 declares w x h. */
static unsigned char *jpeg_declaring(uint16_t w, uint16_t h, size_t *len)
{
	unsigned char *px = imgen_gradient(8, 8, 0), *jpeg = imgen_jpeg(px, 8, 8, 80, len);
	size_t i;

	for (i = 2; i + 9 < *len; i++) {
		if (jpeg[i] == 0xff && jpeg[i + 1] == 0xc0) {
			jpeg[i + 5] = (unsigned char)(h >> 8);
			jpeg[i + 6] = (unsigned char)h;
			jpeg[i + 7] = (unsigned char)(w >> 8);
			jpeg[i + 8] = (unsigned char)w;
			break;
		}
	}
	assert_true(i + 9 < *len);
	free(px);
	return jpeg;
}

/* A WebP of a VP8X chunk alone: canvas w x h, flags as given. */
static void webp_vp8x(unsigned char out[30], uint32_t w, uint32_t h, unsigned char flags)
{
	memcpy(out, "RIFF\x16\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00", 20);
	out[20] = flags;
	memset(out + 21, 0, 3);
	out[24] = (unsigned char)(w - 1), out[25] = (unsigned char)((w - 1) >> 8), out[26] = 0;
	out[27] = (unsigned char)(h - 1), out[28] = (unsigned char)((h - 1) >> 8), out[29] = 0;
}

/* data refused with st, fast (no pixels decoded), why containing want. */
static void refused(const unsigned char *data, size_t len, const struct image_settings *set,
		    enum image_status st, const char *want)
{
	struct image_out out;
	char why[200];
	double t0 = now_mono();

	assert_int_equal(image_process(data, len, set, &out, why, sizeof(why)), st);
	if (strstr(why, want) == NULL)
		fail_msg("why '%s' lacks '%s'", why, want);
	assert_true(now_mono() - t0 < 1.0);
}

static void test_too_large(void **state)
{
	struct image_settings set = settings(1200, 160);
	static const struct {
		int jpeg;
		uint32_t w, h;
		enum image_status st;
		const char *want;
	} declared[] = {
		{ 0, 100000, 100000, IMAGE_TOO_LARGE, "100000 x 100000" },
		/* 25 M pixels, each side within its limit */
		{ 0, 5000, 5000, IMAGE_TOO_LARGE, "25000000 pixels; at most 24000000" },
		{ 0, 8193, 1, IMAGE_TOO_LARGE, "at most 8192 on a side" },
		{ 0, 0, 10, IMAGE_INVALID, "declares a size of 0 x 10 pixels" },
		{ 1, 60000, 60000, IMAGE_TOO_LARGE, "60000 x 60000" },
		{ 1, 0, 8, IMAGE_INVALID, "JPEG" },
	};
	unsigned char *img, vp8x[30];
	size_t len, i;

	(void)state;
	for (i = 0; i < sizeof(declared) / sizeof(declared[0]); i++) {
		img = declared[i].jpeg
			      ? jpeg_declaring((uint16_t)declared[i].w, (uint16_t)declared[i].h, &len)
			      : png_declaring(declared[i].w, declared[i].h, &len);
		refused(img, len, &set, declared[i].st, declared[i].want);
		free(img);
	}
	webp_vp8x(vp8x, 16383, 16383, 0);
	refused(vp8x, sizeof(vp8x), &set, IMAGE_TOO_LARGE, "16383 x 16383");
	webp_vp8x(vp8x, 16, 16, 0x02);
	refused(vp8x, sizeof(vp8x), &set, IMAGE_INVALID, "animated images are not supported");
	img = make_noisy(K_PNG, 40, 40, &len);
	set.max_bytes = len - 1;
	refused(img, len, &set, IMAGE_TOO_LARGE, "bytes; at most");
	free(img);
}

/* Each type cut at 50% and 90% is refused. */
static void test_truncated(void **state)
{
	struct image_settings set = settings(1200, 160);
	struct image_out out;
	unsigned char *img;
	size_t len, cut[2];
	enum kind k;
	int i;

	(void)state;
	for (k = 0; k < K_KINDS; k++) {
		img = make_noisy(k, 64, 48, &len);
		cut[0] = len / 2;
		cut[1] = len * 9 / 10;
		for (i = 0; i < 2; i++)
			process(img, cut[i], &set, &out, IMAGE_INVALID);
		free(img);
	}
}

/* The PNG data with its first IDAT's data cut to keep bytes (its CRC made right), then IEND. */
static unsigned char *png_short_idat(const unsigned char *data, size_t len, size_t keep,
				     size_t *out_len)
{
	size_t pos = 8;
	unsigned char *out;

	while (pos + 12 <= len && memcmp(data + pos + 4, "IDAT", 4) != 0)
		pos += 12 + ((size_t)data[pos] << 24 | data[pos + 1] << 16 | data[pos + 2] << 8 |
			     data[pos + 3]);
	assert_true(pos + 12 + keep <= len);
	out = xmalloc(pos);
	memcpy(out, data, pos);
	*out_len = pos;
	out = imgen_png_chunk(out, out_len, *out_len, "IDAT", data + pos + 8, keep);
	return imgen_png_chunk(out, out_len, *out_len, "IEND", NULL, 0);
}

/*
 * A PNG whose chunks are whole but whose IDAT holds half the image data
 * is refused; so is a chunk declaring more than the file holds (without
 * libpng allocating it: that would be 2 GB).
 */
static void test_png_short(void **state)
{
	struct image_settings set = settings(1200, 160);
	unsigned char *img, *cut;
	size_t len, cut_len;

	(void)state;
	img = make_noisy(K_PNG, 64, 48, &len);
	cut = png_short_idat(img, len, 2000, &cut_len);
	refused(cut, cut_len, &set, IMAGE_INVALID, "PNG");
	free(cut);
	imgen_be32(img + 33, 0x7ffffff0);	/* the chunk after IHDR */
	refused(img, len, &set, IMAGE_INVALID, "truncated");
	free(img);
}

/* A byte flipped anywhere in the middle: refused or decoded, never a crash. */
static void test_corrupt(void **state)
{
	struct image_settings set = settings(32, 8);
	struct image_out out;
	unsigned char *img;
	char why[200];
	size_t len, pos;
	enum kind k;

	(void)state;
	for (k = 0; k < K_KINDS; k++) {
		img = make_noisy(k, 40, 30, &len);
		for (pos = len / 4; pos < len * 3 / 4; pos += 7) {
			img[pos] ^= 0x5a;
			switch (image_process(img, len, &set, &out, why, sizeof(why))) {
			case IMAGE_OK:
				WebPFree(unwebp(&out.full));
				image_out_free(&out);
				break;
			case IMAGE_INVALID:
				break;
			default:
				fail_msg("kind %d, byte %zu: %s", (int)k, pos, why);
			}
			img[pos] ^= 0x5a;
		}
		free(img);
	}
}

/* A 32 x 16 JPEG: the top-left 8 x 8 block red, the rest blue. */
static unsigned char *corner_jpeg(size_t *len)
{
	unsigned char *px = xmalloc(32 * 16 * 4), *img;
	uint32_t x, y;

	for (y = 0; y < 16; y++)
		for (x = 0; x < 32; x++)
			memcpy(px + (y * 32 + x) * 4, x < 8 && y < 8 ? "\xff\0\0\xff" : "\0\0\xff\xff",
			       4);
	img = imgen_jpeg(px, 32, 16, 95, len);
	free(px);
	return img;
}

/* The JPEG with the APP1 body[0..n) processed: its shown size, red where? */
static void check_corner(const void *body, size_t n, uint32_t w, uint32_t h,
			 uint32_t rx, uint32_t ry)
{
	struct image_settings set = settings(1200, 160);
	struct image_out out;
	unsigned char *img, *dec, *p;
	size_t len;
	uint32_t x, y;

	img = imgen_jpeg_add(corner_jpeg(&len), &len, 0xe1, body, n);
	process(img, len, &set, &out, IMAGE_OK);
	assert_int_equal(out.source_width, w);
	assert_int_equal(out.source_height, h);
	assert_int_equal(out.full.width, w);
	assert_int_equal(out.full.height, h);
	dec = unwebp(&out.full);
	/* The centre of each 8 x 8 block: red only in the one at (rx, ry). */
	for (y = 4; y < h; y += 8) {
		for (x = 4; x < w; x += 8) {
			p = dec + (y * w + x) * 4;
			if ((p[0] > 128 && p[2] < 128) != (x / 8 == rx && y / 8 == ry))
				fail_msg("block %u,%u is %d,%d,%d", x / 8, y / 8, p[0], p[1], p[2]);
		}
	}
	WebPFree(dec);
	image_out_free(&out);
	free(img);
}

static void test_exif_orientation(void **state)
{
	/* Where the stored top-left block (of 4 x 2) is shown, per orientation. */
	static const uint32_t where[9][2] = {
		{ 0, 0 }, { 0, 0 }, { 3, 0 }, { 3, 1 }, { 0, 1 }, { 0, 0 }, { 1, 0 }, { 1, 3 }, { 0, 3 },
	};
	unsigned char exif[32];
	unsigned o;
	size_t n;

	(void)state;
	for (o = 1; o <= 8; o++) {
		n = imgen_exif(exif, o);
		check_corner(exif, n, o >= 5 ? 16 : 32, o >= 5 ? 32 : 16, where[o][0], where[o][1]);
	}
	/* Little-endian: "II", 42, IFD0 at 8, one entry, SHORT = 6. */
	memcpy(exif, "Exif\0\0II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00"
		     "\x06\x00\x00\x00\x00\x00\x00\x00", 32);
	check_corner(exif, 32, 16, 32, 1, 0);
}

/* A JPEG shrunk on load (1/8) then turned: the sizes as shown. */
static void test_exif_shrunk(void **state)
{
	struct image_settings set = settings(120, 30);
	struct image_out out;
	unsigned char *img, exif[32];
	size_t len;

	(void)state;
	img = make_noisy(K_JPEG, 1000, 600, &len);
	img = imgen_jpeg_add(img, &len, 0xe1, exif, imgen_exif(exif, 6));
	process(img, len, &set, &out, IMAGE_OK);
	assert_int_equal(out.source_width, 600);
	assert_int_equal(out.source_height, 1000);
	assert_int_equal(out.full.width, 72);
	assert_int_equal(out.full.height, 120);
	assert_int_equal(out.thumb.width, 18);
	assert_int_equal(out.thumb.height, 30);
	WebPFree(unwebp(&out.full));
	image_out_free(&out);
	free(img);
}

/* Malformed EXIF is ignored: the image as stored. */
static void test_exif_malformed(void **state)
{
	unsigned char exif[32];
	size_t n;
	int i;

	(void)state;
	for (i = 0; i < 9; i++) {
		n = imgen_exif(exif, 6);
		switch (i) {
		case 0: memset(exif + 10, 0xff, 4); break;	/* IFD0 far past the end */
		case 1: exif[14] = exif[15] = 0xff; break;	/* 65535 entries */
		case 2: n = 24; break;				/* the entry cut short */
		case 3: n = 20; break;				/* the IFD cut short */
		case 4: memcpy(exif + 6, "XX", 2); break;	/* no byte order */
		case 5: exif[19] = 4; break;			/* LONG, not SHORT */
		case 6: exif[25] = 9; break;			/* no such orientation */
		case 7: exif[23] = 2; break;			/* two values */
		default: exif[9] = 43; break;			/* not 42 */
		}
		check_corner(exif, n, 32, 16, 0, 0);
	}
	/* Not Exif at all: an APP1 of XMP. */
	check_corner("http://ns.adobe.com/xap/1.0/\0<x/>", 33, 32, 16, 0, 0);
}

/* Comments, EXIF and text chunks do not reach the output. */
static void test_metadata_stripped(void **state)
{
	struct image_settings set = settings(1200, 16);
	struct image_out out;
	unsigned char *px = imgen_gradient(24, 24, 0), *img, exif[32];
	size_t len;
	int i;

	(void)state;
	for (i = 0; i < 2; i++) {
		if (i == 0) {
			img = imgen_jpeg(px, 24, 24, 90, &len);
			img = imgen_jpeg_add(img, &len, 0xfe, "SECRET-GPS", 10);
			img = imgen_jpeg_add(img, &len, 0xe1, "SECRET-GPS", 10);
			img = imgen_jpeg_add(img, &len, 0xe1, exif, imgen_exif(exif, 1));
		} else {
			img = imgen_png(px, 24, 24, "SECRET", &len);
		}
		assert_true(contains(img, len, "SECRET"));
		process(img, len, &set, &out, IMAGE_OK);
		assert_false(contains(out.full.data, out.full.len, "SECRET"));
		assert_false(contains(out.thumb.data, out.thumb.len, "SECRET"));
		assert_false(has_chunk(&out.full, "EXIF") || has_chunk(&out.full, "XMP ") ||
			     has_chunk(&out.full, "ICCP"));
		assert_false(has_chunk(&out.thumb, "EXIF") || has_chunk(&out.thumb, "XMP ") ||
			     has_chunk(&out.thumb, "ICCP"));
		image_out_free(&out);
		free(img);
	}
	free(px);
}

/* The same input twice: the same bytes. */
static void test_deterministic(void **state)
{
	struct image_settings set = settings(50, 20);
	struct image_out a, b;
	unsigned char *img;
	size_t len;
	enum kind k;

	(void)state;
	for (k = 0; k < K_KINDS; k++) {
		img = make_noisy(k, 120, 90, &len);
		process(img, len, &set, &a, IMAGE_OK);
		process(img, len, &set, &b, IMAGE_OK);
		assert_int_equal(a.full.len, b.full.len);
		assert_memory_equal(a.full.data, b.full.data, a.full.len);
		assert_int_equal(a.thumb.len, b.thumb.len);
		assert_memory_equal(a.thumb.data, b.thumb.data, a.thumb.len);
		image_out_free(&a);
		image_out_free(&b);
		free(img);
	}
}

/* image_out_free on a zeroed or already freed struct; why cut to its buffer. */
static void test_edges(void **state)
{
	struct image_out out;
	struct image_settings set = settings(1200, 160);
	char why[8];

	(void)state;
	memset(&out, 0, sizeof(out));
	image_out_free(&out);
	image_out_free(&out);
	assert_int_equal(image_process((const unsigned char *)"GIF89a", 6, &set, &out, why,
				       sizeof(why)),
			 IMAGE_UNSUPPORTED);
	assert_int_equal(strlen(why), 7);
	assert_int_equal(image_process((const unsigned char *)"GIF89a", 6, &set, &out, NULL, 0),
			 IMAGE_UNSUPPORTED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sniff),
		cmocka_unit_test(test_unsupported),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_grey_jpeg),
		cmocka_unit_test(test_cmyk_jpeg),
		cmocka_unit_test(test_alpha),
		cmocka_unit_test(test_colour),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_png_short),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_exif_orientation),
		cmocka_unit_test(test_exif_shrunk),
		cmocka_unit_test(test_exif_malformed),
		cmocka_unit_test(test_metadata_stripped),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
