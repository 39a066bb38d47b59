/*
 * image: a paint's photo, from the bytes a client uploaded to what is
 * stored and served. Pure: no I/O, no global state; safe from any thread.
 *
 * The type is decided by the content alone (image_sniff: PNG, JPEG or
 * WebP by their signatures), never by a header or a name. The declared
 * size is read from the file's own header and checked against the
 * limits before any pixel is decoded, so a decompression bomb costs a
 * header read. The file is decoded whole by its packaged library
 * (libpng, libjpeg-turbo's TurboJPEG, libwebp); a file that does not
 * decode completely (truncated, corrupt) is refused, never shown half
 * grey. A JPEG's EXIF orientation is applied to the pixels. What is kept
 * is the pixels alone, re-encoded as WebP: every metadata block of the
 * upload (EXIF with its GPS position, XMP, comments, colour profiles) is
 * gone. Two sizes are made: the image (longest side at most full_side,
 * never enlarged) and its thumbnail (at most thumb_side), both
 * area-averaged from the decoded pixels with alpha premultiplied.
 *
 * The output is a function of the input bytes and the settings alone (the
 * encoder runs single-threaded with fixed settings), so the same upload
 * always gives the same bytes and the same content address.
 */
#ifndef PS_IMAGE_H
#define PS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

enum image_type { IMAGE_UNKNOWN, IMAGE_PNG, IMAGE_JPEG, IMAGE_WEBP };

struct image_settings {
	size_t max_bytes;	/* the upload's size */
	uint32_t max_side;	/* declared width or height, each */
	uint64_t max_pixels;	/* declared width times height */
	uint32_t full_side;	/* the stored image's longest side, at most */
	uint32_t thumb_side;	/* the thumbnail's longest side, at most */
	int quality;		/* WebP quality, 1-100 */
};

/* Why an upload was refused; IMAGE_OK when it was not. */
enum image_status {
	IMAGE_OK,
	IMAGE_UNSUPPORTED,	/* not PNG, JPEG or WebP by its content, or a CMYK JPEG (415) */
	IMAGE_TOO_LARGE,	/* over a limit: bytes, a side or pixels (413) */
	IMAGE_INVALID,		/* does not decode: truncated, corrupt, animated... (422) */
};

/*
 * One WebP image made by image_process: data[0..len) (libwebp's memory:
 * freed only by image_out_free), width x height.
 */
struct image_webp {
	unsigned char *data;
	size_t len;
	uint32_t width, height;
};

struct image_out {
	enum image_type source;		/* what was uploaded */
	uint32_t source_width;		/* as shown: after the EXIF orientation */
	uint32_t source_height;
	struct image_webp full;
	struct image_webp thumb;
};

/* The type of data by its first bytes (n of them); IMAGE_UNKNOWN if none of ours. */
enum image_type image_sniff(const unsigned char *data, size_t n);

/* "image/png", "image/jpeg", "image/webp"; NULL for IMAGE_UNKNOWN. */
const char *image_type_mime(enum image_type t);

/*
 * Check, decode and re-encode the upload data[0..len) under set. On
 * IMAGE_OK *out holds both images (caller frees with image_out_free).
 * Otherwise out holds nothing to free and why (at most whylen bytes,
 * always terminated) says what is wrong in words for the client, naming
 * the figures ("is 20000 x 20000 pixels; at most 8192 on a side").
 */
enum image_status image_process(const unsigned char *data, size_t len,
				const struct image_settings *set, struct image_out *out,
				char *why, size_t whylen);

/* Free what image_process made; out may be zeroed or already freed. */
void image_out_free(struct image_out *out);

#endif
