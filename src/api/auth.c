/* The admin token: requests that change sales or list every order carry
 * "Authorization: Bearer <token>" when a token is configured. */
#include <string.h>

#include "api/internal.h"

static const char unauthorized_body[] =
    "{\"error\":\"unauthorized\",\"message\":\"a valid admin token is required\"}\n";

bool sk_api_authorized(sk_api_worker_t *w, sk_http_exchange_t *x)
{
    sk_api_t *api = w->api;
    if (api->token_len == 0)
        return true;
    const sk_http_header_t *h = sk_http_find_header(x->req, "authorization");
    if (!h || h->value_len != 7 + api->token_len || !sk_http_token_eq(h->value, 7, "bearer "))
        goto deny;
    /* Compare in constant time so the token cannot be guessed byte by byte. */
    unsigned char diff = 0;
    for (size_t i = 0; i < api->token_len; i++)
        diff |= (unsigned char)(h->value[7 + i] ^ api->cfg.admin_token[i]);
    if (diff == 0)
        return true;
deny:
    sk_http_respond_ex(x, 401, "application/json", "WWW-Authenticate: Bearer\r\n", unauthorized_body,
                       sizeof(unauthorized_body) - 1);
    return false;
}
