/* Static files of web/, compiled into the binary at build time by tools/embed.c
 * (the generated table lives in the build tree as gen/assets.c).
 *
 * Ownership: everything is static, read-only data; nothing is freed. */
#ifndef SK_API_ASSETS_H
#define SK_API_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *path; /* URL path, e.g. "/app.js"; index.html is also served as "/" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const unsigned char *gz; /* gzip-compressed copy, NULL when it would not be smaller */
    size_t gz_len;
    const char *etag; /* quoted strong ETag of the content */
} sk_asset_t;

/** Looks up an asset by URL path. Returns NULL when there is none. */
const sk_asset_t *sk_assets_find(const char *path, size_t len);

/** All assets, terminated by an entry whose path is NULL. */
extern const sk_asset_t sk_assets[];

#endif
