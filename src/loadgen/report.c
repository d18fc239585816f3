#include "loadgen/report.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "util/common.h"

static const double pcts[] = {50, 90, 99, 99.9};

/* Formats nanoseconds with a unit that keeps three significant digits. */
static const char *fmt_ns(char *buf, size_t n, uint64_t ns)
{
    double v = (double)ns;
    if (v < 1e3)
        snprintf(buf, n, "%.0fns", v);
    else if (v < 1e6)
        snprintf(buf, n, "%.*fus", v < 1e4 ? 2 : v < 1e5 ? 1 : 0, v / 1e3);
    else if (v < 1e9)
        snprintf(buf, n, "%.*fms", v < 1e7 ? 2 : v < 1e8 ? 1 : 0, v / 1e6);
    else
        snprintf(buf, n, "%.2fs", v / 1e9);
    return buf;
}

static void print_row(FILE *out, const char *name, const sk_hist_t *h, uint64_t count)
{
    char b[5][24];
    fprintf(out, "  %-14s %11llu", name, (unsigned long long)count);
    if (h->count == 0) {
        fputc('\n', out);
        return;
    }
    for (size_t i = 0; i < SK_ARRAY_LEN(pcts); i++)
        fprintf(out, " %9s", fmt_ns(b[i], sizeof(b[i]), sk_hist_percentile(h, pcts[i])));
    fprintf(out, " %9s\n", fmt_ns(b[4], sizeof(b[4]), h->max));
}

