/* The operator's controls of a sale (pause, resume, close, add or remove stock, patch
 * its settings) and the trail that records them: the rules every store follows, as a
 * pure function of the sale's settings, counts and the writer's clock, and the JSON
 * shapes the trail is written in (the journal, the API). No state, no clock of its own,
 * any thread.
 *
 * A control is decided by the sale's single writer in order with the purchases, like a
 * payment: the purchases before it in the writer's order see the sale as it was, those
 * after it see the change. An accepted control becomes one entry of the sale's trail,
 * with who asked (the actor), when (the writer's clock), its params and the sale's
 * counts and settings before and after. `before.orders` is the number of orders the
 * sale had made when the control was decided: the point in the sale's own order
 * sequence (seqs) where it applies, so an auditor can tell exactly which orders came
 * before a pause or a close even when both share one clock reading.
 *
 * Ownership: plain values; JSON goes to the caller's buffer. */
#ifndef SK_ENGINE_CONTROL_H
#define SK_ENGINE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "util/buf.h"

#define SK_ACTOR_MAX 64 /* who did it: an admin token's name */
/* A start moved to "now" by a client whose clock is a little behind arrives slightly in
 * the past: a start up to this long ago is taken as given (the sale starts at once). */
#define SK_PAST_GRACE_MS 60000

typedef enum {
    SK_CTL_PAUSE = 0,
    SK_CTL_RESUME,
    SK_CTL_CLOSE,
    SK_CTL_ADD_STOCK,
    SK_CTL_REMOVE_STOCK,
    SK_CTL_PATCH,
    SK_CTL__COUNT
} sk_control_action_t;

/* The settings a PATCH may carry: each field counts only when its bit is in `set`. */
enum {
    SK_PATCH_NAME = 1,
    SK_PATCH_STARTS_AT = 2,
    SK_PATCH_ENDS_AT = 4,
    SK_PATCH_PER_USER_LIMIT = 8,
    SK_PATCH_MAX_QUANTITY = 16,
    SK_PATCH_PAYMENT_WINDOW = 32,
    SK_PATCH_QUEUE = 64, /* the waiting room's mode: only before the start */
    SK_PATCH_QUEUE_OPENS_AT = 128, /* only before the start, at most starts_at */
    SK_PATCH_ADMIT_RATE = 256, /* admit_per_second: any time */
    SK_PATCH_ADMISSION_TTL = 512, /* admission_ttl_ms: any time (new admissions) */
    SK_PATCH_POW_BITS = 1024, /* any time (new joins) */
};

/** One control as asked for. */
typedef struct {
    sk_control_action_t action;
    int64_t amount; /* ADD_STOCK, REMOVE_STOCK: units, 1 .. SK_STOCK_MAX */
    uint32_t set; /* PATCH: SK_PATCH_* */
    int64_t starts_at, ends_at; /* unix ms */
    int64_t payment_window_ms;
    int32_t per_user_limit, max_quantity;
    int32_t queue, admit_per_second, pow_bits;
    int64_t queue_opens_at, admission_ttl_ms;
    char name[SK_NAME_MAX + 1];
} sk_control_t;

typedef enum {
    SK_CR_OK = 0,
    SK_CR_DUPLICATE, /* the request_id of an accepted control, same action and params: its entry */
    /* 409: the sale's state does not allow it */
    SK_CR_REQUEST_REUSED, /* the request_id of an accepted control with another action or params */
    SK_CR_CLOSED, /* closed by the operator: nothing changes it any more */
    SK_CR_ENDED, /* past its end: nothing changes it any more */
    SK_CR_ALREADY_PAUSED,
    SK_CR_NOT_PAUSED, /* resume of a sale that is not paused */
    SK_CR_INSUFFICIENT, /* remove_stock below sold + held */
    SK_CR_STOCK_MAX, /* add_stock beyond SK_STOCK_MAX */
    SK_CR_STARTED, /* a new starts_at for a sale that has started */
    SK_CR_HAS_ORDERS, /* a new payment_window_ms for a sale that has orders */
    /* 400: a value that can never be right here (`field` names it) */
    SK_CR_START_IN_PAST, /* starts_at more than SK_PAST_GRACE_MS ago */
    SK_CR_END_IN_PAST, /* ends_at at or before now: use close */
    SK_CR_END_BEFORE_START, /* ends_at at or before starts_at */
    SK_CR_MAX_ABOVE_LIMIT, /* max_quantity above per_user_limit */
    SK_CR_BAD_VALUE, /* out of the API's ranges, or a patch that sets nothing */
    SK_CR__COUNT
} sk_control_result_t;

