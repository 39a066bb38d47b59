/*
 * imgen: small test images made with the libraries image.c decodes with,
 * for tests/unit/test_image.c and tests/tools/mkimage.c. Header-only
 * (static inline) so each includer builds it alone. Every function
 * returns malloc'd bytes (the caller frees) and aborts on failure: these
 * are test tools, and a failure here is a broken test.
 */
#ifndef PS_IMGEN_H
#define PS_IMGEN_H

#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <webp/encode.h>

#include "base/util.h"

/*
 * RGBA w x h: red rising left to right, green top to bottom, blue 128;
 * with alpha, the left half (x < w / 2) fully transparent.
 */
static inline unsigned char *imgen_gradient(uint32_t w, uint32_t h, int alpha)
{
	unsigned char *px = xmalloc(size_mul(size_mul(w, h), 4)), *p = px;
	uint32_t x, y;

	for (y = 0; y < h; y++) {
		for (x = 0; x < w; x++, p += 4) {
			p[0] = (unsigned char)(w > 1 ? x * 255u / (w - 1) : 0);
			p[1] = (unsigned char)(h > 1 ? y * 255u / (h - 1) : 0);
			p[2] = 128;
			p[3] = alpha && x < w / 2 ? 0 : 255;
		}
	}
	return px;
}

/* Bytes ins[0..n) put into buf[0..*len) at pos; buf freed, the result returned. */
static inline unsigned char *imgen_insert(unsigned char *buf, size_t *len, size_t pos,
					  const unsigned char *ins, size_t n)
{
	unsigned char *out = xmalloc(size_add(*len, n));

	memcpy(out, buf, pos);
	memcpy(out + pos, ins, n);
	memcpy(out + pos + n, buf + pos, *len - pos);
	free(buf);
	*len += n;
	return out;
}

static inline void imgen_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* The CRC-32 of PNG chunks (ISO 3309), bit by bit: small inputs only. */
static inline uint32_t imgen_crc32(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		c ^= p[i];
		for (k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
	}
	return c ^ 0xffffffffu;
}

/* A PNG chunk type[4] with data[0..n) put into the PNG buf[0..*len) at pos. */
static inline unsigned char *imgen_png_chunk(unsigned char *buf, size_t *len, size_t pos,
					     const char *type, const void *data, size_t n)
{
	unsigned char *c = xmalloc(size_add(n, 12));

	imgen_be32(c, (uint32_t)n);
	memcpy(c + 4, type, 4);
	if (n > 0)
		memcpy(c + 8, data, n);
	imgen_be32(c + 8 + n, imgen_crc32(c + 4, n + 4));
	buf = imgen_insert(buf, len, pos, c, n + 12);
	free(c);
	return buf;
}

/* rgba as an RGBA PNG (libpng's simplified writer); with text, a tEXt "Comment" after IHDR. */
static inline unsigned char *imgen_png(const unsigned char *rgba, uint32_t w, uint32_t h,
				       const char *text, size_t *len)
{
	png_image img;
	png_alloc_size_t n = 0;
	unsigned char *buf;
	size_t tlen;
	char *kv;

	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	img.width = w;
	img.height = h;
	img.format = PNG_FORMAT_RGBA;
	if (!png_image_write_get_memory_size(img, n, 0, rgba, 0, NULL))
		die("imgen: png size: %s", img.message);
	buf = xmalloc(n);
	if (!png_image_write_to_memory(&img, buf, &n, 0, rgba, 0, NULL))
		die("imgen: png: %s", img.message);
	*len = n;
	if (text != NULL) {
		tlen = strlen(text);
		kv = xmalloc(size_add(tlen, 8));
		memcpy(kv, "Comment", 8);	/* keyword, NUL, text */
		memcpy(kv + 8, text, tlen);
		buf = imgen_png_chunk(buf, len, 8 + 25, "tEXt", kv, tlen + 8);	/* after IHDR */
		free(kv);
	}
	return buf;
}

/* rgba as a baseline JPEG, 4:4:4, at quality (tjCompress2). */
static inline unsigned char *imgen_jpeg(const unsigned char *rgba, uint32_t w, uint32_t h,
					int quality, size_t *len)
{
	tjhandle tj = tjInitCompress();
	unsigned char *jpeg = NULL, *out;
	unsigned long n = 0;

	if (tj == NULL || tjCompress2(tj, rgba, (int)w, (int)w * 4, (int)h, TJPF_RGBA, &jpeg, &n,
				      TJSAMP_444, quality, 0) != 0)
		die("imgen: jpeg: %s", tjGetErrorStr2(tj));
	out = xmalloc(n);
	memcpy(out, jpeg, n);
	tjFree(jpeg);
	tjDestroy(tj);
	*len = n;
	return out;
}

/* A JPEG segment: FF marker, its length, body[0..n); malloc'd, 4 + n bytes. */
static inline unsigned char *imgen_jpeg_segment(unsigned char marker, const void *body, size_t n)
{
	unsigned char *s = xmalloc(size_add(n, 4));

	if (n > 65533)
		die("imgen: a JPEG segment of %zu bytes", n);
	s[0] = 0xff;
	s[1] = marker;
	s[2] = (unsigned char)((n + 2) >> 8);
	s[3] = (unsigned char)(n + 2);
	memcpy(s + 4, body, n);
	return s;
}

/* Put the segment (marker, body[0..n)) into the JPEG buf right after its SOI. */
static inline unsigned char *imgen_jpeg_add(unsigned char *buf, size_t *len, unsigned char marker,
					    const void *body, size_t n)
{
	unsigned char *s = imgen_jpeg_segment(marker, body, n);

	buf = imgen_insert(buf, len, 2, s, n + 4);
	free(s);
	return buf;
}

/*
 * An EXIF body ("Exif\0\0", a big-endian TIFF header, IFD0 with the one
 * entry Orientation = orientation, no next IFD) into body[0..32); its length.
 */
static inline size_t imgen_exif(unsigned char body[32], unsigned orientation)
{
	static const unsigned char exif[32] = {
		'E', 'x', 'i', 'f', 0, 0,
		'M', 'M', 0, 42, 0, 0, 0, 8,	/* TIFF header, IFD0 at 8 */
		0, 1,				/* one entry */
		0x01, 0x12, 0, 3, 0, 0, 0, 1,	/* Orientation, SHORT, 1 value */
		0, 1, 0, 0,			/* the value, padded to 4 bytes */
		0, 0, 0, 0,			/* no next IFD */
	};

	memcpy(body, exif, sizeof(exif));
	body[24] = (unsigned char)(orientation >> 8);
	body[25] = (unsigned char)orientation;
	return sizeof(exif);
}

/* rgba as a WebP: lossy at quality, or lossless (quality < 0). */
static inline unsigned char *imgen_webp(const unsigned char *rgba, uint32_t w, uint32_t h,
					int quality, size_t *len)
{
	uint8_t *webp = NULL;
	unsigned char *out;
	size_t n;

	if (quality < 0)
		n = WebPEncodeLosslessRGBA(rgba, (int)w, (int)h, (int)w * 4, &webp);
	else
		n = WebPEncodeRGBA(rgba, (int)w, (int)h, (int)w * 4, (float)quality, &webp);
	if (n == 0)
		die("imgen: webp encoding failed");
	out = xmalloc(n);
	memcpy(out, webp, n);
	WebPFree(webp);
	*len = n;
	return out;
}

#endif
