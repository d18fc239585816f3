/* Redis Cluster routing (cluster.h): slots, the map of primaries, redirections, and
 * synchronous routed commands. */
#include "redis/cluster.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/common.h"

uint16_t sk_rcluster_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned sk_rcluster_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return sk_rcluster_crc16(open + 1, (size_t)(close - open - 1)) & (SK_RCLUSTER_SLOTS - 1);
    }
    return sk_rcluster_crc16(key, len) & (SK_RCLUSTER_SLOTS - 1);
}

unsigned sk_rcluster_sale_slot(const char *sale, size_t len)
{
    /* Sale ids hold no braces (sk_valid_sale_id), so the tag is the id itself. */
    return sk_rcluster_crc16(sale, len) & (SK_RCLUSTER_SLOTS - 1);
}

/* ---- the URL ------------------------------------------------------------------------------ */

static void url_error(const char *url, char *err, size_t err_size)
{
    char shown[512];
    sk_redis_redact(url, shown, sizeof(shown));
    snprintf(err, err_size,
             "the store URL must look like redis://[[USER]:PASSWORD@]HOST[:PORT][,HOST:PORT...][/DB] (got '%s')",
             shown);
}

sk_rcluster_t *sk_rcluster_new(const char *url, char *err, size_t err_size)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        url_error(url, err, err_size);
        return NULL;
    }
    const char *p = url + sizeof(scheme) - 1;
    const char *at = strchr(p, '@');
    const char *hosts = at ? at + 1 : p;
    /* The host list ends at the database ("/"); brackets of IPv6 hosts hold no '/'. */
    const char *slash = strchr(hosts, '/');
    const char *end = slash ? slash : hosts + strlen(hosts);
    sk_rcluster_t *c = sk_xcalloc(1, sizeof(*c));
    memset(c->owner, 0xff, sizeof(c->owner));
    const char *h = hosts;
    for (;;) {
        const char *comma = memchr(h, ',', (size_t)(end - h));
        const char *he = comma ? comma : end;
        char one[1024];
        int n = snprintf(one, sizeof(one), "%s%.*s%.*s%s", scheme, at ? (int)(at + 1 - p) : 0, p, (int)(he - h), h,
                         slash ? slash : "");
        sk_redis_addr_t a;
        if (he == h || n < 0 || (size_t)n >= sizeof(one) || c->n_seeds == SK_RCLUSTER_NODES_MAX ||
            sk_redis_parse_url(one, &a, err, err_size) < 0) {
            memset(one, 0, sizeof(one));
            url_error(url, err, err_size);
            sk_rcluster_free(c);
            return NULL;
        }
        memset(one, 0, sizeof(one));
        if (c->n_seeds == 0)
            c->addr = a;
        snprintf(c->seeds[c->n_seeds].host, sizeof(c->seeds[0].host), "%s", a.host);
        c->seeds[c->n_seeds].port = a.port;
        c->n_seeds++;
        memset(a.password, 0, sizeof(a.password));
        if (!comma)
            break;
        h = comma + 1;
    }
    return c;
}

void sk_rcluster_free(sk_rcluster_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < SK_RCLUSTER_NODES_MAX; i++)
        if (c->sync[i])
            redisFree(c->sync[i]);
    memset(c->addr.password, 0, sizeof(c->addr.password));
    free(c);
}

const char *sk_rcluster_name(const sk_rcluster_t *c, int node, char *buf, size_t cap)
{
    if (node < 0 || (size_t)node >= c->n_nodes)
        snprintf(buf, cap, "?");
    else if (strchr(c->nodes[node].host, ':'))
        snprintf(buf, cap, "[%s]:%d", c->nodes[node].host, c->nodes[node].port);
    else
        snprintf(buf, cap, "%s:%d", c->nodes[node].host, c->nodes[node].port);
    return buf;
}

/* ---- the map ------------------------------------------------------------------------------ */

int sk_rcluster_node(sk_rcluster_t *c, const char *host, int port)
{
    for (size_t i = 0; i < c->n_nodes; i++)
        if (c->nodes[i].port == port && strcmp(c->nodes[i].host, host) == 0)
            return (int)i;
    if (c->n_nodes == SK_RCLUSTER_NODES_MAX || strlen(host) >= sizeof(c->nodes[0].host))
        return -ENOSPC;
    snprintf(c->nodes[c->n_nodes].host, sizeof(c->nodes[0].host), "%s", host);
    c->nodes[c->n_nodes].port = port;
    return (int)c->n_nodes++;
}

