// The selected sale's orders: a page at a time (GET .../orders?after=&limit=, the `next`
// cursor), one buyer's (GET .../orders/{user_id}), and a CSV export of every page, read
// page by page with a progress note, up to CSV_MAX orders.
import { t } from './i18n.js';
import { $, adminCall, saleUrl, fmtTime, errorText, stamp } from './admin-common.js';

const CSV_PAGE = 1000; // orders per request while exporting (the API allows 10 000)
export const CSV_MAX = 200000; // the export stops here: the file would be too big to keep in a tab
const CSV_COLS = ['order_id', 'user_id', 'quantity', 'state', 'created_at', 'pay_by', 'paid_at', 'closed_at', 'payment_id', 'request_id'];
const CSV_TIMES = new Set(['created_at', 'pay_by', 'paid_at', 'closed_at']);

const O = {
  sale: null,
  cursors: [null], // the cursor of each page shown so far: cursors[i] starts page i+1
  page: 0, // index into cursors
  next: null,
  user: null, // a buyer searched for, or null for every order
  seq: 0,
  exporting: null, // {stop}
};

function td(tr, text, label) {
  const c = document.createElement('td');
  c.textContent = text;
  c.dataset.label = label;
  tr.appendChild(c);
  return c;
}

function render(orders) {
  const rows = orders.map((o) => {
    const tr = document.createElement('tr');
    tr.dataset.orderId = o.order_id;
    tr.dataset.state = o.state;
    td(tr, o.order_id, t('ord.id')).className = 'wrap';
    td(tr, o.user_id ?? O.user ?? '', t('ord.user')).className = 'wrap';
    td(tr, String(o.quantity ?? 1), t('ord.qty'));
    const st = td(tr, t(`order.${o.state}`), t('ord.state'));
    st.dataset.state = o.state;
    td(tr, fmtTime(o.created_at), t('ord.created'));
    return tr;
  });
  $('ord-table').tBodies[0].replaceChildren(...rows);
}

function pagerState() {
  const searching = O.user !== null;
  $('ord-first').disabled = searching || O.page === 0;
  $('ord-next').disabled = searching || !O.next;
  $('ord-all').hidden = !searching;
  $('ord-csv').disabled = Boolean(O.exporting);
}

async function load() {
  const sale = O.sale;
  if (!sale) return;
  const mine = ++O.seq;
  const msg = $('ord-msg');
  const size = Number($('ord-size').value) || 50;
  let url;
  if (O.user !== null) url = `${saleUrl(sale)}/orders/${encodeURIComponent(O.user)}`;
  else {
    const after = O.cursors[O.page];
    url = `${saleUrl(sale)}/orders?limit=${size}${after ? `&after=${encodeURIComponent(after)}` : ''}`;
  }
  let res;
  try {
    res = await adminCall('GET', url, undefined, { ask: false });
  } catch (e) {
    res = { status: 0, body: { message: e.message } };
  }
  if (mine !== O.seq || sale !== O.sale) return;
  if (res.status !== 200 || !res.body || !Array.isArray(res.body.orders)) {
    msg.textContent = errorText(res.status, res.body);
    stamp(msg, 'error');
    return;
  }
  if (!O.exporting) {
    msg.textContent = '';
    delete msg.dataset.kind;
  }
  const orders = res.body.orders;
  O.next = O.user !== null ? null : res.body.next || null;
  render(orders);
  const info = $('ord-info');
  if (O.user !== null) info.textContent = orders.length ? t('ordUser', { user: O.user, count: orders.length }) : t('ordNoneUser', { user: O.user });
  else info.textContent = orders.length || O.page ? t('ordPage', { n: O.page + 1, count: orders.length }) : t('ordNone');
  $('orders-view').dataset.page = String(O.page + 1);
  $('orders-view').dataset.mode = O.user !== null ? 'user' : 'all';
  pagerState();
}

