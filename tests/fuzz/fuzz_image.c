/*
 * Uploaded images (issue #28) as image_process takes them, under small
 * limits (so that a decoded image costs at most a megabyte). Beyond not
 * crashing, what the module promises:
 * - the sniffed type is the type reported, and anything it calls
 *   IMAGE_UNKNOWN is refused as IMAGE_UNSUPPORTED;
 * - a refusal says why, in a terminated string, and leaves nothing to free;
 * - on IMAGE_OK the source size is within the limits, the stored image
 *   at most full_side and the thumbnail at most thumb_side on their
 *   longest sides, neither larger than the source, and both are WebP
 *   files that libwebp decodes at the sizes reported.
 */
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>

#include "base/image.h"
#include "fuzz.h"

static const struct image_settings set = { 1 << 20, 512, 262144, 128, 32, 75 };

static void check_webp(const struct image_webp *w, uint32_t side, uint32_t sw, uint32_t sh)
{
	int dw = 0, dh = 0;

	if (w->data == NULL || w->width == 0 || w->height == 0 ||
	    w->width > sw || w->height > sh ||
	    (w->width > w->height ? w->width : w->height) > side)
		abort();
	if (!WebPGetInfo(w->data, w->len, &dw, &dh) || (uint32_t)dw != w->width ||
	    (uint32_t)dh != w->height)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image_out out;
	enum image_type t = image_sniff(data, size);
	enum image_status st;
	char why[96];

	memset(why, 'x', sizeof(why));
	st = image_process(data, size, &set, &out, why, sizeof(why));
	if (memchr(why, '\0', sizeof(why)) == NULL)
		abort();
	if (t == IMAGE_UNKNOWN && st != IMAGE_UNSUPPORTED)
		abort();
	if (st != IMAGE_OK) {
		if (why[0] == '\0' || out.full.data != NULL || out.thumb.data != NULL)
			abort();
		return 0;
	}
	if (out.source != t || out.source_width == 0 || out.source_height == 0 ||
	    out.source_width > set.max_side || out.source_height > set.max_side ||
	    (uint64_t)out.source_width * out.source_height > set.max_pixels)
		abort();
	check_webp(&out.full, set.full_side, out.source_width, out.source_height);
	check_webp(&out.thumb, set.thumb_side, out.full.width, out.full.height);
	image_out_free(&out);
	return 0;
}