void sk_rcluster_set_single(sk_rcluster_t *c)
{
    c->enabled = false;
    int n = sk_rcluster_node(c, c->seeds[0].host, c->seeds[0].port);
    for (size_t s = 0; s < SK_RCLUSTER_SLOTS; s++)
        c->owner[s] = (uint16_t)n;
    c->version++;
}

int sk_rcluster_apply_slots(sk_rcluster_t *c, const redisReply *r, const char *asked_host)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -EINVAL;
    /* Checked whole before anything changes: a reply that does not parse leaves the
     * map as it was. Nodes are added as met; an unused one costs nothing. */
    uint16_t *owner = sk_xmalloc(sizeof(c->owner));
    memset(owner, 0xff, sizeof(c->owner));
    int rc = 0;
    for (size_t i = 0; i < r->elements && rc == 0; i++) {
        const redisReply *range = r->element[i];
        rc = -EINVAL;
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 || range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER || range->element[2]->type != REDIS_REPLY_ARRAY)
            break;
        long long lo = range->element[0]->integer, hi = range->element[1]->integer;
        const redisReply *primary = range->element[2];
        if (lo < 0 || hi < lo || hi >= SK_RCLUSTER_SLOTS || primary->elements < 2 ||
            primary->element[0]->type != REDIS_REPLY_STRING || primary->element[1]->type != REDIS_REPLY_INTEGER ||
            primary->element[1]->integer < 1 || primary->element[1]->integer > 65535)
            break;
        /* "" or "?": Redis knows no address for the node; it is the one asked. */
        const char *host = primary->element[0]->str;
        if (host[0] == '\0' || strcmp(host, "?") == 0)
            host = asked_host;
        int n = sk_rcluster_node(c, host, (int)primary->element[1]->integer);
        if (n < 0)
            break;
        for (long long s = lo; s <= hi; s++)
            owner[s] = (uint16_t)n;
        rc = 0;
    }
    if (rc == 0) {
        if (memcmp(owner, c->owner, sizeof(c->owner)) != 0 || !c->enabled)
            c->version++;
        memcpy(c->owner, owner, sizeof(c->owner));
        c->enabled = true;
    }
    free(owner);
    return rc;
}

bool sk_rcluster_disabled_error(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "cluster support disabled") != NULL;
}

sk_rcluster_redirect_t sk_rcluster_redirect(const redisReply *r, unsigned *slot, sk_rcluster_node_t *to)
{
    if (!r || r->type != REDIS_REPLY_ERROR)
        return SK_RCLUSTER_REPLY;
    if (strncmp(r->str, "TRYAGAIN", 8) == 0)
        return SK_RCLUSTER_TRYAGAIN;
    if (strncmp(r->str, "CLUSTERDOWN", 11) == 0)
        return SK_RCLUSTER_DOWN;
    sk_rcluster_redirect_t kind;
    const char *p;
    if (strncmp(r->str, "MOVED ", 6) == 0) {
        kind = SK_RCLUSTER_MOVED;
        p = r->str + 6;
    } else if (strncmp(r->str, "ASK ", 4) == 0) {
        kind = SK_RCLUSTER_ASK;
        p = r->str + 4;
    } else {
        return SK_RCLUSTER_REPLY;
    }
    /* "<slot> <host>:<port>"; the port follows the last colon (IPv6 hosts hold colons). */
    const char *sp = strchr(p, ' ');
    if (!sp)
        return SK_RCLUSTER_REPLY;
    int64_t s, port;
    const char *addr = sp + 1;
    const char *colon = strrchr(addr, ':');
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    if (sk_parse_i64(p, (size_t)(sp - p), 0, SK_RCLUSTER_SLOTS - 1, &s) < 0 || !colon ||
        sk_parse_i64(colon + 1, strlen(colon + 1), 1, 65535, &port) < 0 || hl >= sizeof(to->host))
        return SK_RCLUSTER_REPLY;
    /* A bracketed IPv6 host loses its brackets, as in the URL. */
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
        addr++;
        hl -= 2;
    }
    memcpy(to->host, addr, hl);
    to->host[hl] = '\0';
    to->port = (int)port;
    *slot = (unsigned)s;
    return kind;
}

