/* The operator's controls during a flood (controls.h). */
#include "loadgen/controls.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadgen/fetch.h"
#include "util/common.h"

static const char *const action_names[] = {"pause", "resume", "close", "add", "remove", "extend"};

static int parse_ms(const char *s, size_t n, int64_t *ms)
{
    char buf[32];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || errno || !(v >= 0) || v > 1e9)
        return -1;
    double mul = strcmp(end, "ms") == 0                             ? 1
                 : strcmp(end, "s") == 0 || *end == '\0'            ? 1000
                 : strcmp(end, "m") == 0 || strcmp(end, "min") == 0 ? 60000
                 : strcmp(end, "h") == 0                            ? 3600000
                                                                    : -1;
    if (mul < 0)
        return -1;
    *ms = (int64_t)llround(v * mul);
    return 0;
}

int sk_loadgen_controls_parse(const char *spec, sk_loadgen_controls_t *c, char *err, size_t err_len)
{
    memset(c, 0, sizeof(*c));
    if (strcmp(spec, "default") == 0)
        spec = "pause@0.5s,resume@2.5s,add=10%@3s,extend=1h@3.5s,close@4.5s";
    const char *p = spec, *end = spec + strlen(spec);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *at = memchr(p, '@', (size_t)(e - p));
        const char *eq = memchr(p, '=', (size_t)((at ? at : e) - p));
        if (!at || c->n == SK_LOADGEN_CTL_MAX)
            goto bad;
        sk_loadgen_ctl_step_t *s = &c->steps[c->n];
        size_t nl = (size_t)((eq ? eq : at) - p);
        int k = -1;
        for (int i = 0; i < (int)SK_ARRAY_LEN(action_names); i++)
            if (strlen(action_names[i]) == nl && memcmp(p, action_names[i], nl) == 0)
                k = i;
        if (k < 0 || parse_ms(at + 1, (size_t)(e - at - 1), &s->at_ms) < 0)
            goto bad;
        s->action = (sk_loadgen_ctl_action_t)k;
        bool wants_arg =
            s->action == SK_LOADGEN_CTL_ADD || s->action == SK_LOADGEN_CTL_REMOVE || s->action == SK_LOADGEN_CTL_EXTEND;
        if (wants_arg != (eq != NULL))
            goto bad;
        if (eq) {
            size_t al = (size_t)(at - eq - 1);
            if (s->action == SK_LOADGEN_CTL_EXTEND) {
                if (parse_ms(eq + 1, al, &s->arg) < 0 || s->arg == 0)
                    goto bad;
            } else {
                s->percent = al > 0 && eq[al] == '%';
                if (sk_parse_i64(eq + 1, al - s->percent, 1, s->percent ? 1000 : 1000000000, &s->arg) < 0)
                    goto bad;
            }
        }
        c->n++;
        p = comma ? comma + 1 : end;
    }
    if (c->n == 0)
        goto bad;
    return 0;
bad:
    snprintf(err, err_len,
             "--controls wants ACTION[=ARG]@TIME,... (pause, resume, close, add=N or add=P%%, remove=N or "
             "remove=P%%, extend=DURATION; at most %d steps) or \"default\", not \"%s\"",
             SK_LOADGEN_CTL_MAX, spec);
    return -1;
}

