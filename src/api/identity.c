/* Who the buyer is, and the front door's checks of a request by its client's address
 * and by the user it acts for.
 *
 * Identity comes from one of three places, in this order:
 *   1. the user header (--user-header), set by the merchant's gateway after its own login,
 *      honoured only when the socket's peer is in --trusted-proxies (anyone else could
 *      set it), and refused when it appears twice (a gateway that appends instead of
 *      replacing would otherwise let the client's own copy through);
 *   2. a signed user token in X-Seckill-User (crypto/token.h), minted by the merchant's
 *      login service with --user-token-secret-file;
 *   3. nothing configured: the body's user_id is taken at its word (the demo).
 * With 1 or 2 configured, a request acts only for the user it is identified as, or for
 * anyone when it carries an admin token. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "crypto/token.h"

static const sk_http_header_t *only_header(const sk_http_request_t *req, const char *name, bool *twice)
{
    const sk_http_header_t *found = NULL;
    size_t n = strlen(name);
    *twice = false;
    for (size_t i = 0; i < req->num_headers; i++) {
        const sk_http_header_t *h = &req->headers[i];
        if (h->name_len == n && sk_http_token_eq(h->name, n, name)) {
            if (found)
                *twice = true;
            found = h;
        }
    }
    return found;
}

void sk_api_identify(sk_api_worker_t *w, const sk_http_exchange_t *x, sk_api_identity_t *id)
{
    const sk_api_t *api = w->api;
    memset(id, 0, sizeof(*id));
    if (sk_http_find_header(x->req, "authorization"))
        id->admin = sk_api_admin_name(w, x);
    if (!api->identity)
        return;
    if (api->user_header && sk_cidr_list_contains(api->trusted, api->n_trusted, sk_http_peer(x))) {
        bool twice;
        const sk_http_header_t *h = only_header(x->req, api->user_header, &twice);
        if (h) {
            if (twice)
                id->problem = "the user header came more than once; the gateway must replace it, not add to it";
            else if (!sk_valid_user_id(h->value, h->value_len))
                id->problem = "the user header from the gateway is not a valid user id";
            else {
                id->user = h->value;
                id->user_len = h->value_len;
            }
            return;
        }
    }
    if (api->user_tokens) {
        const sk_http_header_t *h = sk_http_find_header(x->req, "x-seckill-user");
        if (!h)
            return;
        const char *u;
        size_t ul;
        int rc = sk_token_user_verify(&api->user_key, h->value, h->value_len, sk_now_ms(), &u, &ul);
        if (rc == 0 && !sk_valid_user_id(u, ul))
            rc = SK_TOKEN_MALFORMED;
        if (rc < 0) {
            sk_api_count_token(w, SK_API_TOK_USER, rc);
            id->problem = rc == SK_TOKEN_EXPIRED   ? "the user token (X-Seckill-User) has expired"
                          : rc == SK_TOKEN_BAD_MAC ? "the user token (X-Seckill-User) has a bad signature"
                                                   : "the user token (X-Seckill-User) is malformed";
            return;
        }
        id->user = u;
        id->user_len = ul;
    }
}

bool sk_api_identity_may(const sk_api_t *api, const sk_api_identity_t *id, const char *user, size_t ul)
{
    if (!api->identity || id->admin)
        return true;
    return id->user && id->user_len == ul && memcmp(id->user, user, ul) == 0;
}

void sk_api_identity_refuse(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_api_identity_t *id)
{
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    if (!id->user) {
        sk_counter_add(&w->refused[SK_API_UNAUTHENTICATED], 1);
        const char *msg = id->problem ? id->problem
                          : w->api->user_tokens
                              ? "this server needs to know who you are: a signed user token in X-Seckill-User"
                              : "this server learns who you are from its gateway, and the request did not come "
                                "through it";
        sk_buf_puts(b, "{\"error\":\"unauthenticated\",\"message\":");
        sk_buf_put_json_str(b, msg, strlen(msg));
        sk_buf_putc(b, '}');
        sk_api_reply_json(x, 401, b);
        return;
    }
    sk_counter_add(&w->refused[SK_API_FORBIDDEN], 1);
    char msg[160];
    snprintf(msg, sizeof(msg), "you are identified as %.*s and may act only for that user", (int)id->user_len,
             id->user);
    sk_buf_puts(b, "{\"error\":\"forbidden\",\"message\":");
    sk_buf_put_json_str(b, msg, strlen(msg));
    sk_buf_putc(b, '}');
    sk_api_reply_json(x, 403, b);
}

static void answer_denied(sk_http_exchange_t *x)
{
    sk_http_respond_error(x, 403, "denied", "this client is not allowed to use this service");
}

static void answer_limited(sk_http_exchange_t *x, uint64_t wait_us, const char *message)
{
    char extra[48], body[200];
    uint64_t secs = (wait_us + 999999) / 1000000;
    snprintf(extra, sizeof(extra), "Retry-After: %llu\r\n", (unsigned long long)(secs ? secs : 1));
    int n = snprintf(body, sizeof(body), "{\"error\":\"rate_limited\",\"message\":\"%s\"}\n", message);
    sk_http_respond_ex(x, 429, "application/json", extra, body, (size_t)n);
}

bool sk_api_act_for(sk_api_worker_t *w, sk_http_exchange_t *x, const char *user, size_t ul)
{
    const sk_api_t *api = w->api;
    if (SK_LIKELY(!api->check_user))
        return true;
    sk_api_identity_t id;
    sk_api_identify(w, x, &id);
    if (!sk_api_identity_may(api, &id, user, ul)) {
        sk_api_identity_refuse(w, x, &id);
        return false;
    }
    if (w->deny && sk_api_deny_user(w->deny, user, ul)) {
        sk_counter_add(&w->refused[SK_API_DENIED_USER], 1);
        answer_denied(x);
        return false;
    }
    if (api->user_limit && !id.admin) {
        uint64_t wait = sk_ratelimit_take(api->user_limit, user, ul, sk_mono_ns() / 1000);
        if (wait) {
            sk_counter_add(&w->refused[SK_API_LIMITED_USER], 1);
            answer_limited(x, wait, "too many requests for this user; retry after the time in Retry-After");
            return false;
        }
    }
    return true;
}

/* One element of X-Forwarded-For: an address, maybe "[v6]", "[v6]:port" or "v4:port". */
static int parse_forwarded(const char *s, size_t n, sk_ip_t *ip)
{
    if (sk_ip_parse(s, n, ip) == 0)
        return 0;
    if (n > 2 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        return rb ? sk_ip_parse(s + 1, (size_t)(rb - s - 1), ip) : -1;
    }
    const char *colon = memchr(s, ':', n);
    if (colon && !memchr(colon + 1, ':', (size_t)(s + n - colon - 1)))
        return sk_ip_parse(s, (size_t)(colon - s), ip);
    return -1;
}