/* ---- synchronous connections ---------------------------------------------------------------- */

redisContext *sk_rcluster_sync(sk_rcluster_t *c, int node, int timeout_ms, char *err, size_t err_size)
{
    if (node < 0 || (size_t)node >= c->n_nodes) {
        snprintf(err, err_size, "redis: no node serves this slot");
        return NULL;
    }
    if (c->sync[node])
        return c->sync[node];
    sk_redis_addr_t a = c->addr;
    snprintf(a.host, sizeof(a.host), "%s", c->nodes[node].host);
    a.port = c->nodes[node].port;
    c->sync[node] = sk_redis_connect(&a, timeout_ms, err, err_size);
    memset(a.password, 0, sizeof(a.password));
    return c->sync[node];
}

void sk_rcluster_sync_drop(sk_rcluster_t *c, int node)
{
    if (node >= 0 && (size_t)node < SK_RCLUSTER_NODES_MAX && c->sync[node]) {
        redisFree(c->sync[node]);
        c->sync[node] = NULL;
    }
}

/* Sends a formatted command and waits for its reply; drops the connection on I/O errors. */
static redisReply *roundtrip(sk_rcluster_t *c, int node, const char *cmd, size_t len, bool asking, int timeout_ms,
                             char *err, size_t err_size)
{
    redisContext *ctx = sk_rcluster_sync(c, node, timeout_ms, err, err_size);
    if (!ctx)
        return NULL;
    if (asking)
        redisAppendCommand(ctx, "ASKING");
    redisAppendFormattedCommand(ctx, cmd, len);
    redisReply *r = NULL;
    if (asking) {
        if (redisGetReply(ctx, (void **)&r) != REDIS_OK)
            goto io_error;
        freeReplyObject(r);
        r = NULL;
    }
    if (redisGetReply(ctx, (void **)&r) != REDIS_OK)
        goto io_error;
    return r;
io_error:;
    char name[300];
    snprintf(err, err_size, "redis at %s: %s", sk_rcluster_name(c, node, name, sizeof(name)),
             ctx->errstr[0] ? ctx->errstr : "I/O error");
    sk_rcluster_sync_drop(c, node);
    return NULL;
}

