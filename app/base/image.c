/*
 * image: sniff, check, decode, orient, shrink and re-encode an upload
 * (image.h).
 *
 * The path of an upload: its length against max_bytes; its type by its
 * signature; its header, read by its library, for the declared size,
 * checked against the limits before any pixel buffer exists; the pixels,
 * decoded whole into RGBA8 (a JPEG or a large WebP already shrunk on
 * load, to the smallest size that is still at least the stored one); a
 * JPEG's EXIF orientation applied; the stored image and the thumbnail
 * area-averaged from them; both encoded as lossy WebP, with an alpha
 * plane only when some pixel is not opaque.
 *
 * Decoding refuses, rather than patches up:
 * - PNG: any error of libpng's simplified API (a truncated file or IDAT,
 *   a CRC error in a critical chunk, a corrupt zlib stream, too little
 *   image data). Its warnings are accepted: they concern ancillary chunks
 *   (a bad CRC there, a colour profile it does not like) or compressed
 *   data past the last row, and leave every pixel decoded. An animated
 *   PNG gives its default image.
 * - JPEG: any error or warning ("Premature end of JPEG file" is refused,
 *   not grey-filled; TJFLAG_STOPONWARNING stops at the first); a progressive JPEG of more
 *   than 500 scans (TJFLAG_LIMITSCANS: a CPU bomb); CMYK and YCCK JPEGs
 *   (IMAGE_UNSUPPORTED: TurboJPEG does not decode them to RGB, and the
 *   inverted Adobe convention makes a guess wrong half the time).
 * - WebP: anything but VP8_STATUS_OK, and animated files.
 *
 * Memory, per call: the decoded pixels (at most max_pixels times 4
 * bytes, a PNG's whole size; a JPEG's or WebP's about the stored size)
 * plus, while shrinking or rotating, the smaller result and a row of
 * counters; inside libjpeg, a progressive JPEG's coefficients at full
 * size (up to max_pixels times 6 bytes, even when decoded shrunk); no
 * PNG chunk larger than the upload (decode_png). The caller bounds how
 * many calls run at once.
 */
#include "base/image.h"

#include <assert.h>
#include <inttypes.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <webp/decode.h>
#include <webp/encode.h>

#include "base/util.h"

/* RGBA8 pixels, rows packed (stride w * 4). */
struct raster {
	unsigned char *px;
	uint32_t w, h;
};

/* One upload on its way through image_process. */
struct job {
	const struct image_settings *set;
	char *why;
	size_t whylen;
	uint32_t width, height;	/* declared, as displayed (after orientation) */
	uint32_t full_w, full_h;	/* what the stored image will be */
	struct raster px;	/* decoded, oriented; maybe shrunk on load */
};