void sk_loadgen_report_print(FILE *out, const sk_loadgen_config_t *cfg, const sk_loadgen_results_t *res)
{
    fprintf(out, "\nseckill-bench run %s: %u connections, %u thread(s), pipeline %u, %s", cfg->run_id, cfg->connections,
            cfg->threads, cfg->pipeline, cfg->rate > 0 ? "open loop" : "closed loop");
    if (cfg->rate > 0)
        fprintf(out, " at %.0f req/s", cfg->rate);
    fprintf(out, "%s\n", cfg->burst ? ", burst" : "");
    for (size_t i = 0; i < cfg->ntargets; i++)
        fprintf(out, "  target %s\n", cfg->targets[i].url);
    if (cfg->get_path)
        fprintf(out, "  GET %s\n", cfg->get_path);
    else
        fprintf(out, "  sale %s%s: stock %lld, per-user limit %lld; %u users\n", res->sale.id,
                res->sale.created ? " (created)" : "", (long long)res->sale.stock, (long long)res->sale.limit,
                res->users);
    fprintf(out, "\n  %-14s %11s %9s %9s %9s %9s %9s\n", "outcome", "count", "p50", "p90", "p99", "p99.9", "max");
    for (int o = 0; o < SK_OUT_COUNT; o++) {
        if (o == SK_OUT_OK && !cfg->get_path)
            continue;
        if (cfg->get_path && o != SK_OUT_OK && o != SK_OUT_HTTP_ERROR && o != SK_OUT_NET_ERROR)
            continue;
        print_row(out, sk_loadgen_outcome_name((sk_loadgen_outcome_t)o), &res->hist[o], res->counts[o]);
    }
    print_row(out, "all", &res->all, res->answers);
    double rate = res->elapsed_s > 0 ? (double)res->answers / res->elapsed_s : 0;
    fprintf(out, "\n  %llu answers in %.3f s: %.0f answers/s; %llu requests, %llu retries, %llu ended in doubt",
            (unsigned long long)res->answers, res->elapsed_s, rate, (unsigned long long)res->requests,
            (unsigned long long)res->retries, (unsigned long long)res->in_doubt);
    if (res->malformed)
        fprintf(out, ", %llu malformed answers", (unsigned long long)res->malformed);
    fputc('\n', out);
    if (!cfg->get_path && res->counts[SK_OUT_CONFIRMED] && res->confirm_window_s > 0)
        fprintf(out, "  %llu confirmed within %.3f s of the first request: %.0f confirmations/s\n",
                (unsigned long long)res->counts[SK_OUT_CONFIRMED], res->confirm_window_s,
                (double)res->counts[SK_OUT_CONFIRMED] / res->confirm_window_s);
    double cpu = res->cpu_user_s + res->cpu_sys_s;
    fprintf(out, "  client CPU %.2f s (user %.2f, sys %.2f): %.0f answers per CPU second\n", cpu, res->cpu_user_s,
            res->cpu_sys_s, cpu > 0 ? (double)res->answers / cpu : 0);
    fprintf(out, "  connections opened %llu, failures %llu; %llu writes, %llu reads\n",
            (unsigned long long)res->connects, (unsigned long long)res->conn_failures, (unsigned long long)res->writes,
            (unsigned long long)res->reads);
    if (cfg->lifecycle) {
        const sk_loadgen_life_t *L = &res->life;
        fprintf(out, "\n  lifecycle: %llu reservations (payment window %lld ms)\n", (unsigned long long)L->reservations,
                (long long)res->sale.window_ms);
        for (int p = 0; p < SK_PLAN__COUNT; p++) {
            fprintf(out, "    %-10s %9llu", sk_loadgen_plan_name((sk_loadgen_plan_t)p),
                    (unsigned long long)L->plans[p]);
            bool first = true;
            for (int k = 0; k < SK_ACT__COUNT; k++) {
                if (!L->acts[p][k])
                    continue;
                fprintf(out, "%s%s %llu", first ? "  answered: " : ", ", sk_loadgen_act_name((sk_loadgen_act_t)k),
                        (unsigned long long)L->acts[p][k]);
                first = false;
            }
            fputc('\n', out);
        }
        print_row(out, "pay latency", &L->hist_pay, L->hist_pay.count);
        print_row(out, "cancel latency", &L->hist_cancel, L->hist_cancel.count);
        fprintf(out, "    %llu action retries; the crowd stopped buying: %s\n", (unsigned long long)L->retries,
                res->stop_reason);
    }
    if (res->polls.reads || res->polls.failures) {
        const sk_loadgen_polls_t *ps = &res->polls;
        fprintf(out, "  the sale read %llu times (%llu failed): highest held + sold %lld, %llu bad reads%s%s\n",
                (unsigned long long)ps->reads, (unsigned long long)ps->failures, (long long)ps->max_units,
                (unsigned long long)ps->bad_reads, ps->first_bad[0] ? ", the first: " : "", ps->first_bad);
        if (ps->final_ok)
            fprintf(out, "  at the end: stock %lld, held %lld, sold %lld, remaining %lld\n", (long long)ps->stock,
                    (long long)ps->held, (long long)ps->sold, (long long)ps->remaining);
    }
    if (res->timeline_len > 0) {
        fprintf(out, "  answers per second:");
        for (size_t i = 0; i < res->timeline_len; i++) {
            if (i > 0 && i % 10 == 0)
                fprintf(out, "\n                     ");
            fprintf(out, " %llu", (unsigned long long)res->timeline[i]);
        }
        fputc('\n', out);
    }
}

