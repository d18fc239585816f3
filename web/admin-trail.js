// The selected sale's trail (GET /api/v1/sales/{id}/log): every control action accepted,
// who did it (the admin token's name), when, and the counts before and after.
import { t } from './i18n.js';
import { $, adminCall, saleUrl, fmtTime, errorText, fieldName, stamp } from './admin-common.js';

const PATCHED = ['name', 'starts_at', 'ends_at', 'per_user_limit', 'max_quantity', 'payment_window_ms'];
const TIMES = new Set(['starts_at', 'ends_at']);

let shown = null; // the sale whose trail is on screen
let seq = 0; // answers to older requests are dropped

function what(e) {
  const p = e.params || {};
  if (e.action === 'add_stock') return t('act.add_stock', { n: p.add });
  if (e.action === 'remove_stock') return t('act.remove_stock', { n: p.remove });
  if (e.action === 'patch') {
    const val = (k, v) => (TIMES.has(k) ? fmtTime(v) : v);
    const changes = PATCHED.filter((k) => k in p).map((k) =>
      t('change', { field: fieldName(k), from: val(k, e.before ? e.before[k] : '–'), to: val(k, p[k]) }),
    );
    return t('act.patch', { changes: changes.join('; ') });
  }
  return t(`act.${e.action}`);
}

const counts = (s) => (s ? `${s.stock} · ${s.sold} · ${s.held} · ${s.remaining}` : '–');

function td(tr, text, label, cls) {
  const c = document.createElement('td');
  c.textContent = text;
  c.dataset.label = label;
  if (cls) c.className = cls;
  tr.appendChild(c);
  return c;
}

function render(entries) {
  const rows = entries.map((e) => {
    const tr = document.createElement('tr');
    tr.dataset.seq = e.seq;
    tr.dataset.action = e.action;
    td(tr, fmtTime(e.at), t('trail.at'));
    td(tr, e.actor, t('trail.actor'));
    td(tr, what(e), t('trail.action'), 'wrap');
    td(tr, `${counts(e.before)} → ${counts(e.after)}`, t('trail.counts')).dataset.testid = 'trail-counts';
    const sb = e.before ? t(`state.${e.before.state}`) : '–';
    const sa = e.after ? t(`state.${e.after.state}`) : '–';
    td(tr, sb === sa ? sa : `${sb} → ${sa}`, t('trail.state'));
    return tr;
  });
  // Newest first: the operator wants the last action on top.
  $('trail').tBodies[0].replaceChildren(...rows.reverse());
  $('trail-empty').hidden = entries.length > 0;
  $('trail').hidden = entries.length === 0;
}

/** Loads and shows the sale's trail (null: none selected). */
export async function showTrail(saleId) {
  const box = $('trail-box');
  if (!box) return;
  box.hidden = !saleId;
  const mine = ++seq;
  if (saleId !== shown) {
    $('trail').tBodies[0].replaceChildren();
    shown = saleId;
  }
  if (!saleId) return;
  const msg = $('trail-msg');
  let res;
  try {
    res = await adminCall('GET', `${saleUrl(saleId)}/log`, undefined, { ask: false });
  } catch (e) {
    res = { status: 0, body: { message: e.message } };
  }
  if (mine !== seq) return;
  if (res.status !== 200 || !res.body || !Array.isArray(res.body.entries)) {
    msg.hidden = false;
    msg.textContent = errorText(res.status, res.body);
    stamp(msg, 'error');
    return;
  }
  msg.hidden = true;
  box.dataset.entries = String(res.body.entries.length);
  render(res.body.entries);
}

/** Draws the trail again in the current language. */
export function relabelTrail() {
  if (shown) showTrail(shown);
}
