/* GET /api/v1/config: what a client page needs to know about this server before it shows
 * a sale — whether the store keeps the order lifecycle (payment windows, quantities),
 * whether the demo Pay button may call POST /api/v1/orders/{id}/demo-pay, and which sale
 * is the demo sale of `serve --demo` (the buyer's page shows it first). */
#include <string.h>

#include "api/internal.h"

void sk_api_config(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    sk_api_worker_t *w = arg;
    const sk_api_config_t *cfg = &w->api->cfg;
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    sk_buf_puts(b, "{\"lifecycle\":");
    sk_buf_puts(b, sk_engine_lifecycle(cfg->engine) ? "true" : "false");
    sk_buf_puts(b, ",\"demo_payments\":");
    sk_buf_puts(b, cfg->demo_payments ? "true" : "false");
    sk_buf_puts(b, ",\"demo_sale\":");
    if (cfg->demo_sale)
        sk_buf_put_json_str(b, cfg->demo_sale, strlen(cfg->demo_sale));
    else
        sk_buf_puts(b, "null");
    sk_buf_puts(b, ",\"server_time\":");
    sk_buf_put_i64(b, sk_api_store_now(w));
    sk_buf_putc(b, '}');
    sk_api_reply_json(x, 200, b);
}
