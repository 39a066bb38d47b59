/*
 * images: a paint's photo (#28), stored in PostgreSQL (migration 0015)
 * and served at a content-addressed URL.
 *
 * An upload's body is processed by app/base/image (type by content,
 * limits before decoding, metadata stripped, WebP in two sizes), at most
 * IMAGES_AT_ONCE at a time, before any database connection is taken; it
 * is then stored under the SHA-256 of its full-size bytes, in the
 * transaction that points the paint at it (paints.c's image routes).
 * GET /images/<hash>.webp and /images/<hash>.thumb.webp serve it to
 * anyone with the address (it cannot be guessed), cached for a year by
 * browsers and for an hour by nginx.
 *
 * An image no paint shows any more is removed: at once when its paint's
 * image is replaced or removed through the image route (images_forget),
 * else by the housekeeper's sweep once it has been unused and not
 * uploaded again for IMAGES_GRACE_DAYS (so a bulk edit's undo, or an
 * audit entry's old value, can still bring it back meanwhile).
 */
#ifndef PS_IMAGES_H
#define PS_IMAGES_H

#include <libpq-fe.h>

#include "base/config.h"
#include "base/image.h"
#include "db/pool.h"
#include "http/context.h"
#include "resources/paint_model.h"
#include "resources/resources.h"

extern const struct resource images_resource;

/* An upload's body, at most (nginx's location for the route says the same). */
#define IMAGES_MAX_BODY (10u * 1024 * 1024)
/*
 * Uploads processed at once, each holding its decoded pixels meanwhile:
 * at the limits below (24 million pixels), about 100 MB for a PNG and up
 * to 150 MB for a progressive JPEG (libjpeg's coefficients), so a
 * process's image work stays under about 300 MB whatever arrives.
 */
#define IMAGES_AT_ONCE 2
#define IMAGES_GRACE_DAYS 7

/* An upload made ready to store. */
struct images_upload {
	struct image_out out;
	char hash[PAINT_IMAGE_HASH_LEN + 1];
	char url[sizeof(PAINT_IMAGE_PREFIX) + PAINT_IMAGE_HASH_LEN + sizeof(PAINT_IMAGE_SUFFIX)];
};

/*
 * Read the request's body (a route with body_stream IMAGES_MAX_BODY) as
 * an image and process it. 0, or -1 with the response set: 415 for a
 * Content-Type that is not an image's or content that is not PNG, JPEG or
 * WebP, 413 past a limit, 422 for a file that does not decode, 503 with
 * Retry-After when IMAGES_AT_ONCE others kept it waiting too long. Either
 * way the caller frees up with images_upload_free.
 */
int images_upload_read(struct ctx *c, struct images_upload *up);
void images_upload_free(struct images_upload *up);

/*
 * Store the upload (a struct images_upload *) on pg, in the caller's
 * transaction; as uploaded again if it is stored already. 0, or -1 with
 * the response set. Its shape is paint_change's before step.
 */
int images_upload_store(struct ctx *c, PGconn *pg, void *upload);

/*
 * After a committed write replaced a paint's image_url old: remove the
 * stored image old names, if it names one and no paint shows it now.
 * Best effort: a failure (another write made it shown again meanwhile,
 * a fault) leaves it for the sweep, and is logged.
 */
void images_forget(struct ctx *c, PGconn *pg, const char *old);

/* The housekeeper's chore: remove images unused for IMAGES_GRACE_DAYS. */
int images_sweep(struct pool *p, const struct config *cfg);

#endif
