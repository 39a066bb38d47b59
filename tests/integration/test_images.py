"""A paint's image through nginx: POST /admin/paints/{id}/image with the
image as the body, decoded by content and stored as WebP in two sizes
under its SHA-256, served by anyone at /images/<hash>.webp and
.thumb.webp with a year's caching (and nginx's cache), DELETE, and the
hostile uploads: types that lie, decompression bombs, truncated and
corrupt files, each a clear 4xx with nothing written."""
import hashlib
import os
import struct
import subprocess
import threading
import time
import unittest
import uuid
import zlib

from harness import stack
from test_basics import assert_problem
from test_import import service_rss_kb
from test_paints_api import new_paint

IMAGE_URL = "/images/%s.webp"


def mkimage(kind, width, height, *flags):
    """A real image made by the same libraries (tests/tools/mkimage.c)."""
    tool = os.path.join(os.path.dirname(stack().binary), "tools", "mkimage")
    return subprocess.run([tool, kind, str(width), str(height), *flags], check=True,
                          capture_output=True, timeout=60).stdout


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + \
        struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def png_gray(width, height, rows=None):
    """A grey PNG, every pixel 0, written here: its IHDR says width x
    height, its data holds rows of them (all of them by default)."""
    raw = zlib.compress(b"\0" * ((width + 1) * (height if rows is None else rows)), 9)
    return (b"\x89PNG\r\n\x1a\n" +
            png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) +
            png_chunk(b"IDAT", raw) + png_chunk(b"IEND", b""))