void sk_api_forwarded_ip(const sk_http_request_t *req, const sk_cidr_t *trusted, size_t n, sk_ip_t *ip)
{
    /* Walk X-Forwarded-For from its right end (the address our proxy saw) to the left,
     * over every such header in order: each trusted proxy vouches for the address to its
     * left, and the first address that is not a trusted proxy is the client. Whatever is
     * further left the client wrote itself. */
    bool seen = false;
    for (size_t k = req->num_headers; k-- > 0;) {
        const sk_http_header_t *h = &req->headers[k];
        if (h->name_len != 15 || !sk_http_token_eq(h->name, 15, "x-forwarded-for"))
            continue;
        seen = true;
        const char *end = h->value + h->value_len;
        while (end > h->value) {
            const char *start = end;
            while (start > h->value && start[-1] != ',')
                start--;
            const char *a = start, *b = end;
            while (a < b && (*a == ' ' || *a == '\t'))
                a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            end = start > h->value ? start - 1 : h->value;
            if (a == b)
                continue;
            sk_ip_t next;
            if (parse_forwarded(a, (size_t)(b - a), &next) < 0)
                return; /* garbage: keep the last address a trusted hop vouched for */
            *ip = next;
            if (!sk_cidr_list_contains(trusted, n, ip))
                return;
        }
    }
    if (seen)
        return; /* every hop trusted: the leftmost is the client */
    const sk_http_header_t *real = sk_http_find_header(req, "x-real-ip");
    sk_ip_t r;
    if (real && parse_forwarded(real->value, real->value_len, &r) == 0)
        *ip = r;
}

void sk_api_client_ip(const sk_api_t *api, const sk_http_exchange_t *x, sk_ip_t *out)
{
    const sk_ip_t *peer = sk_http_peer(x);
    *out = *peer;
    if (api->n_trusted && sk_cidr_list_contains(api->trusted, api->n_trusted, peer))
        sk_api_forwarded_ip(x->req, api->trusted, api->n_trusted, out);
}

