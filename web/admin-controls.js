// The dashboard's controls for the selected sale: pause, resume, close, add and remove
// stock, change the end, move a scheduled start, edit the name and limits. Each opens a
// confirmation dialog that says what will happen; Confirm sends the request with a
// request_id made when the dialog opened, and a retry of the same action (same values)
// sends the same id, so that an answer lost on the way can never apply an action twice.
import { t } from './i18n.js';
import { $, adminCall, saleUrl, newRequestId, fmtTime, zoneOf, localInput, inputMs, errorText, fieldName, stamp } from './admin-common.js';

const ACTIONS = ['pause', 'resume', 'close', 'add', 'remove', 'extend', 'start', 'edit'];
const EDIT_FIELDS = ['name', 'per_user_limit', 'max_quantity'];

const C = {
  sale: () => null, // the selected sale as last listed (admin.js)
  changed: () => {}, // after an applied action: refresh the list and the trail
  dlg: null, // {action, sale, rid, sent, body}
};

/** Which actions the sale's state allows; the server decides in the end (409 otherwise). */
function allowed(sale, action) {
  const over = sale.closed || sale.state === 'ended';
  if (over) return false;
  if (action === 'pause') return !sale.paused;
  if (action === 'resume') return sale.paused;
  if (action === 'start') return sale.state === 'scheduled' || (sale.paused && sale.starts_at > Date.now());
  return true;
}

/** Draws the buttons for the sale (null: none selected). */
export function renderControls(sale) {
  const box = $('controls');
  if (!box) return;
  box.dataset.sale = sale ? sale.id : '';
  $('ctl-pick').hidden = Boolean(sale);
  $('ctl-buttons').hidden = !sale;
  if (!sale) return;
  for (const a of ACTIONS) {
    const b = $(`ctl-${a}`);
    b.textContent = t(`ctl.${a}`);
    b.disabled = !allowed(sale, a);
  }
}

// ---- the dialog ---------------------------------------------------------------------

function input(name, type, value, labelKey) {
  const label = document.createElement('label');
  const span = document.createElement('span');
  span.textContent = t(labelKey);
  const el = document.createElement('input');
  el.name = name;
  el.type = type;
  el.dataset.testid = `dlg-${name}`;
  if (type === 'number') {
    el.min = '1';
    el.step = '1';
    el.inputMode = 'numeric';
  }
  if (type === 'datetime-local') el.step = '1';
  el.value = value;
  label.append(span, el);
  if (type === 'datetime-local') {
    const z = document.createElement('small');
    z.className = 'hint';
    z.textContent = t('tzHint', { zone: zoneOf() });
    label.append(z);
  }
  return label;
}

function inputsFor(action, sale) {
  switch (action) {
    case 'add':
    case 'remove':
      return [input('amount', 'number', '1', 'dlg.units')];
    case 'extend':
      return [input('time', 'datetime-local', localInput(Math.max(sale.ends_at, Date.now()) + 3600000), 'dlg.time')];
    case 'start':
      return [input('time', 'datetime-local', localInput(sale.starts_at), 'dlg.time')];
    case 'edit':
      return [
        input('name', 'text', sale.name, 'f.name'),
        input('per_user_limit', 'number', String(sale.per_user_limit), 'f.per_user_limit'),
        input('max_quantity', 'number', String(sale.max_quantity || 1), 'f.max_quantity'),
      ];
    default:
      return [];
  }
}

const wholeOk = (v) => /^\d+$/.test(v) && Number(v) >= 1;

/** The request for the dialog's values and the sentence saying what it will do; {ask}
 *  alone (no request) when the values are not usable yet. */
function plan(action, sale) {
  const f = $('ctl-form').elements;
  const who = { name: sale.name, id: sale.id };
  const url = saleUrl(sale.id);
  switch (action) {
    case 'pause':
    case 'resume':
    case 'close':
      return { method: 'POST', url: `${url}/${action}`, body: {}, ask: t(`ask.${action}`, who) };
    case 'add':
    case 'remove': {
      const v = f.amount.value.trim();
      if (!wholeOk(v)) return { ask: t('ask.badNumber') };
      const n = Number(v);
      const to = action === 'add' ? sale.stock + n : sale.stock - n;
      return {
        method: 'POST',
        url: `${url}/stock`,
        body: { [action]: n },
        ask: t(`ask.${action}`, { ...who, n, from: sale.stock, to }),
      };
    }
    case 'extend':
    case 'start': {
      const ms = inputMs(f.time.value);
      if (!Number.isFinite(ms)) return { ask: t('ask.badTime') };
      const key = action === 'extend' ? 'ends_at' : 'starts_at';
      return {
        method: 'PATCH',
        url,
        body: { [key]: ms },
        ask: t(`ask.${action}`, { ...who, from: fmtTime(sale[key]), to: fmtTime(ms) }),
      };
    }
    case 'edit': {
      const body = {};
      const changes = [];
      for (const k of EDIT_FIELDS) {
        const raw = f[k].value.trim();
        const cur = sale[k];
        if (k === 'name') {
          if (raw !== cur) body.name = raw; // an empty name is the server's to refuse, in words
        } else {
          if (raw === '' || !/^-?\d+$/.test(raw)) return { ask: t('ask.badNumber') };
          if (Number(raw) !== cur) body[k] = Number(raw);
        }
        if (k in body) changes.push(t('change', { field: fieldName(k), from: cur, to: body[k] }));
      }
      if (!changes.length) return { ask: t('ask.nothing') };
      return { method: 'PATCH', url, body, ask: t('ask.edit', { ...who, changes: changes.join('; ') }) };
    }
    default:
      return { ask: '' };
  }
}