void sk_loadgen_report_audit(FILE *out, const sk_audit_t *a)
{
    fprintf(out, "\n  audit (%s): store holds %lld orders of %lld units, stock %lld, per-user limit %lld", a->source,
            (long long)a->store_orders, (long long)a->store_units, (long long)a->stock, (long long)a->limit);
    if (a->reported_sold >= 0)
        fprintf(out, ", sold %lld", (long long)a->reported_sold);
    fprintf(out,
            "\n  named to the client %lld (recovered by asking %lld); users tried %lld, in doubt %lld, "
            "asked %lld%s\n",
            (long long)a->client_orders, (long long)a->recovered, (long long)a->users_tried,
            (long long)a->users_in_doubt, (long long)a->users_asked, a->ask_failures ? " (some failed)" : "");
    if (a->foreign)
        fprintf(out, "  orders of other runs: %lld\n", (long long)a->foreign);
    fprintf(out,
            "  oversold %lld  undersold %lld  lost %lld  phantom %lld  duplicates %lld  miscounted %lld  "
            "bad_reads %lld  counts_mismatch %lld\n",
            (long long)a->oversold, (long long)a->undersold, (long long)a->lost, (long long)a->phantom,
            (long long)a->duplicates, (long long)a->miscounted, (long long)a->bad_reads, (long long)a->counts_mismatch);
    if (a->trail_checked)
        fprintf(out, "  trail: %lld controls; orders while paused %lld  after the close %lld  over the stock %lld\n",
                (long long)a->trail_entries, (long long)a->while_paused, (long long)a->after_close,
                (long long)a->over_stock);
    if (a->lifecycle) {
        fprintf(out, "  store orders by state:");
        for (int st = 1; st < SK_LOADGEN_ST__COUNT; st++)
            fprintf(out, " %s %lld", sk_loadgen_state_name((sk_loadgen_state_t)st), (long long)a->by_state[st]);
        fprintf(out, "; reservations seen %lld, found in the store %lld\n", (long long)a->reservations,
                (long long)a->reservations_checked);
        if (a->logged)
            fprintf(out, "  the store's log replayed: at most %lld units held or sold at once\n",
                    (long long)a->log_max_units);
        else if (a->timed_max_units >= 0)
            fprintf(out,
                    "  (this store keeps no log: returned_twice and bad_transitions are not judged; by its orders' "
                    "times at most %lld units held or sold at once)\n",
                    (long long)a->timed_max_units);
        else
            fprintf(out, "  (this store keeps no log: returned_twice and bad_transitions are not judged)\n");
        fprintf(out,
                "  late_confirmed %lld  early_expired %lld  state_mismatch %lld  not_final %lld  returned_twice %lld  "
                "bad_transitions %lld  held_at_end %lld\n",
                (long long)a->late_confirmed, (long long)a->early_expired, (long long)a->state_mismatch,
                (long long)a->not_final, (long long)a->returned_twice, (long long)a->bad_transitions,
                (long long)a->held_at_end);
        if (a->first_mismatch[0])
            fprintf(out, "  first state mismatch: %s\n", a->first_mismatch);
    }
    if (a->note[0])
        fprintf(out, "  note: %s\n", a->note);
    if (a->ok)
        fprintf(out, "AUDIT OK\n");
    else
        fprintf(out, "\n!!!!! AUDIT FAILED: %s !!!!!\n", a->failure);
}

void sk_loadgen_report_phases(FILE *out, const char *title, const sk_loadgen_phases_t *p)
{
    double total = 0;
    fprintf(out, "  %s:", title);
    for (size_t i = 0; i < p->n; i++) {
        fprintf(out, "%s %s %.2f s", i ? "," : "", p->at[i].name, p->at[i].s);
        total += p->at[i].s;
    }
    fprintf(out, "; in all %.2f s\n", total);
}

static json_t *phases_json(const sk_loadgen_phases_t *p)
{
    json_t *o = json_object();
    for (size_t i = 0; i < p->n; i++)
        json_object_set_new(o, p->at[i].name, json_real(p->at[i].s));
    return o;
}

static json_t *latency_json(const sk_hist_t *h)
{
    if (h->count == 0)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "p50", json_real((double)sk_hist_percentile(h, 50) / 1e3));
    json_object_set_new(o, "p90", json_real((double)sk_hist_percentile(h, 90) / 1e3));
    json_object_set_new(o, "p99", json_real((double)sk_hist_percentile(h, 99) / 1e3));
    json_object_set_new(o, "p99.9", json_real((double)sk_hist_percentile(h, 99.9) / 1e3));
    json_object_set_new(o, "max", json_real((double)h->max / 1e3));
    json_object_set_new(o, "min", json_real((double)h->min / 1e3));
    json_object_set_new(o, "mean", json_real(sk_hist_mean(h) / 1e3));
    return o;
}

