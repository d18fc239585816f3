/* Redis Cluster routing, small and in one place (Debian's hiredis 0.14 has no cluster
 * client), shared by the Redis backend (asynchronous, one connection per primary in
 * the ledger thread's loop) and the drain (synchronous):
 *
 *  - slots: CRC16 (XMODEM) of a key's hash tag, modulo 16384, as Redis computes it. A
 *    sale's keys carry the tag {sale}, so they share one slot;
 *  - the map: which primary serves each slot, read from CLUSTER SLOTS. A node keeps its
 *    index for the life of the map (one that stops being a primary merely owns no slot
 *    any more), so callers keep per-node state in arrays indexed by it;
 *  - redirections: MOVED, ASK, TRYAGAIN and CLUSTERDOWN read from an error reply;
 *  - a single Redis without cluster support is a map of one node owning every slot,
 *    so callers have one code path for both (and the single one works as before);
 *  - synchronous connections per node with routed commands that follow MOVED and ASK,
 *    for start-up and the drain.
 *
 * The store URL lists seeds: redis://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...][/DB].
 * The first seed that answers tells which kind of Redis it is; credentials apply to
 * every node; a cluster has database 0 only.
 *
 * Ownership: the caller owns an sk_rcluster_t (sk_rcluster_new / sk_rcluster_free) and
 * the replies it gets. Threads: one thread at a time per sk_rcluster_t. */
#ifndef SK_REDIS_CLUSTER_H
#define SK_REDIS_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis/redis.h"

#define SK_RCLUSTER_SLOTS 16384
#define SK_RCLUSTER_NODES_MAX 64 /* nodes ever seen by one map (primaries, promoted replicas, seeds) */
#define SK_RCLUSTER_NONE 0xffff /* a slot nobody serves (yet) */
#define SK_RCLUSTER_HOPS 5 /* redirections followed for one command */

typedef struct {
    char host[256];
    int port;
} sk_rcluster_node_t;

typedef struct {
    bool enabled; /* a Redis Cluster; false: one Redis, node 0 owns every slot */
    sk_redis_addr_t addr; /* credentials and database (host and port: the first seed) */
    sk_rcluster_node_t seeds[SK_RCLUSTER_NODES_MAX];
    size_t n_seeds;
    sk_rcluster_node_t nodes[SK_RCLUSTER_NODES_MAX];
    size_t n_nodes;
    uint16_t owner[SK_RCLUSTER_SLOTS]; /* node index, or SK_RCLUSTER_NONE */
    uint64_t version; /* grows with every change of the map */
    redisContext *sync[SK_RCLUSTER_NODES_MAX]; /* synchronous connections (sk_rcluster_sync) */
} sk_rcluster_t;

/** CRC16/XMODEM (polynomial 0x1021, initial 0), the checksum Redis Cluster uses. */
uint16_t sk_rcluster_crc16(const void *buf, size_t len);

/** The hash slot of a key: of the part between the first '{' and the next '}' when
 *  that part is not empty, else of the whole key. */
unsigned sk_rcluster_slot(const char *key, size_t len);

/** The slot of a sale's keys (sk:{<sale>}:...). */
unsigned sk_rcluster_sale_slot(const char *sale, size_t len);

/** Parses the store URL into a new map with its seeds and no owners yet. Returns NULL
 *  with one clear line in err (never repeating a password) when the URL is invalid. */
sk_rcluster_t *sk_rcluster_new(const char *url, char *err, size_t err_size);

/** Closes the synchronous connections and frees; NULL is ignored. */
void sk_rcluster_free(sk_rcluster_t *c);

/** The index of the node at host:port, added when new. Returns it, or -ENOSPC. */
int sk_rcluster_node(sk_rcluster_t *c, const char *host, int port);

/** The node serving a slot, or -1 when none is known. */
static inline int sk_rcluster_owner(const sk_rcluster_t *c, unsigned slot)
{
    uint16_t o = c->owner[slot % SK_RCLUSTER_SLOTS];
    return o == SK_RCLUSTER_NONE ? -1 : (int)o;
}

/** Replaces the map with a CLUSTER SLOTS reply (each range's first node is the
 *  primary). An empty host in the reply (Redis knows no address for a node) means
 *  `asked_host`, the host of the node that answered. Returns 0, or -EINVAL when the
 *  reply is not one (the map is unchanged then). */
int sk_rcluster_apply_slots(sk_rcluster_t *c, const redisReply *r, const char *asked_host);

/** Whether a CLUSTER SLOTS error says the server is a single Redis (no cluster). */
bool sk_rcluster_disabled_error(const redisReply *r);

/** Makes the map one Redis: node 0 (seed 0) owns every slot. */
void sk_rcluster_set_single(sk_rcluster_t *c);

typedef enum {
    SK_RCLUSTER_REPLY = 0, /* not a redirection: the command's own answer */
    SK_RCLUSTER_MOVED, /* the slot lives elsewhere for good: update the map, resend */
    SK_RCLUSTER_ASK, /* the slot is moving: send ASKING and the command there, once */
    SK_RCLUSTER_TRYAGAIN, /* the slot's keys are split by a move under way: nothing ran */
    SK_RCLUSTER_DOWN, /* CLUSTERDOWN: the cluster cannot serve the slot now; nothing ran */
} sk_rcluster_redirect_t;

/** Reads a redirection from a reply. For MOVED and ASK, *slot and *to are filled (an
 *  empty host means the host of the node that answered, as Redis says when it knows
 *  no other); a MOVED or ASK that does not parse is SK_RCLUSTER_REPLY. */
sk_rcluster_redirect_t sk_rcluster_redirect(const redisReply *r, unsigned *slot, sk_rcluster_node_t *to);

/** Reads the topology through the first seed or known node that answers (CLUSTER
 *  SLOTS), deciding on first use whether this is a cluster. Returns 0, or -EIO with one
 *  clear line in err (or -EINVAL for a cluster URL with a database other than 0, or
 *  several seeds that are not a cluster). */
int sk_rcluster_discover(sk_rcluster_t *c, int timeout_ms, char *err, size_t err_size);

/** The synchronous connection to a node, connected (authenticated, database selected)
 *  on first use and kept. Returns NULL with err filled. */
redisContext *sk_rcluster_sync(sk_rcluster_t *c, int node, int timeout_ms, char *err, size_t err_size);

/** Closes a node's synchronous connection (after an I/O error). */
void sk_rcluster_sync_drop(sk_rcluster_t *c, int node);

/** Runs one command on the owner of `slot`, following MOVED (the map is updated and
 *  read again) and ASK, up to SK_RCLUSTER_HOPS times. Returns the reply (the caller
 *  frees it; it may be an error reply, TRYAGAIN and CLUSTERDOWN included), or NULL with
 *  err filled when no node could be asked (the connection that failed is dropped). */
redisReply *sk_rcluster_command(sk_rcluster_t *c, unsigned slot, int timeout_ms, char *err, size_t err_size,
                                const char *fmt, ...);
redisReply *sk_rcluster_vcommand(sk_rcluster_t *c, unsigned slot, int timeout_ms, char *err, size_t err_size,
                                 const char *fmt, va_list ap);
redisReply *sk_rcluster_command_argv(sk_rcluster_t *c, unsigned slot, int timeout_ms, char *err, size_t err_size,
                                     int argc, const char **argv, const size_t *lens);

/** The address of a node for logs: "host:port". */
const char *sk_rcluster_name(const sk_rcluster_t *c, int node, char *buf, size_t cap);

#endif