bool sk_api_front_request(sk_api_worker_t *w, sk_http_exchange_t *x)
{
    const sk_api_t *api = w->api;
    sk_ip_t ip;
    sk_api_client_ip(api, x, &ip);
    if (w->deny && sk_api_deny_ip(w->deny, &ip)) {
        sk_counter_add(&w->refused[SK_API_DENIED_IP], 1);
        answer_denied(x);
        return false;
    }
    if (!api->ip_limit)
        return true;
    /* Operators are not held back by the crowd's limit; a token that does not match
     * counts like any other request. */
    if (api->n_admins && sk_http_find_header(x->req, "authorization") && sk_api_admin_name(w, x))
        return true;
    /* An IPv6 client is limited by its /64: one host is given a whole /64, and an
     * attacker would otherwise have 2^64 addresses to rotate through. */
    unsigned char key[9];
    size_t kl = ip.family == 6 ? 9 : 5;
    key[0] = ip.family;
    memcpy(key + 1, ip.a, kl - 1);
    uint64_t wait = sk_ratelimit_take(api->ip_limit, key, kl, sk_mono_ns() / 1000);
    if (wait) {
        sk_counter_add(&w->refused[SK_API_LIMITED_IP], 1);
        answer_limited(x, wait, "too many requests from this address; retry after the time in Retry-After");
        return false;
    }
    return true;
}

void sk_api_count_token(sk_api_worker_t *w, sk_api_token_kind_t kind, int rc)
{
    sk_api_token_why_t why = SK_API_WHY_MALFORMED;
    switch (rc) {
    case -EPERM: /* SK_TOKEN_BAD_MAC, SK_POW_NOT_OURS */
        why = SK_API_WHY_BAD_MAC;
        break;
    case -ETIME: /* SK_TOKEN_EXPIRED, SK_POW_STALE */
        why = SK_API_WHY_EXPIRED;
        break;
    case -EDOM: /* SK_POW_TOO_FEW_BITS */
        why = SK_API_WHY_TOO_FEW_BITS;
        break;
    default:
        break;
    }
    sk_counter_add(&w->tokens[kind][why], 1);
}

/* The token a purchase carries: the body's, else the X-Seckill-Admission header's. */
static const char *admission_token(const sk_http_exchange_t *x, const char *tok, size_t *tl)
{
    if (tok)
        return tok;
    const sk_http_header_t *h = sk_http_find_header(x->req, "x-seckill-admission");
    if (!h)
        return NULL;
    *tl = h->value_len;
    return h->value;
}

bool sk_api_admission_ok(sk_api_worker_t *w, const sk_http_exchange_t *x, const sk_sale_t *s, const char *user,
                         size_t ul, const char *tok, size_t tl, int64_t now)
{
    tok = admission_token(x, tok, &tl);
    /* The expiry is on the store's clock (queue.lua's TIME on Redis), which also sends an
     * unused admission to the back: the caller reads it on that clock, as the purchase
     * reads the sale's window. */
    int rc =
        tok ? sk_token_admission_verify(&w->api->secret, s->id, s->id_len, user, ul, tok, tl, now) : SK_TOKEN_MALFORMED;
    if (rc == 0)
        return true;
    sk_api_count_token(w, SK_API_TOK_ADMISSION, rc);
    return false;
}

void sk_api_refuse_admission(sk_api_worker_t *w, sk_http_exchange_t *x, const char *tok, size_t tl)
{
    tok = admission_token(x, tok, &tl);
    /* The reason again, for the message only (the counters have it already). */
    const char *msg = !tok ? "this sale admits buyers through its waiting room: join the queue first"
                           : "this admission is not valid for this buyer and this sale, or has expired: join the "
                             "queue again";
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    sk_buf_puts(b, "{\"error\":\"not_admitted\",\"message\":");
    sk_buf_put_json_str(b, msg, strlen(msg));
    sk_buf_putc(b, '}');
    sk_api_reply_json(x, 403, b);
}

bool sk_api_admitted(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_sale_t *s, const char *user, size_t ul,
                     const char *tok, size_t tl)
{
    if (sk_api_admission_ok(w, x, s, user, ul, tok, tl, sk_api_store_now(w)))
        return true;
    sk_api_refuse_admission(w, x, tok, tl);
    return false;
}