static void sleep_until_ms(int64_t t, _Atomic int *interrupted)
{
    for (;;) {
        int64_t left = t - sk_now_ms();
        if (left <= 0 || (interrupted && atomic_load(interrupted)))
            return;
        if (left > 50)
            left = 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* The current ends_at of the sale, or -1. */
static int64_t current_end(sk_loadgen_fetch_t *f, const char *seg)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/sales/%s", seg);
    if (sk_loadgen_fetch(f, "GET", path, NULL) != 200)
        return -1;
    json_t *o = json_loadb(f->body, f->body_len, 0, NULL);
    json_t *v = json_object_get(o, "ends_at");
    int64_t end = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(o);
    return end;
}

static void run_step(sk_loadgen_controls_t *c, sk_loadgen_fetch_t *f, const char *seg, size_t i)
{
    sk_loadgen_ctl_step_t *s = &c->steps[i];
    char path[256], body[256];
    const char *method = "POST";
    int n = snprintf(body, sizeof(body), "{\"request_id\":\"r%s-ctl-%zu\"", c->cfg->run_id, i + 1);
    switch (s->action) {
    case SK_LOADGEN_CTL_ADD:
    case SK_LOADGEN_CTL_REMOVE: {
        int64_t units = s->percent ? (c->sale->stock * s->arg + 99) / 100 : s->arg;
        snprintf(path, sizeof(path), "/api/v1/sales/%s/stock", seg);
        snprintf(body + n, sizeof(body) - (size_t)n, ",\"%s\":%lld}",
                 s->action == SK_LOADGEN_CTL_ADD ? "add" : "remove", (long long)(units > 0 ? units : 1));
        break;
    }
    case SK_LOADGEN_CTL_EXTEND: {
        int64_t end = current_end(f, seg);
        if (end < 0) {
            s->status = -EPROTO;
            snprintf(s->error, sizeof(s->error), "cannot read ends_at");
            return;
        }
        method = "PATCH";
        snprintf(path, sizeof(path), "/api/v1/sales/%s", seg);
        snprintf(body + n, sizeof(body) - (size_t)n, ",\"ends_at\":%lld}", (long long)(end + s->arg));
        break;
    }
    default:
        snprintf(path, sizeof(path), "/api/v1/sales/%s/%s", seg, action_names[s->action]);
        snprintf(body + n, sizeof(body) - (size_t)n, "}");
        break;
    }
    /* The same request_id on every attempt: a retry after a lost answer is a replay. */
    for (s->attempts = 1;; s->attempts++) {
        uint64_t t0 = sk_mono_ns();
        s->status = sk_loadgen_fetch(f, method, path, body);
        s->latency_ns = sk_mono_ns() - t0;
        if ((s->status > 0 && s->status != 503) || s->attempts > (int)c->cfg->retries)
            break;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (s->status <= 0)
        return;
    json_t *o = json_loadb(f->body, f->body_len, 0, NULL);
    json_t *v;
    if ((v = json_object_get(o, "result")) && json_is_string(v))
        snprintf(s->result, sizeof(s->result), "%s", json_string_value(v));
    if ((v = json_object_get(o, "error")) && json_is_string(v))
        snprintf(s->error, sizeof(s->error), "%s", json_string_value(v));
    if ((v = json_object_get(json_object_get(o, "entry"), "seq")) && json_is_integer(v))
        s->entry_seq = json_integer_value(v);
    json_decref(o);
}

static void *controls_main(void *arg)
{
    sk_loadgen_controls_t *c = arg;
    const sk_loadgen_sale_t *sale = c->sale;
    /* The opening on this machine's clock (the server's minus the offset measured at
     * setup), or now when the sale is open already. */
    int64_t base = sk_now_ms();
    if (sale->starts_at > 0 && sale->starts_at - sale->clock_offset_ms + 1 > base)
        base = sale->starts_at - sale->clock_offset_ms + 1;
    sk_loadgen_fetch_t f;
    sk_loadgen_fetch_init(&f, &c->cfg->targets[0], c->cfg->admin_token, 30000);
    char *seg = sk_loadgen_path_segment(sale->id);
    for (size_t i = 0; i < c->n; i++) {
        sleep_until_ms(base + c->steps[i].at_ms, c->cfg->interrupted);
        if (c->cfg->interrupted && atomic_load(c->cfg->interrupted)) {
            c->steps[i].status = -EINTR;
            continue;
        }
        run_step(c, &f, seg, i);
    }
    free(seg);
    sk_loadgen_fetch_close(&f);
    return NULL;
}

int sk_loadgen_controls_start(sk_loadgen_controls_t *c, const sk_loadgen_config_t *cfg, const sk_loadgen_sale_t *sale)
{
    c->cfg = cfg;
    c->sale = sale;
    if (pthread_create(&c->thread, NULL, controls_main, c) != 0)
        return -1;
    c->started = true;
    return 0;
}

void sk_loadgen_controls_join(sk_loadgen_controls_t *c)
{
    if (c->started)
        pthread_join(c->thread, NULL);
    c->started = false;
}

bool sk_loadgen_controls_ok(const sk_loadgen_controls_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->steps[i].status != 200)
            return false;
    return true;
}

void sk_loadgen_controls_report(FILE *out, const sk_loadgen_controls_t *c)
{
    fprintf(out, "\n  controls (%zu):\n", c->n);
    for (size_t i = 0; i < c->n; i++) {
        const sk_loadgen_ctl_step_t *s = &c->steps[i];
        char what[48];
        if (s->action == SK_LOADGEN_CTL_EXTEND)
            snprintf(what, sizeof(what), "extend +%llds", (long long)(s->arg / 1000));
        else if (s->action == SK_LOADGEN_CTL_ADD || s->action == SK_LOADGEN_CTL_REMOVE)
            snprintf(what, sizeof(what), "%s %lld%s", action_names[s->action], (long long)s->arg,
                     s->percent ? "%" : "");
        else
            snprintf(what, sizeof(what), "%s", action_names[s->action]);
        if (s->status == 200)
            fprintf(out, "    %8.3fs  %-16s %s (trail entry %lld) in %.2f ms%s\n", (double)s->at_ms / 1000, what,
                    s->result, (long long)s->entry_seq, (double)s->latency_ns / 1e6,
                    s->attempts > 1 ? " after a retry" : "");
        else if (s->status > 0)
            fprintf(out, "    %8.3fs  %-16s HTTP %d %s in %.2f ms\n", (double)s->at_ms / 1000, what, s->status,
                    s->error, (double)s->latency_ns / 1e6);
        else
            fprintf(out, "    %8.3fs  %-16s no answer (%s)\n", (double)s->at_ms / 1000, what,
                    s->status == -EINTR ? "interrupted"
                    : s->error[0]       ? s->error
                                        : strerror(-s->status));
    }
}