static enum image_status refuse(struct job *j, enum image_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum image_status check_size(struct job *j, uint32_t w, uint32_t h);
static void fit(uint32_t w, uint32_t h, uint32_t side, uint32_t *tw, uint32_t *th);
static void raster_alloc(struct raster *r, uint32_t w, uint32_t h);
static enum image_status decode_png(struct job *j, const unsigned char *data, size_t len);
static int png_chunks_fit(const unsigned char *d, size_t n);
static uint32_t rd16(const unsigned char *p, int le);
static uint32_t rd32(const unsigned char *p, int le);
static enum image_status decode_jpeg(struct job *j, const unsigned char *data, size_t len);
static enum image_status decode_webp(struct job *j, const unsigned char *data, size_t len);
static int jpeg_scale(uint32_t w, uint32_t h, uint32_t want, tjscalingfactor *best);
static int exif_orientation(const unsigned char *d, size_t n);
static int tiff_orientation(const unsigned char *t, size_t n);
static void orient(struct raster *r, int orientation);
static void shrink(const struct raster *src, uint32_t w, uint32_t h, struct raster *dst);
static void shrink_row(const unsigned char *row, uint32_t sw, uint32_t dw, uint64_t wv,
		       uint64_t *acc);
static int opaque(const struct raster *r);
static void bleed(struct raster *r);
static void bleed_row(unsigned char *p, uint32_t w, int *visible);
static enum image_status encode(struct job *j, struct raster *r, struct image_webp *out);

static const unsigned char png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

enum image_type image_sniff(const unsigned char *data, size_t n)
{
	if (n >= sizeof(png_sig) && memcmp(data, png_sig, sizeof(png_sig)) == 0)
		return IMAGE_PNG;
	if (n >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
		return IMAGE_JPEG;
	if (n >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0)
		return IMAGE_WEBP;
	return IMAGE_UNKNOWN;
}

const char *image_type_mime(enum image_type t)
{
	switch (t) {
	case IMAGE_PNG:
		return "image/png";
	case IMAGE_JPEG:
		return "image/jpeg";
	case IMAGE_WEBP:
		return "image/webp";
	case IMAGE_UNKNOWN:
		break;
	}
	return NULL;
}

enum image_status image_process(const unsigned char *data, size_t len,
				const struct image_settings *set, struct image_out *out,
				char *why, size_t whylen)
{
	struct job j = { .set = set, .why = why, .whylen = whylen };
	struct raster full = { 0 }, thumb = { 0 };
	enum image_status st;
	uint32_t tw, th;

	memset(out, 0, sizeof(*out));
	if (whylen > 0)
		why[0] = '\0';
	if (len > set->max_bytes) {
		st = refuse(&j, IMAGE_TOO_LARGE, "is %zu bytes; at most %zu", len, set->max_bytes);
		goto out;
	}
	out->source = image_sniff(data, len);
	switch (out->source) {
	case IMAGE_PNG:
		st = decode_png(&j, data, len);
		break;
	case IMAGE_JPEG:
		st = decode_jpeg(&j, data, len);
		break;
	case IMAGE_WEBP:
		st = decode_webp(&j, data, len);
		break;
	default:
		st = refuse(&j, IMAGE_UNSUPPORTED, "is not a PNG, JPEG or WebP image (by its content)");
		break;
	}
	if (st != IMAGE_OK)
		goto out;
	out->source_width = j.width;
	out->source_height = j.height;
	shrink(&j.px, j.full_w, j.full_h, &full);
	fit(full.w, full.h, set->thumb_side, &tw, &th);
	shrink(&full, tw, th, &thumb);
	st = encode(&j, &full, &out->full);
	if (st == IMAGE_OK)
		st = encode(&j, &thumb, &out->thumb);
out:
	free(j.px.px);
	free(full.px);
	free(thumb.px);
	if (st != IMAGE_OK)
		image_out_free(out);
	return st;
}

void image_out_free(struct image_out *out)
{
	WebPFree(out->full.data);
	WebPFree(out->thumb.data);
	out->full.data = out->thumb.data = NULL;
	out->full.len = out->thumb.len = 0;
}

/* Say why into j->why; returns st. */
static enum image_status refuse(struct job *j, enum image_status st, const char *fmt, ...)
{
	va_list ap;

	if (j->whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(j->why, j->whylen, fmt, ap);
		va_end(ap);
	}
	return st;
}

/*
 * The declared size w x h against the limits (they do not care which
 * side is which). On IMAGE_OK, j's declared and stored sizes are set (as
 * stored, before any orientation: decode_jpeg swaps them).
 */
static enum image_status check_size(struct job *j, uint32_t w, uint32_t h)
{
	const struct image_settings *set = j->set;
	uint64_t pixels = (uint64_t)w * h;

	if (w == 0 || h == 0)
		return refuse(j, IMAGE_INVALID, "declares a size of %" PRIu32 " x %" PRIu32 " pixels",
			      w, h);
	if (w > set->max_side || h > set->max_side)
		return refuse(j, IMAGE_TOO_LARGE,
			      "is %" PRIu32 " x %" PRIu32 " pixels; at most %" PRIu32 " on a side", w,
			      h, set->max_side);
	if (pixels > set->max_pixels)
		return refuse(j, IMAGE_TOO_LARGE,
			      "is %" PRIu32 " x %" PRIu32 " = %" PRIu64 " pixels; at most %" PRIu64,
			      w, h, pixels, set->max_pixels);
	j->width = w;
	j->height = h;
	fit(w, h, set->full_side, &j->full_w, &j->full_h);
	return IMAGE_OK;
}

/*
 * The size of a w x h image shrunk to at most side on its longest side:
 * the aspect ratio kept, the other side rounded and at least 1; never
 * larger than w x h.
 */
static void fit(uint32_t w, uint32_t h, uint32_t side, uint32_t *tw, uint32_t *th)
{
	uint32_t longest = w > h ? w : h;
	uint64_t other;

	if (side == 0)
		side = 1;
	if (longest <= side) {
		*tw = w;
		*th = h;
		return;
	}
	other = ((uint64_t)(w > h ? h : w) * side + longest / 2) / longest;
	if (other == 0)
		other = 1;
	*tw = w > h ? side : (uint32_t)other;
	*th = w > h ? (uint32_t)other : side;
}

static void raster_alloc(struct raster *r, uint32_t w, uint32_t h)
{
	r->px = xmalloc(size_mul(size_mul(w, h), 4));
	r->w = w;
	r->h = h;
}

/* PNG. */

/*
 * libpng allocates a chunk's declared length before it reads the chunk
 * (a 200-byte file declaring a 2 GB tEXt costs a 2 GB malloc), so the
 * chunks are walked here first: the size from IHDR (which must come
 * first) checked against the limits, then every chunk up to IEND must lie
 * within the file, so that none can cost more than the upload's size.
 */
static enum image_status decode_png(struct job *j, const unsigned char *data, size_t len)
{
	png_image img;
	enum image_status st;

	if (len < 8 + 8 + 13 || memcmp(data + 8, "\0\0\0\x0dIHDR", 8) != 0)
		return refuse(j, IMAGE_INVALID, "is not a valid PNG image: no IHDR chunk first");
	st = check_size(j, rd32(data + 16, 0), rd32(data + 20, 0));
	if (st != IMAGE_OK)
		return st;
	if (!png_chunks_fit(data, len))
		return refuse(j, IMAGE_INVALID,
			      "is not a valid PNG image: truncated (a chunk runs past its end)");
	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_memory(&img, data, len)) {
		st = refuse(j, IMAGE_INVALID, "is not a valid PNG image: %s", img.message);
		goto out;
	}
	if (img.width != j->width || img.height != j->height) {	/* libpng read another IHDR? */
		st = refuse(j, IMAGE_INVALID, "is not a valid PNG image: its size is unclear");
		goto out;
	}
	img.format = PNG_FORMAT_RGBA;
	raster_alloc(&j->px, img.width, img.height);
	/* PNG_IMAGE_WARNING may be set here: see the top of the file. */
	if (!png_image_finish_read(&img, NULL, j->px.px, 0, NULL))
		st = refuse(j, IMAGE_INVALID, "is not a valid PNG image: %s", img.message);
out:
	png_image_free(&img);
	return st;
}

/* 1 if each chunk of the PNG d[0..n) lies within it, up to an IEND chunk. */
static int png_chunks_fit(const unsigned char *d, size_t n)
{
	size_t pos = 8, clen;

	while (n - pos >= 12) {
		clen = rd32(d + pos, 0);
		if (clen > n - pos - 12)
			return 0;
		if (memcmp(d + pos + 4, "IEND", 4) == 0)
			return 1;
		pos += 12 + clen;
	}
	return 0;
}

/* JPEG. */

static enum image_status decode_jpeg(struct job *j, const unsigned char *data, size_t len)
{
	tjhandle tj = tjInitDecompress();
	tjscalingfactor sf;
	enum image_status st;
	int w, h, subsamp, colorspace, orientation;
	uint32_t dw, dh, t;

	if (tj == NULL)
		return refuse(j, IMAGE_INVALID, "could not be read: the JPEG decoder did not start");
	if (tjDecompressHeader3(tj, data, (unsigned long)len, &w, &h, &subsamp, &colorspace) != 0) {
		st = refuse(j, IMAGE_INVALID, "is not a valid JPEG image: %s", tjGetErrorStr2(tj));
		goto out;
	}
	st = check_size(j, (uint32_t)(w < 0 ? 0 : w), (uint32_t)(h < 0 ? 0 : h));
	if (st != IMAGE_OK)
		goto out;
	if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
		st = refuse(j, IMAGE_UNSUPPORTED,
			    "is a CMYK JPEG; only RGB and greyscale JPEGs are supported");
		goto out;
	}
	orientation = exif_orientation(data, len);
	if (orientation >= 5) {
		t = j->width, j->width = j->height, j->height = t;
		t = j->full_w, j->full_w = j->full_h, j->full_h = t;
	}
	if (jpeg_scale((uint32_t)w, (uint32_t)h,
		       j->full_w > j->full_h ? j->full_w : j->full_h, &sf) != 0) {
		st = refuse(j, IMAGE_INVALID, "could not be read: no JPEG scaling factor fits");
		goto out;
	}
	dw = (uint32_t)TJSCALED(w, sf);
	dh = (uint32_t)TJSCALED(h, sf);
	raster_alloc(&j->px, dw, dh);
	if (tjDecompress2(tj, data, (unsigned long)len, j->px.px, (int)dw, (int)dw * 4, (int)dh,
			  TJPF_RGBA, TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0) {
		st = refuse(j, IMAGE_INVALID, "is not a valid JPEG image: %s", tjGetErrorStr2(tj));
		goto out;
	}
	orient(&j->px, orientation);
out:
	tjDestroy(tj);
	return st;
}

/*
 * Into *best, TurboJPEG's smallest scaling factor (at most 1/1) that
 * gives a w x h image a longest side of at least want; -1 if it has none
 * (1/1 is always among them).
 */
static int jpeg_scale(uint32_t w, uint32_t h, uint32_t want, tjscalingfactor *best)
{
	tjscalingfactor *sf;
	int i, n, found = 0;
	uint32_t longest = w > h ? w : h;

	sf = tjGetScalingFactors(&n);
	for (i = 0; sf != NULL && i < n; i++) {
		if (sf[i].num <= 0 || sf[i].denom <= 0 || sf[i].num > sf[i].denom)
			continue;
		if ((uint32_t)TJSCALED((int)longest, sf[i]) < want)
			continue;
		/* Smaller: num/denom < best's, compared without division. */
		if (!found || (int64_t)sf[i].num * best->denom < (int64_t)best->num * sf[i].denom) {
			*best = sf[i];
			found = 1;
		}
	}
	return found ? 0 : -1;
}

/* Big-endian or little-endian reads, for the TIFF structure of EXIF. */
static uint32_t rd16(const unsigned char *p, int le)
{
	return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : (uint32_t)p[0] << 8 | p[1];
}

static uint32_t rd32(const unsigned char *p, int le)
{
	return le ? rd16(p, 1) | rd16(p + 2, 1) << 16 : rd16(p, 0) << 16 | rd16(p + 2, 0);
}

/*
 * The EXIF orientation (1-8) of the JPEG d[0..n): the markers walked from
 * SOI to SOS, the first APP1 "Exif\0\0" segment parsed. Anything missing
 * or malformed gives 1 (as stored). Reads only within d[0..n).
 */
static int exif_orientation(const unsigned char *d, size_t n)
{
	size_t pos = 2, seg;
	unsigned char m;

	if (n < 2 || d[0] != 0xff || d[1] != 0xd8)
		return 1;
	while (pos + 4 <= n) {
		if (d[pos] != 0xff)
			return 1;
		m = d[pos + 1];
		if (m == 0xff) {	/* fill byte */
			pos++;
			continue;
		}
		if (m == 0xda || m == 0xd9)	/* SOS, EOI: no EXIF past here */
			return 1;
		if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {	/* no length */
			pos += 2;
			continue;
		}
		seg = rd16(d + pos + 2, 0);	/* counts itself, not the marker */
		if (seg < 2 || seg > n - pos - 2)
			return 1;
		if (m == 0xe1 && seg >= 2 + 6 && memcmp(d + pos + 4, "Exif\0\0", 6) == 0)
			return tiff_orientation(d + pos + 10, seg - 8);
		pos += 2 + seg;
	}
	return 1;
}

/* The orientation tag of IFD0 in the TIFF structure t[0..n); 1 if none. */
static int tiff_orientation(const unsigned char *t, size_t n)
{
	uint32_t off, count, i, v;
	const unsigned char *e;
	int le;

	if (n < 8)
		return 1;
	if (memcmp(t, "II", 2) == 0)
		le = 1;
	else if (memcmp(t, "MM", 2) == 0)
		le = 0;
	else
		return 1;
	if (rd16(t + 2, le) != 42)
		return 1;
	off = rd32(t + 4, le);
	if (off < 8 || off > n - 2)
		return 1;
	count = rd16(t + off, le);
	if (count > (n - off - 2) / 12)
		return 1;
	for (i = 0; i < count; i++) {
		e = t + off + 2 + (size_t)i * 12;
		if (rd16(e, le) != 0x0112)
			continue;
		/* SHORT, one value, left-justified in the 4-byte value field. */
		if (rd16(e + 2, le) != 3 || rd32(e + 4, le) != 1)
			return 1;
		v = rd16(e + 8, le);
		return v >= 1 && v <= 8 ? (int)v : 1;
	}
	return 1;
}

/*
 * Turn r as EXIF orientation o says, so it shows upright: 2 mirrored, 3
 * turned 180 degrees, 4 flipped, 5 transposed, 6 turned 90 degrees
 * clockwise, 7 transversed, 8 turned 90 degrees anticlockwise. For each
 * pixel (x, y) shown, the stored pixel (sx, sy) it comes from.
 */
static void orient(struct raster *r, int o)
{
	struct raster d;
	uint32_t x, y, sx, sy, w = r->w, h = r->h;
	int swap = o >= 5;

	if (o < 2 || o > 8)
		return;
	raster_alloc(&d, swap ? h : w, swap ? w : h);
	for (y = 0; y < d.h; y++) {
		for (x = 0; x < d.w; x++) {
			switch (o) {
			case 2: sx = w - 1 - x, sy = y; break;
			case 3: sx = w - 1 - x, sy = h - 1 - y; break;
			case 4: sx = x, sy = h - 1 - y; break;
			case 5: sx = y, sy = x; break;
			case 6: sx = y, sy = h - 1 - x; break;
			case 7: sx = w - 1 - y, sy = h - 1 - x; break;
			default: sx = w - 1 - y, sy = x; break;
			}
			memcpy(d.px + ((size_t)y * d.w + x) * 4, r->px + ((size_t)sy * w + sx) * 4, 4);
		}
	}
	free(r->px);
	*r = d;
}

/* WebP. */

static enum image_status decode_webp(struct job *j, const unsigned char *data, size_t len)
{
	WebPDecoderConfig cfg;
	enum image_status st;
	VP8StatusCode rc;
	uint32_t w, h;

	if (!WebPInitDecoderConfig(&cfg))
		return refuse(j, IMAGE_INVALID, "could not be read: the WebP decoder did not start");
	rc = WebPGetFeatures(data, len, &cfg.input);
	if (rc != VP8_STATUS_OK)
		return refuse(j, IMAGE_INVALID, "is not a valid WebP image (error %d)", (int)rc);
	st = check_size(j, (uint32_t)cfg.input.width, (uint32_t)cfg.input.height);
	if (st != IMAGE_OK)
		return st;
	if (cfg.input.has_animation)
		return refuse(j, IMAGE_INVALID, "animated images are not supported");
	/* Shrunk on load straight to the stored size, by libwebp's area-averaging rescaler. */
	w = j->full_w;
	h = j->full_h;
	if (w != j->width || h != j->height) {
		cfg.options.use_scaling = 1;
		cfg.options.scaled_width = (int)w;
		cfg.options.scaled_height = (int)h;
	}
	cfg.options.use_threads = 0;
	raster_alloc(&j->px, w, h);
	cfg.output.colorspace = MODE_RGBA;
	cfg.output.is_external_memory = 1;
	cfg.output.u.RGBA.rgba = j->px.px;
	cfg.output.u.RGBA.stride = (int)w * 4;
	cfg.output.u.RGBA.size = (size_t)w * h * 4;
	rc = WebPDecode(data, len, &cfg);
	WebPFreeDecBuffer(&cfg.output);
	if (rc != VP8_STATUS_OK)
		return refuse(j, IMAGE_INVALID, "is not a valid WebP image (error %d)", (int)rc);
	return IMAGE_OK;
}

/*
 * Resizing: area averaging with exact fractional coverage. Along a row,
 * output pixel i covers the source interval [i*sw/dw, (i+1)*sw/dw);
 * scaled by dw, source pixel k covers [k*dw, (k+1)*dw) and output pixel
 * i covers [i*sw, (i+1)*sw), so the weight of k in i is the integer
 * length of the overlap, and the weights of an output pixel sum to sw
 * (sh down a column). With alpha premultiplied, an output pixel's alpha
 * is sum(w*a) / (sw*sh) and its colour sum(w*a*c) / sum(w*a), each
 * rounded once: no rounding in between, and an opaque edge is not
 * darkened by the transparent pixels beside it. The counters are 64-bit:
 * sum(w*a*c) is at most 65025 * sw * sh, which fits for any image that
 * fits in memory (sw * sh < 2^40).
 */
static void shrink(const struct raster *src, uint32_t w, uint32_t h, struct raster *dst)
{
	uint64_t *acc = xcalloc(size_mul(w, 4), sizeof(*acc));
	uint64_t total = (uint64_t)src->w * src->h, lo, hi, a;
	uint32_t y, x, k, c;
	unsigned char *p;

	assert(w >= 1 && h >= 1 && total < (UINT64_C(1) << 40));
	raster_alloc(dst, w, h);
	if (w == src->w && h == src->h) {
		memcpy(dst->px, src->px, size_mul(size_mul(w, h), 4));
		free(acc);
		return;
	}
	for (y = 0; y < h; y++) {
		memset(acc, 0, sizeof(*acc) * w * 4);
		for (k = (uint32_t)((uint64_t)y * src->h / h);
		     k < src->h && (uint64_t)k * h < (uint64_t)(y + 1) * src->h; k++) {
			lo = (uint64_t)k * h > (uint64_t)y * src->h ? (uint64_t)k * h
								    : (uint64_t)y * src->h;
			hi = (uint64_t)(k + 1) * h < (uint64_t)(y + 1) * src->h
				     ? (uint64_t)(k + 1) * h
				     : (uint64_t)(y + 1) * src->h;
			shrink_row(src->px + (size_t)k * src->w * 4, src->w, w, hi - lo, acc);
		}
		p = dst->px + (size_t)y * w * 4;
		for (x = 0; x < w; x++, p += 4) {
			a = acc[x * 4 + 3];
			for (c = 0; c < 3; c++)
				p[c] = (unsigned char)(a ? (acc[x * 4 + c] + a / 2) / a : 0);
			p[3] = (unsigned char)((a + total / 2) / total);
		}
	}
	free(acc);
}

/*
 * Add the source row (sw pixels), shrunk to dw and weighted by wv, to
 * acc: per output pixel, sum(w*a*r), sum(w*a*g), sum(w*a*b), sum(w*a).
 */
static void shrink_row(const unsigned char *row, uint32_t sw, uint32_t dw, uint64_t wv,
		       uint64_t *acc)
{
	uint64_t lo, hi, wa;
	uint32_t i, k;
	const unsigned char *s;

	for (i = 0; i < dw; i++, acc += 4) {
		for (k = (uint32_t)((uint64_t)i * sw / dw);
		     k < sw && (uint64_t)k * dw < (uint64_t)(i + 1) * sw; k++) {
			lo = (uint64_t)k * dw > (uint64_t)i * sw ? (uint64_t)k * dw : (uint64_t)i * sw;
			hi = (uint64_t)(k + 1) * dw < (uint64_t)(i + 1) * sw ? (uint64_t)(k + 1) * dw
									     : (uint64_t)(i + 1) * sw;
			s = row + (size_t)k * 4;
			wa = (hi - lo) * wv * s[3];
			acc[0] += wa * s[0];
			acc[1] += wa * s[1];
			acc[2] += wa * s[2];
			acc[3] += wa;
		}
	}
}

/* Encoding. */

/* 1 if every pixel of r is opaque. */
static int opaque(const struct raster *r)
{
	size_t i, n = (size_t)r->w * r->h;

	for (i = 0; i < n; i++)
		if (r->px[i * 4 + 3] != 255)
			return 0;
	return 1;
}

/*
 * Give each fully transparent pixel of r the colour of a visible one: the
 * nearest before it in its row (after it, for those before the row's
 * first), or in a row with none visible, the row above's (below's, for
 * the rows above the first with any). They stay invisible, but a lossy
 * encoder then sees no false edge where a transparent area meets a
 * visible one, which would ring into the visible pixels (a dark fringe
 * around a cut-out, from the black that shrink gives invisible pixels).
 */
static void bleed(struct raster *r)
{
	size_t stride = (size_t)r->w * 4;
	uint32_t y, x, first = r->h;
	int visible;
	unsigned char *p;

	for (y = 0; y < r->h; y++) {
		p = r->px + y * stride;
		bleed_row(p, r->w, &visible);
		if (visible && first == r->h)
			first = y;
		else if (!visible && first < y)
			for (x = 0; x < r->w; x++)
				memcpy(p + x * 4, p - stride + x * 4, 3);
	}
	for (y = first; y-- > 0 && first < r->h;)
		for (x = 0; x < r->w; x++)
			memcpy(r->px + y * stride + x * 4, r->px + (y + 1) * stride + x * 4, 3);
}

/* bleed along the row p (w pixels); *visible: whether it has a visible pixel. */
static void bleed_row(unsigned char *p, uint32_t w, int *visible)
{
	uint32_t x, first = 0;

	while (first < w && p[first * 4 + 3] == 0)
		first++;
	*visible = first < w;
	if (!*visible)
		return;
	for (x = 0; x < first; x++)
		memcpy(p + x * 4, p + first * 4, 3);
	for (x = first + 1; x < w; x++)
		if (p[x * 4 + 3] == 0)
			memcpy(p + x * 4, p + (x - 1) * 4, 3);
}

/*
 * r as lossy WebP into *out (its data libwebp's, freed by WebPFree):
 * single-threaded with fixed settings, so deterministic; an alpha plane
 * only if r is not opaque (its invisible pixels' colours changed first:
 * bleed); no metadata chunk (libwebp writes none unless told to).
 */
static enum image_status encode(struct job *j, struct raster *r, struct image_webp *out)
{
	WebPConfig cfg;
	WebPPicture pic;
	WebPMemoryWriter wr;
	int ok, solid = opaque(r);

	if (!WebPConfigInit(&cfg) || !WebPPictureInit(&pic))
		return refuse(j, IMAGE_INVALID, "could not be encoded: libwebp did not start");
	cfg.quality = (float)j->set->quality;
	cfg.method = 4;
	cfg.thread_level = 0;
	pic.width = (int)r->w;
	pic.height = (int)r->h;
	WebPMemoryWriterInit(&wr);
	pic.writer = WebPMemoryWrite;
	pic.custom_ptr = &wr;
	if (!solid)
		bleed(r);
	ok = WebPValidateConfig(&cfg) &&
	     (solid ? WebPPictureImportRGBX(&pic, r->px, (int)r->w * 4)
			: WebPPictureImportRGBA(&pic, r->px, (int)r->w * 4)) &&
	     WebPEncode(&cfg, &pic);
	if (!ok) {
		WebPMemoryWriterClear(&wr);
		WebPPictureFree(&pic);
		return refuse(j, IMAGE_INVALID, "could not be encoded as WebP (error %d)",
			      (int)pic.error_code);
	}
	WebPPictureFree(&pic);
	out->data = wr.mem;
	out->len = wr.size;
	out->width = r->w;
	out->height = r->h;
	return IMAGE_OK;
}
