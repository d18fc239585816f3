"""The web files embedded in the binary: paths, content types, ETag and 304, gzip."""
import gzip

import sklib


def test_static(ck):
    with sklib.Server() as srv:
        st, h, page = srv.request("GET", "/")
        ck.eq(st, 200, "GET /")
        ck.eq(h.get("content-type"), "text/html; charset=utf-8", "the page is HTML")
        ck.check(b"<html" in page.lower(), "the page is the buyer's page")
        etag = h.get("etag", "")
        ck.check(etag.startswith('"') and etag.endswith('"') and len(etag) > 2, f"strong ETag: {etag!r}")
        ck.eq(h.get("cache-control"), "no-cache", "revalidated on every load")
        for path in ("/sale/anything", "/index.html"):
            st, h2, body = srv.request("GET", path)
            ck.eq((st, body, h2.get("etag")), (200, page, etag), f"{path} is the buyer's page")
        st, h, admin = srv.request("GET", "/admin")
        ck.eq(st, 200, "GET /admin")
        ck.check(admin != page and b"<html" in admin.lower(), "the dashboard is its own page")
        st, h, js = srv.request("GET", "/app.js")
        ck.eq((st, h.get("content-type")), (200, "text/javascript; charset=utf-8"), "app.js")
        st, h, _ = srv.request("GET", "/style.css")
        ck.eq((st, h.get("content-type")), (200, "text/css; charset=utf-8"), "style.css")

        st, h, body = srv.request("GET", "/", headers={"If-None-Match": etag})
        ck.eq((st, body), (304, b""), "If-None-Match with the current ETag: 304, no body")
        ck.eq(h.get("etag"), etag, "the 304 repeats the ETag")
        st, _, _ = srv.request("GET", "/", headers={"If-None-Match": '"stale"'})
        ck.eq(st, 200, "a stale ETag gets the page")

        st, h, z = srv.request("GET", "/app.js", headers={"Accept-Encoding": "gzip, deflate"})
        ck.eq(h.get("content-encoding"), "gzip", "gzip when the client accepts it")
        ck.check("accept-encoding" in h.get("vary", "").lower(), "Vary: Accept-Encoding")
        ck.eq(gzip.decompress(z), js, "the gzip copy is the same file")
        ck.check(len(z) < len(js), f"and smaller ({len(z)} < {len(js)})")

        st, h, body = srv.request("HEAD", "/")
        ck.eq((st, body, int(h.get("content-length", -1))), (200, b"", len(page)), "HEAD: length, no body")
        st, _, body = srv.request("GET", "/no-such-file.css")
        ck.eq(st, 404, "an unknown file is 404")
        ck.check(b'"not_found"' in body, "with a JSON error")
        st, _, _ = srv.request("POST", "/app.js", body="x")
        ck.eq(st, 404, "a POST to a file path is 404 (files answer GET and HEAD only)")


if __name__ == "__main__":
    sklib.run_tests([test_static])
