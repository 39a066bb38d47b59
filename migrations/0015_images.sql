-- Paint images (#28). An upload (POST /admin/paints/{id}/image) is
-- decoded, stripped of its metadata and re-encoded as WebP in two sizes
-- (app/base/image.h); both are kept here, in PostgreSQL, the one store
-- every deployment has, so every process and container serves them.
--
-- An image is named by the SHA-256 of its full-size WebP bytes, so a name
-- never changes what it shows: it is served at /images/<hash>.webp (the
-- thumbnail at /images/<hash>.thumb.webp) with a year's caching, and the
-- same upload twice is stored once. A paint shows it by its image_url,
-- which may still be any absolute http(s) URL instead.
CREATE TABLE images (
    hash          text PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
    full_webp     bytea NOT NULL,
    width         integer NOT NULL CHECK (width > 0),
    height        integer NOT NULL CHECK (height > 0),
    thumb_webp    bytea NOT NULL,
    thumb_width   integer NOT NULL CHECK (thumb_width > 0),
    thumb_height  integer NOT NULL CHECK (thumb_height > 0),
    -- What was uploaded (the file itself is not kept):
    source_type   text NOT NULL CHECK (source_type IN ('image/png', 'image/jpeg', 'image/webp')),
    source_bytes  integer NOT NULL CHECK (source_bytes > 0),
    source_width  integer NOT NULL CHECK (source_width > 0),
    source_height integer NOT NULL CHECK (source_height > 0),
    -- The last upload of these bytes: an image no paint shows is removed
    -- by the housekeeper only once this is old (a grace for undo).
    uploaded_at   timestamptz NOT NULL DEFAULT now()
);

-- WebP is compressed already: store it as it is, out of line, without
-- PostgreSQL trying to compress it again.
ALTER TABLE images ALTER COLUMN full_webp SET STORAGE EXTERNAL;
ALTER TABLE images ALTER COLUMN thumb_webp SET STORAGE EXTERNAL;

-- The stored image a paint's image_url names, if it names one. The
-- foreign key makes "a paint shows a stored image" a fact of the data:
-- no write (an edit, an import, a bulk edit or its undo) can point a
-- paint at an image that is not stored, and no image a paint shows can
-- be removed; a removal racing an upload that reuses the image is
-- settled by the key's row locks, not by timing.
ALTER TABLE paints ADD COLUMN image_hash text
    GENERATED ALWAYS AS (CASE WHEN image_url ~ '^/images/[0-9a-f]{64}\.webp$'
                              THEN substr(image_url, 9, 64) END) STORED
    REFERENCES images (hash);
CREATE INDEX paints_image_hash_idx ON paints (image_hash) WHERE image_hash IS NOT NULL;