function refreshAsk() {
  const d = C.dlg;
  if (!d) return;
  const p = plan(d.action, d.sale);
  $('ctl-ask').textContent = p.ask;
  $('ctl-confirm').disabled = !p.method || d.busy;
  const key = JSON.stringify(p.body || null);
  // Other values are another action: it gets an id of its own.
  if (d.sent && key !== d.key) {
    d.rid = newRequestId();
    d.sent = false;
    $('ctl-confirm').textContent = t('dlg.confirm');
  }
  d.key = key;
  d.plan = p;
}

function open(action) {
  const sale = C.sale();
  if (!sale) return;
  C.dlg = { action, sale: { ...sale }, rid: newRequestId(), sent: false, busy: false, key: null, plan: null };
  const dlg = $('ctl-dialog');
  dlg.dataset.action = action;
  $('ctl-dlg-title').textContent = t(`ctl.${action}`);
  $('ctl-inputs').replaceChildren(...inputsFor(action, sale));
  $('ctl-result').textContent = '';
  delete $('ctl-result').dataset.kind;
  $('ctl-confirm').textContent = t('dlg.confirm');
  $('ctl-confirm').className = action === 'close' ? 'danger' : 'primary';
  $('ctl-cancel').textContent = t('dlg.cancel');
  refreshAsk();
  dlg.showModal();
  const first = $('ctl-inputs').querySelector('input');
  (first || $('ctl-confirm')).focus();
}

function describe(action, sale) {
  return t('done.applied', {
    action: t(`ctl.${action}`),
    state: t(`state.${sale.state}`),
    stock: sale.stock,
    sold: sale.sold,
    held: sale.held,
    remaining: sale.remaining,
  });
}

async function confirm() {
  const d = C.dlg;
  if (!d || d.busy) return;
  refreshAsk();
  const p = d.plan;
  if (!p || !p.method) return;
  d.busy = true;
  d.sent = true;
  $('ctl-confirm').disabled = true;
  $('ctl-confirm').textContent = t('dlg.busy');
  $('ctl-dialog').dataset.rid = d.rid;
  const result = $('ctl-result');
  let res;
  try {
    res = await adminCall(p.method, p.url, { ...p.body, request_id: d.rid });
  } catch (e) {
    res = { status: 0, error: e.message };
  }
  d.busy = false;
  if (C.dlg !== d) return;
  $('ctl-confirm').disabled = false;
  const b = res.body && typeof res.body === 'object' ? res.body : {};
  if (res.status === 200 && (b.result === 'applied' || b.result === 'duplicate')) {
    const text = b.result === 'applied' ? describe(d.action, b.sale || d.sale) : t('done.duplicate', { action: t(`ctl.${d.action}`) });
    const msg = $('ctl-msg');
    msg.textContent = text;
    stamp(msg, 'ok');
    msg.dataset.result = b.result;
    msg.dataset.rid = d.rid;
    close();
    C.changed(b.sale);
    return;
  }
  if (res.status === 401) {
    // The token box is behind the modal dialog: close it; admin.js asks for the token.
    const msg = $('ctl-msg');
    msg.textContent = errorText(401, b);
    stamp(msg, 'error');
    close();
    return;
  }
  // No answer, or the store could not decide: the same action again keeps its id.
  const retry = res.status === 0 || res.status >= 500 || b.error === 'rate_limited';
  if (retry) {
    result.textContent = res.status === 0 ? t('net.retry', { msg: res.error }) : errorText(res.status, b);
    stamp(result, 'retry');
    $('ctl-confirm').textContent = t('dlg.retry');
    return;
  }
  result.textContent = errorText(res.status, b);
  stamp(result, 'error');
  result.dataset.code = b.error === 'bad_request' ? `${b.field}.${b.code}` : b.error || String(res.status);
  if (b.error === 'request_id_reused') {
    d.rid = newRequestId();
    d.sent = false;
  }
  // A refusal that reflects the sale as it is now: the next sentence uses fresh counts.
  if (b.sale) {
    d.sale = { ...d.sale, ...b.sale };
    C.changed(b.sale);
  }
  $('ctl-confirm').textContent = t('dlg.confirm');
  refreshAskKeepId();
}

// A refused action sent again unchanged is the same action: keep its id.
function refreshAskKeepId() {
  const d = C.dlg;
  const p = plan(d.action, d.sale);
  $('ctl-ask').textContent = p.ask;
  d.plan = p;
}

function close() {
  C.dlg = null;
  const dlg = $('ctl-dialog');
  if (dlg.open) dlg.close();
}

/** Wires the buttons and the dialog. sale(): the selected sale; changed(sale): after an
 *  action was applied (or refused with the sale as it is). */
export function initControls({ sale, changed }) {
  C.sale = sale;
  C.changed = changed;
  for (const a of ACTIONS) $(`ctl-${a}`).addEventListener('click', () => open(a));
  $('ctl-form').addEventListener('submit', (e) => {
    e.preventDefault();
    confirm();
  });
  $('ctl-form').addEventListener('input', refreshAsk);
  $('ctl-cancel').addEventListener('click', close);
  $('ctl-dialog').addEventListener('close', () => {
    C.dlg = null;
  });
}