int sk_loadgen_report_json(const char *path, const sk_loadgen_config_t *cfg, const sk_loadgen_results_t *res,
                           const sk_audit_t *audit, const char *audit_error)
{
    json_t *root = json_object();
    json_object_set_new(root, "run_id", json_string(cfg->run_id));
    json_object_set_new(root, "mode", json_string(cfg->get_path ? "get" : "purchase"));
    json_t *targets = json_array();
    for (size_t i = 0; i < cfg->ntargets; i++)
        json_array_append_new(targets, json_string(cfg->targets[i].url));
    json_object_set_new(root, "targets", targets);
    json_t *c = json_object();
    json_object_set_new(c, "connections", json_integer(cfg->connections));
    json_object_set_new(c, "threads", json_integer(cfg->threads));
    json_object_set_new(c, "pipeline", json_integer(cfg->pipeline));
    json_object_set_new(c, "rate", json_real(cfg->rate));
    json_object_set_new(c, "requests", json_integer((json_int_t)cfg->requests));
    json_object_set_new(c, "duration_ms", json_integer((json_int_t)cfg->duration_ms));
    json_object_set_new(c, "users", json_integer(cfg->users));
    json_object_set_new(c, "retries", json_integer(cfg->retries));
    json_object_set_new(c, "burst", json_boolean(cfg->burst));
    if (cfg->get_path)
        json_object_set_new(c, "get", json_string(cfg->get_path));
    json_object_set_new(root, "config", c);
    if (!cfg->get_path && res->sale.id) {
        json_t *s = json_object();
        json_object_set_new(s, "id", json_string(res->sale.id));
        json_object_set_new(s, "stock", json_integer(res->sale.stock));
        json_object_set_new(s, "per_user_limit", json_integer(res->sale.limit));
        json_object_set_new(s, "starts_at", json_integer(res->sale.starts_at));
        json_object_set_new(s, "ends_at", json_integer(res->sale.ends_at));
        json_object_set_new(s, "created", json_boolean(res->sale.created));
        json_object_set_new(s, "payment_window_ms", json_integer(res->sale.window_ms));
        json_object_set_new(s, "max_quantity", json_integer(res->sale.max_quantity));
        json_object_set_new(root, "sale", s);
    }
    json_object_set_new(root, "elapsed_s", json_real(res->elapsed_s));
    json_object_set_new(root, "answers", json_integer((json_int_t)res->answers));
    json_object_set_new(root, "answers_per_s",
                        json_real(res->elapsed_s > 0 ? (double)res->answers / res->elapsed_s : 0));
    json_object_set_new(root, "confirm_window_s", json_real(res->confirm_window_s));
    json_object_set_new(
        root, "confirmed_per_s",
        json_real(res->confirm_window_s > 0 ? (double)res->counts[SK_OUT_CONFIRMED] / res->confirm_window_s : 0));
    json_object_set_new(root, "requests", json_integer((json_int_t)res->requests));
    json_object_set_new(root, "retries", json_integer((json_int_t)res->retries));
    json_object_set_new(root, "in_doubt", json_integer((json_int_t)res->in_doubt));
    json_object_set_new(root, "malformed", json_integer((json_int_t)res->malformed));
    json_t *counts = json_object(), *lat = json_object();
    for (int o = 0; o < SK_OUT_COUNT; o++) {
        const char *name = sk_loadgen_outcome_name((sk_loadgen_outcome_t)o);
        json_object_set_new(counts, name, json_integer((json_int_t)res->counts[o]));
        json_object_set_new(lat, name, latency_json(&res->hist[o]));
    }
    json_object_set_new(lat, "all", latency_json(&res->all));
    json_object_set_new(root, "counts", counts);
    json_object_set_new(root, "latency_us", lat);
    json_t *tl = json_array();
    for (size_t i = 0; i < res->timeline_len; i++)
        json_array_append_new(tl, json_pack("{s:I, s:I, s:I, s:I}", "t", (json_int_t)(i + 1), "answers",
                                            (json_int_t)res->timeline[i], "confirmed",
                                            (json_int_t)res->timeline_confirmed[i], "sold_out_single",
                                            (json_int_t)res->timeline_sold_out1[i]));
    json_object_set_new(root, "timeline", tl);
    double cpu = res->cpu_user_s + res->cpu_sys_s;
    json_object_set_new(root, "client_cpu_s", json_pack("{s:f, s:f}", "user", res->cpu_user_s, "sys", res->cpu_sys_s));
    json_object_set_new(root, "answers_per_cpu_s", json_real(cpu > 0 ? (double)res->answers / cpu : 0));
    json_object_set_new(root, "remaining_reported", json_integer(res->last_remaining));
    json_object_set_new(root, "stop_reason", json_string(res->stop_reason));
    json_object_set_new(root, "phases", phases_json(&res->phases));
    const sk_loadgen_polls_t *ps = &res->polls;
    json_t *pj = json_pack("{s:I, s:I, s:I, s:I}", "reads", (json_int_t)ps->reads, "failures", (json_int_t)ps->failures,
                           "bad_reads", (json_int_t)ps->bad_reads, "max_units", (json_int_t)ps->max_units);
    if (ps->first_bad[0])
        json_object_set_new(pj, "first_bad", json_string(ps->first_bad));
    if (ps->final_ok)
        json_object_set_new(pj, "final",
                            json_pack("{s:I, s:I, s:I, s:I}", "stock", (json_int_t)ps->stock, "held",
                                      (json_int_t)ps->held, "sold", (json_int_t)ps->sold, "remaining",
                                      (json_int_t)ps->remaining));
    json_object_set_new(root, "polls", pj);
    if (cfg->lifecycle) {
        const sk_loadgen_life_t *L = &res->life;
        json_t *lj = json_object(), *plans = json_object();
        json_object_set_new(lj, "window_ms", json_integer(res->sale.window_ms));
        json_object_set_new(lj, "reservations", json_integer((json_int_t)L->reservations));
        json_object_set_new(lj, "retries", json_integer((json_int_t)L->retries));
        for (int p = 0; p < SK_PLAN__COUNT; p++) {
            json_t *pl = json_object(), *acts = json_object();
            json_object_set_new(pl, "count", json_integer((json_int_t)L->plans[p]));
            for (int k = 0; k < SK_ACT__COUNT; k++)
                json_object_set_new(acts, sk_loadgen_act_name((sk_loadgen_act_t)k),
                                    json_integer((json_int_t)L->acts[p][k]));
            json_object_set_new(pl, "answers", acts);
            json_object_set_new(plans, sk_loadgen_plan_name((sk_loadgen_plan_t)p), pl);
        }
        json_object_set_new(lj, "plans", plans);
        json_object_set_new(lj, "pay_latency_us", latency_json(&L->hist_pay));
        json_object_set_new(lj, "cancel_latency_us", latency_json(&L->hist_cancel));
        json_object_set_new(root, "lifecycle", lj);
    }
    json_t *cn = json_object();
    json_object_set_new(cn, "opened", json_integer((json_int_t)res->connects));
    json_object_set_new(cn, "failures", json_integer((json_int_t)res->conn_failures));
    json_object_set_new(cn, "bytes_sent", json_integer((json_int_t)res->bytes_sent));
    json_object_set_new(cn, "bytes_received", json_integer((json_int_t)res->bytes_received));
    json_object_set_new(cn, "writes", json_integer((json_int_t)res->writes));
    json_object_set_new(cn, "reads", json_integer((json_int_t)res->reads));
    json_object_set_new(root, "connections", cn);
    if (audit) {
        json_t *a = json_object();
        json_object_set_new(a, "source", json_string(audit->source));
        json_object_set_new(a, "ok", json_boolean(audit->ok));
        json_object_set_new(a, "oversold", json_integer(audit->oversold));
        json_object_set_new(a, "undersold", json_integer(audit->undersold));
        json_object_set_new(a, "lost", json_integer(audit->lost));
        json_object_set_new(a, "phantom", json_integer(audit->phantom));
        json_object_set_new(a, "duplicates", json_integer(audit->duplicates));
        json_object_set_new(a, "miscounted", json_integer(audit->miscounted));
        json_object_set_new(a, "store_units", json_integer(audit->store_units));
        json_object_set_new(a, "client_units", json_integer(audit->client_units));
        if (audit->trail_checked)
            json_object_set_new(a, "trail",
                                json_pack("{s:I, s:I, s:I, s:I}", "entries", (json_int_t)audit->trail_entries,
                                          "while_paused", (json_int_t)audit->while_paused, "after_close",
                                          (json_int_t)audit->after_close, "over_stock", (json_int_t)audit->over_stock));
        json_object_set_new(a, "stock", json_integer(audit->stock));
        json_object_set_new(a, "per_user_limit", json_integer(audit->limit));
        json_object_set_new(a, "store_orders", json_integer(audit->store_orders));
        json_object_set_new(a, "reported_sold", json_integer(audit->reported_sold));
        json_object_set_new(a, "client_orders", json_integer(audit->client_orders));
        json_object_set_new(a, "recovered", json_integer(audit->recovered));
        json_object_set_new(a, "users_tried", json_integer(audit->users_tried));
        json_object_set_new(a, "users_in_doubt", json_integer(audit->users_in_doubt));
        json_object_set_new(a, "users_asked", json_integer(audit->users_asked));
        json_object_set_new(a, "ask_failures", json_integer(audit->ask_failures));
        json_object_set_new(a, "users_refused_sold_out", json_integer(audit->users_refused_sold_out));
        json_object_set_new(a, "foreign", json_integer(audit->foreign));
        json_object_set_new(a, "bad_reads", json_integer(audit->bad_reads));
        json_object_set_new(a, "counts_mismatch", json_integer(audit->counts_mismatch));
        json_object_set_new(a, "late_confirmed", json_integer(audit->late_confirmed));
        json_object_set_new(a, "early_expired", json_integer(audit->early_expired));
        json_object_set_new(a, "state_mismatch", json_integer(audit->state_mismatch));
        json_object_set_new(a, "not_final", json_integer(audit->not_final));
        json_object_set_new(a, "returned_twice", json_integer(audit->returned_twice));
        json_object_set_new(a, "bad_transitions", json_integer(audit->bad_transitions));
        json_object_set_new(a, "held_at_end", json_integer(audit->held_at_end));
        json_object_set_new(a, "reads", json_integer(audit->reads));
        json_object_set_new(a, "max_units", json_integer(audit->max_units));
        json_object_set_new(a, "logged", json_boolean(audit->logged));
        json_object_set_new(a, "log_max_units", json_integer(audit->log_max_units));
        json_object_set_new(a, "timed_max_units", json_integer(audit->timed_max_units));
        json_object_set_new(a, "reservations", json_integer(audit->reservations));
        json_object_set_new(a, "reservations_checked", json_integer(audit->reservations_checked));
        json_object_set_new(a, "final_held", json_integer(audit->final_held));
        json_object_set_new(a, "final_sold", json_integer(audit->final_sold));
        json_t *bs = json_object();
        for (int st = 1; st < SK_LOADGEN_ST__COUNT; st++)
            json_object_set_new(bs, sk_loadgen_state_name((sk_loadgen_state_t)st), json_integer(audit->by_state[st]));
        json_object_set_new(a, "by_state", bs);
        if (audit->first_mismatch[0])
            json_object_set_new(a, "first_mismatch", json_string(audit->first_mismatch));
        if (!audit->ok)
            json_object_set_new(a, "failure", json_string(audit->failure));
        if (audit->note[0])
            json_object_set_new(a, "note", json_string(audit->note));
        json_object_set_new(a, "times", phases_json(&audit->times));
        json_object_set_new(root, "audit", a);
    } else if (audit_error) {
        json_object_set_new(root, "audit", json_pack("{s:b, s:s}", "ok", 0, "error", audit_error));
    } else {
        json_object_set_new(root, "audit", json_null());
    }
    int rc = 0;
    if (strcmp(path, "-") == 0) {
        if (json_dumpf(root, stdout, JSON_INDENT(2)) < 0)
            rc = -EIO;
        fputc('\n', stdout);
    } else if (json_dump_file(root, path, JSON_INDENT(2)) < 0) {
        rc = errno ? -errno : -EIO;
    }
    json_decref(root);
    return rc;
}
