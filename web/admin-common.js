// What the dashboard's modules share: admin requests with the session's token, request
// ids, times with their zone, and the API's errors in the interface's language.
import { t, lang } from './i18n.js';

export const API = '/api/v1/sales';
export const TOKEN_KEY = 'seckill.adminToken';

export const $ = (id) => document.getElementById(id);
export const token = () => sessionStorage.getItem(TOKEN_KEY) || '';
export const saleUrl = (id) => `${API}/${encodeURIComponent(id)}`;

// admin.js sets this: what to do when the server refuses the token (ask for it again).
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** An admin request: the token when there is one, a JSON body, the answer parsed.
 *  Resolves {status, body}; a network failure rejects. A 401 asks for the token unless
 *  `ask` is false (the views that load by themselves only say so in their place). */
export async function adminCall(method, url, body, { ask = true } = {}) {
  const headers = {};
  const tok = token();
  if (tok) headers.Authorization = `Bearer ${tok}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers,
    cache: 'no-store',
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  if (res.status === 401 && ask) onUnauthorized(Boolean(tok));
  return { status: res.status, body: parsed };
}

/** A request id for one control action: the server keeps the first answer for it, so a
 *  retry of the same action sends the same id and can never apply twice. */
export function newRequestId() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return `dash-${Date.now().toString(36)}-${[...b].map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}

// ---- times --------------------------------------------------------------------------

/** "UTC+8", "UTC-3:30", "UTC" for the browser's offset at ms. */
export function zoneOf(ms = Date.now()) {
  const off = -new Date(ms).getTimezoneOffset();
  if (off === 0) return 'UTC';
  const a = Math.abs(off);
  const h = Math.floor(a / 60);
  const m = a % 60;
  return `UTC${off > 0 ? '+' : '-'}${h}${m ? `:${String(m).padStart(2, '0')}` : ''}`;
}

const pad = (n) => String(n).padStart(2, '0');

/** "2026-12-02 16:00:05 (UTC+8)" in the browser's zone; "–" for no time. */
export function fmtTime(ms, { seconds = true } = {}) {
  if (!Number.isFinite(ms)) return '–';
  const d = new Date(ms);
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ''}`;
  return `${day} ${clock} (${zoneOf(ms)})`;
}

/** The value of a datetime-local input for ms, in the browser's zone. */
export function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

/** ms of a datetime-local input's value, or NaN. */
export const inputMs = (v) => (v ? new Date(v).getTime() : NaN);

// ---- errors -------------------------------------------------------------------------

const has = (key) => t(key) !== key;

/** The field's name in the interface's language (its API name when there is none). */
export function fieldName(field) {
  return has(`f.${field}`) ? t(`f.${field}`) : field;
}

/** The translated text of a field error ({field, code}); null when the code is unknown. */
export function fieldErrorText(b) {
  if (!b || !b.code) return null;
  const specific = `fe.${b.field}.${b.code}`;
  if (has(specific)) return t(specific, b);
  if (has(`code.${b.code}`)) return t(`code.${b.code}`, { field: fieldName(b.field), ...b });
  return null;
}

/** What an error answer means, in the interface's language: from `error` and
 *  `field`/`code`, never the API's English `message` (kept only for a code this page does
 *  not know). */
export function errorText(status, b) {
  const body = b && typeof b === 'object' ? b : {};
  if (body.error === 'bad_request' && body.field) {
    const txt = fieldErrorText(body);
    if (txt) return t('badField', { field: fieldName(body.field), msg: txt });
  }
  if (body.error && has(`err.${body.error}`)) return t(`err.${body.error}`, body);
  if (status === 401) return t('err.unauthorized');
  const fallback = body.message || body.error || (typeof b === 'string' && b.trim()) || `HTTP ${status}`;
  return t('res.error', { msg: fallback });
}

/** Marks which language an error was shown in, for tests and screen readers. */
export function stamp(el, kind) {
  el.dataset.kind = kind;
  el.dataset.lang = lang();
}
