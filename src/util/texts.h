/* Text files compiled into the binary at build time (cmake/embed_text.cmake): the Lua
 * scripts of the Redis store (src/backend/lua/) and the schema migrations of PostgreSQL
 * (deploy/postgres/) and MySQL (deploy/mysql/). Static, read-only data; nothing is
 * freed. */
#ifndef SK_UTIL_TEXTS_H
#define SK_UTIL_TEXTS_H

#include <stddef.h>

typedef struct {
    const char *name; /* "lua/buy.lua", "postgres/001_init.sql" */
    const char *text; /* NUL-terminated */
    size_t len;
} sk_text_t;

/** Every embedded text, folder by folder and in name order within a folder (the order
 *  migrations are applied in), terminated by an entry whose name is NULL. */
extern const sk_text_t sk_texts[];

/** Looks a text up by name; NULL when there is none. */
const sk_text_t *sk_text_find(const char *name);

#endif