/** A sale as the trail shows it, before or after a control. */
typedef struct {
    int64_t stock, held, sold; /* units */
    uint64_t orders; /* orders made so far: the last seq */
    sk_sale_state_t state; /* at the control's time */
    bool paused, closed;
    int64_t starts_at, ends_at, payment_window_ms;
    int32_t per_user_limit, max_quantity;
    char name[SK_NAME_MAX + 1];
} sk_sale_snapshot_t;

/** One accepted control. */
struct sk_trail_entry {
    uint64_t seq; /* in the sale's trail, from 1 */
    int64_t at; /* the writer's clock when it decided */
    sk_control_t ctl;
    char actor[SK_ACTOR_MAX + 1];
    char request_id[SK_REQUEST_MAX + 1];
    sk_sale_snapshot_t before, after;
};

/** The rules. Applies control c at `now` to a sale with settings *p and counts *counts
 *  (`has_orders`: it made at least one order; `ended`: its writer already closed it
 *  because its clock passed ends_at). On SK_CR_OK *p and *counts are the sale after the
 *  control (for a new name, p->name points at c->name: copy it); otherwise they are
 *  untouched and, for a 400 result, *field names the field at fault (a static string). */
sk_control_result_t sk_control_apply(const sk_control_t *c, int64_t now, bool has_orders, bool ended,
                                     sk_sale_params_t *p, sk_sale_counts_t *counts, const char **field);

/** True when two controls ask for the same thing (a replay of a request_id). */
bool sk_control_same(const sk_control_t *a, const sk_control_t *b);

/** Fills a snapshot from settings, counts and the number of orders, at `now`. */
void sk_sale_snapshot(sk_sale_snapshot_t *out, const sk_sale_params_t *p, const sk_sale_counts_t *c, uint64_t orders,
                      int64_t now);

/** Names as the API and the journal write them ("pause", "add_stock", ...; "closed",
 *  "insufficient", ...). The parse returns 0 or -EINVAL. */
const char *sk_control_action_name(sk_control_action_t a);
int sk_control_action_parse(const char *s, sk_control_action_t *out);
const char *sk_control_result_name(sk_control_result_t r);
/** True for the results that are the request's fault (400), false for the sale's (409). */
bool sk_control_result_is_bad_request(sk_control_result_t r);

/** JSON of a control's params: {} for pause, resume, close; {"add":N}; {"remove":N}; a
 *  patch's fields as given. */
void sk_control_params_json(sk_buf_t *b, const sk_control_t *c);
/** Parses what sk_control_params_json wrote, for the action. Returns 0 or -EINVAL. */
int sk_control_params_parse(sk_control_action_t action, const char *json, size_t len, sk_control_t *out);
/** JSON of a snapshot: {"stock","held","sold","remaining","orders","state","paused",
 *  "closed","starts_at","ends_at","per_user_limit","max_quantity","payment_window_ms",
 *  "name"}. */
void sk_sale_snapshot_json(sk_buf_t *b, const sk_sale_snapshot_t *s);
/** Parses what sk_sale_snapshot_json wrote. Returns 0 or -EINVAL. */
int sk_sale_snapshot_parse(const char *json, size_t len, sk_sale_snapshot_t *out);
/** JSON of a trail entry: {"seq","action","actor","request_id","at","params","before","after"}. */
void sk_trail_entry_json(sk_buf_t *b, const sk_trail_entry_t *e);

#endif