def webp_size(data):
    """(width, height) of a WebP file, from its first chunk."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP", data[:16]
    kind = data[12:16]
    if kind == b"VP8X":
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    if kind == b"VP8 ":
        assert data[23:26] == b"\x9d\x01\x2a", data[20:30]
        return (struct.unpack("<H", data[26:28])[0] & 0x3fff,
                struct.unpack("<H", data[28:30])[0] & 0x3fff)
    assert kind == b"VP8L" and data[20] == 0x2f, data[12:24]
    bits = int.from_bytes(data[21:25], "little")
    return (bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1


def webp_chunks(data):
    """The RIFF chunk names of a WebP file."""
    out, i = [], 12
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4:i + 8], "little")
        out.append(data[i:i + 4])
        i += 8 + size + (size & 1)
    return out


def upload(pid, data, content_type="image/png", **kw):
    return stack().request("POST", f"/admin/paints/{pid}/image", body=data,
                           headers={"Content-Type": content_type, **kw.pop("headers", {})}, **kw)


def image_hash(paint):
    url = paint["image_url"]
    assert url.startswith("/images/") and url.endswith(".webp"), url
    return url[len("/images/"):-len(".webp")]


def stored(h):
    """The images row of hash h as (width, height, thumb w, thumb h, source type), or None."""
    out = stack().psql("SELECT width || ',' || height || ',' || thumb_width || ',' || "
                       "thumb_height || ',' || source_type FROM images WHERE hash = '%s'" % h)
    if not out:
        return None
    w, hh, tw, th, t = out.split(",")
    return int(w), int(hh), int(tw), int(th), t


def image_count():
    return int(stack().psql("SELECT count(*) FROM images"))


def paint_row(pid):
    return stack().psql(f"SELECT version || ' ' || coalesce(image_url, '') FROM paints WHERE id = {pid}")


class Upload(unittest.TestCase):
    def test_png_is_stored_as_webp_and_served_to_anyone_with_long_caching(self):
        p = new_paint()
        data = mkimage("png", 1600, 900)
        r = upload(p["id"], data)
        self.assertEqual(r.status, 200, r)
        got = r.json()
        self.assertEqual(got["version"], p["version"] + 1)
        self.assertEqual(r.headers["etag"], '"v%d"' % got["version"])
        h = image_hash(got)
        self.assertRegex(h, "^[0-9a-f]{64}$")
        # Stored: the full size at most 1200 on its longest side, the
        # thumbnail 160, the aspect kept; what was uploaded, by content.
        self.assertEqual(stored(h), (1200, 675, 160, 90, "image/png"))
        # Served without a session, byte for byte what its name says.
        full = stack().request("GET", IMAGE_URL % h, auth=False)
        self.assertEqual(full.status, 200, full)
        self.assertEqual(full.headers["content-type"], "image/webp")
        self.assertEqual(hashlib.sha256(full.body).hexdigest(), h)
        self.assertEqual(webp_size(full.body), (1200, 675))
        self.assertIn("immutable", full.headers["cache-control"])
        self.assertIn("max-age=31536000", full.headers["cache-control"])
        self.assertIn("public", full.headers["cache-control"])
        self.assertNotIn("x-accel-expires", full.headers)
        self.assertEqual(full.headers["x-content-type-options"], "nosniff")
        thumb = stack().request("GET", "/images/%s.thumb.webp" % h, auth=False)
        self.assertEqual(thumb.status, 200, thumb)
        self.assertEqual(webp_size(thumb.body), (160, 90))
        # The paint as read back, and the list, show it.
        self.assertEqual(stack().get(f"/admin/paints/{p['id']}").json()["image_url"],
                         IMAGE_URL % h)

    def test_nginx_keeps_a_served_image(self):
        p = new_paint()
        h = image_hash(upload(p["id"], mkimage("png", 301, 203)).json())
        first = stack().request("GET", IMAGE_URL % h, auth=False)
        self.assertEqual(first.status, 200, first)
        self.assertIn(first.headers["x-cache-status"], ("MISS", "EXPIRED"))
        again = stack().request("GET", IMAGE_URL % h, auth=False)
        self.assertEqual(again.headers["x-cache-status"], "HIT")
        self.assertEqual(again.body, first.body)
        # A browser that has it asks again with its ETag: 304, no body.
        cond = stack().request("GET", "/images/%s.thumb.webp" % h, auth=False,
                               headers={"If-None-Match": first.headers["etag"]})
        self.assertEqual(cond.status, 304, cond)
        self.assertEqual(cond.body, b"")

    def test_a_small_image_is_not_enlarged_and_a_jpeg_is_turned_as_its_exif_says(self):
        p = new_paint()
        r = upload(p["id"], mkimage("jpeg", 300, 120, "--exif-orientation", "6"),
                   content_type="image/jpeg")
        self.assertEqual(r.status, 200, r)
        # Orientation 6: shown turned a quarter, so 120 wide and 300 high.
        self.assertEqual(stored(image_hash(r.json())), (120, 300, 64, 160, "image/jpeg"))

    def test_a_large_jpeg_and_a_webp_with_alpha(self):
        p = new_paint()
        r = upload(p["id"], mkimage("jpeg", 4000, 3000), content_type="image/jpeg")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(stored(image_hash(r.json())), (1200, 900, 160, 120, "image/jpeg"))
        r = upload(p["id"], mkimage("webp", 500, 500, "--alpha"), content_type="image/webp")
        self.assertEqual(r.status, 200, r)
        h = image_hash(r.json())
        self.assertEqual(stored(h), (500, 500, 160, 160, "image/webp"))
        body = stack().request("GET", IMAGE_URL % h, auth=False).body
        self.assertIn(b"ALPH", webp_chunks(body))

    def test_metadata_is_stripped(self):
        secret = "SECRET-GPS-51.5007-0.1246"
        p = new_paint()
        for kind in ("jpeg", "png"):
            data = mkimage(kind, 640, 480, "--comment", secret)
            self.assertIn(secret.encode(), data)
            r = upload(p["id"], data, content_type="image/" + kind)
            self.assertEqual(r.status, 200, r)
            h = image_hash(r.json())
            for suffix in (".webp", ".thumb.webp"):
                body = stack().request("GET", "/images/" + h + suffix, auth=False).body
                self.assertNotIn(secret.encode(), body)
                for chunk in (b"EXIF", b"XMP ", b"ICCP"):
                    self.assertNotIn(chunk, webp_chunks(body), kind)

    def test_the_same_upload_is_stored_once_and_an_upload_is_audited(self):
        a, b = new_paint(), new_paint()
        data = mkimage("png", 333, 222)
        before = image_count()
        ha = image_hash(upload(a["id"], data).json())
        hb = image_hash(upload(b["id"], data).json())
        self.assertEqual(ha, hb)
        self.assertLessEqual(image_count(), before + 1)
        entry = stack().psql(
            "SELECT action || ' ' || (changes->'image_url'->>'new') || ' ' || "
            "(changes ? 'image_hash')::text FROM audit_log WHERE entity = 'paint' "
            f"AND entity_id = {a['id']} ORDER BY id DESC LIMIT 1")
        self.assertEqual(entry, f"image {IMAGE_URL % ha} false")


class Largest(unittest.TestCase):
    def test_the_largest_images_allowed_are_stored_and_memory_goes_back(self):
        """6000 x 4000 (24 million pixels, the limit), as PNG and as JPEG,
        three times each: stored at 1200 x 800. The service's resident
        memory is printed: the PNG's 96 MB of pixels live only while it is
        decoded (a sanitizer build keeps freed memory in quarantine)."""
        p = new_paint()
        rss0 = service_rss_kb()
        for kind in ("png", "jpeg"):
            data = mkimage(kind, 6000, 4000)
            took = []
            for _ in range(3):
                t0 = time.monotonic()
                r = upload(p["id"], data, content_type="image/" + kind)
                took.append(time.monotonic() - t0)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(stored(image_hash(r.json()))[:4], (1200, 800, 160, 107))
            print(f"\n6000 x 4000 {kind} ({len(data) / 1e6:.1f} MB): upload "
                  f"{min(took):.2f}-{max(took):.2f} s", flush=True)
        print(f"service RSS kB before {rss0}, after {service_rss_kb()}", flush=True)


class Remove(unittest.TestCase):
    def test_delete_clears_the_image_and_removes_one_no_paint_shows(self):
        p = new_paint()
        h = image_hash(upload(p["id"], mkimage("png", 411, 207)).json())
        r = stack().request("DELETE", f"/admin/paints/{p['id']}/image")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["image_url"], "")
        self.assertIsNone(stored(h))
        # Never asked for through nginx, so not in its cache: gone.
        self.assertEqual(stack().request("GET", IMAGE_URL % h, auth=False).status, 404)
        # Again: nothing to remove, still 200.
        self.assertEqual(stack().request("DELETE", f"/admin/paints/{p['id']}/image").status, 200)

    def test_an_image_another_paint_shows_stays(self):
        a, b = new_paint(), new_paint()
        data = mkimage("png", 412, 208)
        h = image_hash(upload(a["id"], data).json())
        upload(b["id"], data)
        self.assertEqual(stack().request("DELETE", f"/admin/paints/{a['id']}/image").status, 200)
        self.assertIsNotNone(stored(h))
        self.assertEqual(stack().request("GET", IMAGE_URL % h, auth=False).status, 200)

    def test_a_replaced_image_is_removed(self):
        p = new_paint()
        old = image_hash(upload(p["id"], mkimage("png", 413, 209)).json())
        new = image_hash(upload(p["id"], mkimage("png", 414, 210)).json())
        self.assertNotEqual(old, new)
        self.assertIsNone(stored(old))
        self.assertIsNotNone(stored(new))

    def test_concurrent_uploads_to_one_paint_leave_exactly_the_last(self):
        p = new_paint()
        images = [mkimage("png", 300 + i, 200) for i in range(12)]
        hashes, statuses = set(), []

        def send(data):
            r = upload(p["id"], data)
            statuses.append(r.status)
            if r.status == 200:
                hashes.add(image_hash(r.json()))
        threads = [threading.Thread(target=send, args=(d,)) for d in images]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(all(s in (200, 503) for s in statuses), statuses)
        self.assertGreaterEqual(statuses.count(200), 1, statuses)
        final = image_hash(stack().get(f"/admin/paints/{p['id']}").json())
        self.assertIn(final, hashes)
        kept = [h for h in hashes if stored(h)]
        self.assertEqual(kept, [final])


class Refs(unittest.TestCase):
    def test_a_paint_may_name_a_stored_image_but_not_one_that_is_not(self):
        a, b = new_paint(), new_paint()
        h = image_hash(upload(a["id"], mkimage("png", 415, 211)).json())
        r = stack().request("PATCH", f"/admin/paints/{b['id']}",
                            body={"image_url": IMAGE_URL % h},
                            headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(r.status, 200, r)
        missing = IMAGE_URL % ("0" * 64)
        r = stack().request("PATCH", f"/admin/paints/{b['id']}", body={"image_url": missing},
                            headers={"Content-Type": "application/merge-patch+json"})
        assert_problem(self, r, 422)
        self.assertEqual(stack().get(f"/admin/paints/{b['id']}").json()["image_url"], IMAGE_URL % h)
        # A path that is not a stored image's address is refused as before.
        r = stack().request("PATCH", f"/admin/paints/{b['id']}", body={"image_url": "/etc/passwd"},
                            headers={"Content-Type": "application/merge-patch+json"})
        body = assert_problem(self, r, 422)
        self.assertIn("image_url", body["errors"])

    def test_a_paint_with_an_image_exports_and_imports_unchanged(self):
        tag = "ImgRound" + uuid.uuid4().hex[:8]
        p = new_paint(name=tag)
        upload(p["id"], mkimage("png", 416, 212))
        csv = stack().get("/admin/paints/export.csv?q=" + tag)
        self.assertEqual(csv.status, 200, csv)
        self.assertIn(b"/images/", csv.body)
        r = stack().request("POST", "/admin/paints/import?dry_run=1", body=csv.body,
                            headers={"Content-Type": "text/csv"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["unchanged"], r.json()["update"]), (1, 0), r.json())


class Hostile(unittest.TestCase):
    def refused(self, pid, data, status, content_type="image/png"):
        before, count = paint_row(pid), image_count()
        t0 = time.monotonic()
        r = upload(pid, data, content_type=content_type)
        body = assert_problem(self, r, status)
        self.assertEqual(paint_row(pid), before)
        self.assertEqual(image_count(), count)
        self.assertEqual(stack().get("/healthz").status, 200)
        return body, time.monotonic() - t0

    def test_the_content_decides_the_type_not_the_header(self):
        p = new_paint()
        r = upload(p["id"], mkimage("png", 417, 213), content_type="image/jpeg")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(stored(image_hash(r.json()))[4], "image/png")
        r = upload(p["id"], mkimage("jpeg", 418, 214), content_type="application/octet-stream")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(stored(image_hash(r.json()))[4], "image/jpeg")
        html = b"<html><script>alert(1)</script></html>"
        svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
        gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04" + b"\0" * 20
        for data in (html, svg, gif, b"", b"\x89PNG"):
            body, _ = self.refused(p["id"], data, 415)
            self.assertIn("PNG, JPEG or WebP", body["detail"])
        # A body that says it is not an image at all.
        self.refused(p["id"], mkimage("png", 10, 10), 415, content_type="application/json")
        self.refused(p["id"], mkimage("png", 10, 10), 415, content_type="multipart/form-data")

    def test_decompression_bombs_are_refused_before_decoding(self):
        p = new_paint()
        # Its header says 100000 x 100000 (40 GB of pixels); 30 bytes of data.
        body, _ = self.refused(p["id"], png_gray(100000, 100000, rows=1), 413)
        self.assertIn("100000", body["detail"])
        # A real one: 9000 x 9000 of zeros, 81 MB of pixels in 80 KB.
        bomb = png_gray(9000, 9000)
        self.assertLess(len(bomb), 200000)
        self.refused(p["id"], bomb, 413)
        # Within 8192 on a side, but 32 million pixels.
        self.refused(p["id"], png_gray(8000, 4000), 413)
        # A JPEG whose frame says 60000 x 60000.
        jpeg = bytearray(mkimage("jpeg", 64, 64))
        sof = jpeg.index(b"\xff\xc0")
        jpeg[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
        self.refused(p["id"], bytes(jpeg), 413, content_type="image/jpeg")

    def test_truncated_and_corrupt_files_are_refused(self):
        p = new_paint()
        for kind in ("png", "jpeg", "webp"):
            data = mkimage(kind, 640, 480)
            for cut in (0.5, 0.9):
                self.refused(p["id"], data[:int(len(data) * cut)], 422,
                             content_type="image/" + kind)
        # Bytes flipped in the middle: refused, or stored as something
        # that decodes; never a crash, never a 500.
        data = bytearray(mkimage("png", 320, 240))
        for at in range(len(data) // 3, len(data) - 20, max(1, len(data) // 15)):
            bad = bytearray(data)
            bad[at] ^= 0xff
            r = upload(p["id"], bytes(bad))
            self.assertIn(r.status, (200, 422), r)
        self.assertEqual(stack().get("/healthz").status, 200)

    def test_a_body_over_10_mib_is_refused(self):
        p = new_paint()
        r = upload(p["id"], b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024 + 1))
        self.assertEqual(r.status, 413, r)
        self.assertEqual(stack().get("/healthz").status, 200)

    def test_no_session_no_paint_or_a_stale_version_writes_nothing(self):
        p = new_paint()
        data = mkimage("png", 419, 215)
        count = image_count()
        r = stack().request("POST", f"/admin/paints/{p['id']}/image", body=data, auth=False,
                            headers={"Content-Type": "image/png"})
        self.assertEqual(r.status, 401, r)
        assert_problem(self, upload(99999999999, data), 404)
        assert_problem(self, upload(p["id"], data, headers={"If-Match": '"v999"'}), 412)
        self.assertEqual(image_count(), count)
        self.assertEqual(paint_row(p["id"]).strip(), str(p["version"]))

    def test_addresses_that_are_not_an_image_are_404(self):
        for path in ("/images/" + "0" * 64 + ".webp", "/images/" + "0" * 64 + ".thumb.webp"):
            self.assertEqual(stack().request("GET", path, auth=False).status, 404, path)
        for path in ("/images/" + "A" * 64 + ".webp", "/images/x.webp", "/images/",
                     "/images/" + "0" * 64 + ".png"):
            self.assertEqual(stack().request("GET", path, auth=False).status, 404, path)


if __name__ == "__main__":
    unittest.main()