/** Shows the first page of the sale's orders (null: none selected). */
export function showOrders(saleId) {
  const box = $('orders-view');
  if (!box) return;
  box.hidden = !saleId;
  if (saleId !== O.sale) {
    if (O.exporting) O.exporting.stop = true;
    O.sale = saleId;
    O.cursors = [null];
    O.page = 0;
    O.next = null;
    O.user = null;
    $('ord-user').value = '';
    $('ord-table').tBodies[0].replaceChildren();
    $('ord-msg').textContent = '';
  }
  load();
}

/** Reloads the page on screen (after a language change or a new token). */
export const reloadOrders = () => load();

// ---- CSV ----------------------------------------------------------------------------

/** One CSV field: quoted when it must be, and a leading = + - @ defused so that a
 *  spreadsheet never runs a buyer id as a formula. */
export function csvField(v) {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvRow(o) {
  return `${CSV_COLS.map((k) => csvField(CSV_TIMES.has(k) && Number.isFinite(o[k]) ? new Date(o[k]).toISOString() : o[k])).join(',')}\r\n`;
}

async function exportCsv() {
  const sale = O.sale;
  if (!sale || O.exporting) return;
  const job = { stop: false };
  O.exporting = job;
  pagerState();
  $('ord-csv-stop').hidden = false;
  const msg = $('ord-msg');
  // The BOM makes spreadsheets read the file as UTF-8; the pages are kept as separate parts
  // of one Blob, each page's text made once and never joined into one string.
  const parts = ['\ufeff', `${CSV_COLS.join(',')}\r\n`];
  let n = 0;
  let pages = 0;
  let after = null;
  let end = 'done';
  try {
    for (;;) {
      if (job.stop) {
        end = 'stopped';
        break;
      }
      msg.textContent = t('csvProgress', { n, p: pages + 1 });
      stamp(msg, 'progress');
      const limit = Math.min(CSV_PAGE, CSV_MAX - n);
      const url = `${saleUrl(sale)}/orders?limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ''}`;
      const res = await adminCall('GET', url, undefined, { ask: false });
      if (res.status !== 200 || !res.body || !Array.isArray(res.body.orders)) {
        msg.textContent = t('csvFailed', { msg: errorText(res.status, res.body) });
        stamp(msg, 'error');
        return;
      }
      pages++;
      parts.push(res.body.orders.map(csvRow).join(''));
      n += res.body.orders.length;
      after = res.body.next || null;
      if (!after || !res.body.orders.length) break;
      if (n >= CSV_MAX) {
        end = 'capped';
        break;
      }
    }
  } catch (e) {
    msg.textContent = t('csvFailed', { msg: e.message });
    stamp(msg, 'error');
    return;
  } finally {
    O.exporting = null;
    $('ord-csv-stop').hidden = true;
    pagerState();
  }
  const blob = new Blob(parts, { type: 'text/csv;charset=utf-8' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${sale}-orders.csv`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  msg.textContent = end === 'capped' ? t('csvCapped', { n }) : end === 'stopped' ? t('csvStopped', { n }) : t('csvDone', { n, p: pages });
  stamp(msg, end === 'done' ? 'ok' : 'warn');
  msg.dataset.count = String(n);
  msg.dataset.pages = String(pages);
}

export function initOrders() {
  $('ord-search').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('ord-user').value.trim();
    O.user = v || null;
    if (!v) O.page = 0;
    load();
  });
  $('ord-all').addEventListener('click', () => {
    O.user = null;
    $('ord-user').value = '';
    load();
  });
  $('ord-first').addEventListener('click', () => {
    O.page = 0;
    load();
  });
  $('ord-next').addEventListener('click', () => {
    if (!O.next) return;
    O.cursors[O.page + 1] = O.next;
    O.page++;
    load();
  });
  $('ord-size').addEventListener('change', () => {
    O.cursors = [null];
    O.page = 0;
    load();
  });
  $('ord-csv').addEventListener('click', exportCsv);
  $('ord-csv-stop').addEventListener('click', () => {
    if (O.exporting) O.exporting.stop = true;
  });
}