int sk_rcluster_discover(sk_rcluster_t *c, int timeout_ms, char *err, size_t err_size)
{
    /* The primaries of the map first, then the other known nodes (a seed may be long
     * gone after failovers), then the seeds. A replica that is stopped (SIGSTOP, a
     * machine that hangs) still accepts connections and answers nothing: asked first,
     * it would cost every read of the map the whole timeout. */
    size_t n_known = c->n_nodes;
    bool serves[SK_RCLUSTER_NODES_MAX] = {false};
    for (size_t s = 0; s < SK_RCLUSTER_SLOTS; s++)
        if (c->owner[s] < SK_RCLUSTER_NODES_MAX)
            serves[c->owner[s]] = true;
    for (size_t i = 0; i < 2 * n_known + c->n_seeds; i++) {
        if (i < 2 * n_known && serves[i % n_known] != (i < n_known))
            continue; /* first pass: the primaries; second: the others */
        const sk_rcluster_node_t *nd = i < 2 * n_known ? &c->nodes[i % n_known] : &c->seeds[i - 2 * n_known];
        int node = sk_rcluster_node(c, nd->host, nd->port);
        if (node < 0)
            continue;
        redisContext *ctx = sk_rcluster_sync(c, node, timeout_ms, err, err_size);
        if (!ctx)
            continue;
        redisReply *r = redisCommand(ctx, "CLUSTER SLOTS");
        if (!r) {
            char name[300];
            snprintf(err, err_size, "redis at %s: %s", sk_rcluster_name(c, node, name, sizeof(name)),
                     ctx->errstr[0] ? ctx->errstr : "I/O error");
            sk_rcluster_sync_drop(c, node);
            continue;
        }
        int rc;
        if (sk_rcluster_disabled_error(r) && !c->enabled) {
            if (c->n_seeds > 1) {
                snprintf(err, err_size,
                         "redis at %s:%d is not a Redis Cluster; give a single Redis as one redis://HOST:PORT",
                         nd->host, nd->port);
                rc = -EINVAL;
            } else {
                sk_rcluster_set_single(c);
                rc = 0;
            }
        } else if (sk_rcluster_apply_slots(c, r, c->nodes[node].host) == 0) {
            rc = 0;
            if (c->addr.db != 0) {
                snprintf(err, err_size, "a Redis Cluster has database 0 only (the store URL names database %d)",
                         c->addr.db);
                rc = -EINVAL;
            }
        } else {
            snprintf(err, err_size, "redis at %s:%d: CLUSTER SLOTS failed: %s", nd->host, nd->port,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            rc = -EIO;
        }
        freeReplyObject(r);
        if (rc != -EIO)
            return rc;
    }
    return -EIO;
}

/* Runs a formatted command on the owner of `slot`, following redirections. */
static redisReply *routed(sk_rcluster_t *c, unsigned slot, const char *cmd, size_t len, int timeout_ms, char *err,
                          size_t err_size)
{
    int node = sk_rcluster_owner(c, slot);
    bool asking = false;
    redisReply *r = NULL;
    for (int hop = 0; hop <= SK_RCLUSTER_HOPS; hop++) {
        if (node < 0) {
            /* Nobody known serves the slot: read the map again once. */
            if (hop > 0 || sk_rcluster_discover(c, timeout_ms, err, err_size) < 0 ||
                (node = sk_rcluster_owner(c, slot)) < 0) {
                snprintf(err, err_size, "redis: no node serves slot %u", slot);
                return NULL;
            }
        }
        r = roundtrip(c, node, cmd, len, asking, timeout_ms, err, err_size);
        asking = false;
        if (!r) {
            /* The node is gone (a failover?): read the map again for the next call. */
            char e2[8];
            if (c->enabled)
                sk_rcluster_discover(c, timeout_ms, e2, sizeof(e2));
            return NULL;
        }
        unsigned s;
        sk_rcluster_node_t to;
        sk_rcluster_redirect_t kind = sk_rcluster_redirect(r, &s, &to);
        if (kind != SK_RCLUSTER_MOVED && kind != SK_RCLUSTER_ASK)
            return r;
        int target = sk_rcluster_node(c, to.host[0] ? to.host : c->nodes[node].host, to.port);
        if (hop == SK_RCLUSTER_HOPS || target < 0)
            return r; /* the redirection itself is the answer */
        freeReplyObject(r);
        r = NULL;
        if (kind == SK_RCLUSTER_MOVED) {
            c->owner[s] = (uint16_t)target;
            c->version++;
            /* One slot moved usually means more did: read the whole map. */
            char e2[8];
            sk_rcluster_discover(c, timeout_ms, e2, sizeof(e2));
            node = sk_rcluster_owner(c, slot) >= 0 ? sk_rcluster_owner(c, slot) : target;
        } else {
            node = target;
            asking = true;
        }
    }
    return r;
}

redisReply *sk_rcluster_command_argv(sk_rcluster_t *c, unsigned slot, int timeout_ms, char *err, size_t err_size,
                                     int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0) {
        snprintf(err, err_size, "redis: out of memory");
        return NULL;
    }
    redisReply *r = routed(c, slot, cmd, (size_t)len, timeout_ms, err, err_size);
    free(cmd);
    return r;
}

redisReply *sk_rcluster_vcommand(sk_rcluster_t *c, unsigned slot, int timeout_ms, char *err, size_t err_size,
                                 const char *fmt, va_list ap)
{
    /* Formatted once, so that a redirection resends the same bytes. */
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0) {
        snprintf(err, err_size, "redis: bad command format");
        return NULL;
    }
    redisReply *r = routed(c, slot, cmd, (size_t)len, timeout_ms, err, err_size);
    free(cmd);
    return r;
}

redisReply *sk_rcluster_command(sk_rcluster_t *c, unsigned slot, int timeout_ms, char *err, size_t err_size,
                                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = sk_rcluster_vcommand(c, slot, timeout_ms, err, err_size, fmt, ap);
    va_end(ap);
    return r;
}
