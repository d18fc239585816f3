// The buyer's page: one sale, a countdown on the server's clock, the counts pushed by
// Server-Sent Events (polling when those fail), a Buy button, and the buyer's orders —
// a reservation counts down to its pay_by with Pay (demo payments only) and Cancel.
// Opened at "/", it also lists every sale on now and coming, the demo sale first.
import { pickLang, setLang, other, t, tn, locale } from './i18n.js';
import { queueAdmission, queueBlocksBuy, queueRefused, queueRender } from './queue.js';

const $ = (id) => document.getElementById(id);
const API = '/api/v1/sales';
const ORDERS = '/api/v1/orders';
const BUYER_KEY = 'seckill.buyer';
const POLL_MS = 2000;
const LIST_MS = 5000;
const SSE_FAILURES_BEFORE_POLLING = 3;
const SSE_RETRY_MS = 15000;
// The server ends every stream after its lifetime (--stream-lifetime): the page opens a
// new one within SSE_REOPEN_MS, at random, so that a crowd does not come back in one
// instant. A stream that ended sooner than SSE_MIN_LIFE_MS counts as a failure instead,
// so that a server dropping streams at once is not hammered.
const SSE_REOPEN_MS = 1000;
const SSE_MIN_LIFE_MS = 5000;
// Once a reservation's pay_by has passed, the page asks for the order until the server
// says it expired (the ledger expires it on its own clock, at once).
const EXPIRY_CHECK_MS = 1000;
const EXPIRY_CHECKS = 30;
const ACTIVE = new Set(['reserved', 'confirmed']);
// A pushed clock sample this far below the estimate is a clock change, not a slow message.
const CLOCK_JUMP_MS = 2000;

const S = {
  id: null,
  sale: null,
  config: { lifecycle: false, demo_payments: false, demo_sale: null },
  offset: 0, // server clock minus browser clock, in ms
  offsetKnown: false, // offset was measured at least once
  buyer: '',
  orders: [], // this buyer's orders in this sale: {order_id, state, quantity, pay_by}
  limitHit: false, // the server said this buyer holds all the units allowed
  pending: null, // {user, rid, quantity}: a purchase without a definite answer yet; retries reuse rid
  busy: false,
  acting: null, // the order id whose payment or cancel is in flight
  result: null, // {kind, order, msg}
  mode: 'connecting',
  es: null,
  sseFailures: 0,
  pollTimer: 0,
  sseRetryTimer: 0,
  home: false, // opened at "/": the list of sales is shown
  list: [],
};

const serverNow = () => Date.now() + S.offset;
const enc = encodeURIComponent;
const randomId = (n) => {
  const a = new Uint8Array(n);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => (b % 36).toString(36)).join('');
};

async function getJSON(url, opts = {}, timeoutMs = 10000) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const res = await fetch(url, { ...opts, signal: ctl.signal, cache: 'no-store' });
    let body = {};
    try {
      body = await res.json();
    } catch {
      // A body that is not JSON (a proxy's error page) leaves only the status to go on.
    }
    return { status: res.status, body: body && typeof body === 'object' ? body : {} };
  } finally {
    clearTimeout(timer);
  }
}

const postJSON = (url, body, timeoutMs = 15000) =>
  getJSON(
    url,
    { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : '' },
    timeoutMs,
  );

// ---- which sale ---------------------------------------------------------------------

function saleIdFromUrl() {
  const m = /^\/sale\/([^/]+)\/?$/.exec(location.pathname);
  if (m) return decodeURIComponent(m[1]);
  return new URLSearchParams(location.search).get('sale');
}

async function loadConfig() {
  try {
    const { status, body } = await getJSON('/api/v1/config');
    if (status === 200) S.config = { ...S.config, ...body };
  } catch {
    // An older server: no demo payments, no demo sale.
  }
}

/** The sales on now and coming, in the order "/" lists them: the server's demo sale,
 *  then the live ones (the latest to open first), then the coming ones (the soonest). */
function openSales(sales) {
  const rank = (s) => (s.id === S.config.demo_sale ? 0 : s.state === 'scheduled' ? 2 : 1);
  return sales
    .filter((s) => s.state !== 'ended')
    .sort((a, b) => rank(a) - rank(b) || (rank(a) === 2 ? a.starts_at - b.starts_at : b.starts_at - a.starts_at));
}

async function fetchList() {
  const { status, body } = await getJSON(API);
  if (status !== 200 || !Array.isArray(body.sales)) throw new Error(`HTTP ${status}`);
  S.list = openSales(body.sales);
  renderList();
  return S.list;
}

// ---- sale state ---------------------------------------------------------------------

/**
 * Takes a clock sample read on arrival of a pushed message stamped with the server's
 * clock. It arrived after that stamp by its delivery delay, so the sample is never
 * above the true offset: it may raise the estimate, while a delay must not lower it
 * (countdowns would run long). A sample far lower means this browser's clock jumped
 * ahead: take it.
 */
function notePushedClock(sample) {
  if (!S.offsetKnown || sample > S.offset || sample < S.offset - CLOCK_JUMP_MS) S.offset = sample;
  S.offsetKnown = true;
}

/**
 * Narrows the estimate to what an answer proves: the server read `stamp` off its clock
 * after `sent` and before now (this browser's clock), so the offset lies between
 * stamp - now and stamp - sent. The first answer gives the middle; later, an estimate
 * outside is moved to the nearer end (a not_started answer to a buy button that opened
 * early lowers it; a slow answer never lowers it below the lower end), one inside stays.
 */
function clockBetween(stamp, sent) {
  const lo = stamp - Date.now();
  const hi = stamp - sent;
  if (!S.offsetKnown) S.offset = (lo + hi) / 2;
  else S.offset = Math.min(Math.max(S.offset, lo), hi);
  S.offsetKnown = true;
}

/** Applies a sale snapshot (from a fetch or an SSE message). */
function applySale(sale, offsetFromServerTime) {
  if (!sale || sale.id !== S.id) return;
  if (offsetFromServerTime && typeof sale.server_time === 'number') notePushedClock(sale.server_time - Date.now());
  S.sale = sale;
  render();
}

/** What the page shows now: the server's state, moved on by the server clock. */
function phase() {
  const s = S.sale;
  if (!s) return null;
  const now = serverNow();
  if (s.state === 'ended') return 'ended';
  if (now >= s.ends_at) return 'ended';
  if (s.state === 'paused') return 'paused';
  if (s.state === 'sold_out' || s.remaining <= 0) return 'sold_out';
  if (s.state === 'scheduled' && now < s.starts_at) return 'scheduled';
  return 'live';
}

async function fetchSale() {
  const sent = Date.now();
  const { status, body } = await getJSON(`${API}/${enc(S.id)}`);
  if (status === 404) {
    $('empty').hidden = false;
    setText('empty-text', t('res.not_found'));
    return false;
  }
  if (status !== 200) throw new Error(`HTTP ${status}`);
  // The server read its clock between the request leaving and the answer arriving.
  if (typeof body.server_time === 'number') clockBetween(body.server_time, sent);
  applySale(body, false);
  return true;
}

// ---- the buyer's orders -------------------------------------------------------------

const timedOut = (o) => o.state === 'reserved' && o.pay_by > 0 && serverNow() > o.pay_by;
const activeUnits = () =>
  S.orders.reduce((n, o) => n + (ACTIVE.has(o.state) && !timedOut(o) ? o.quantity || 1 : 0), 0);
const limit = () => Math.max(1, (S.sale && S.sale.per_user_limit) || 1);
const held = () => S.limitHit || activeUnits() >= limit();

/** Adds or updates one of the buyer's orders from an answer that carries it. */
function putOrder(o) {
  if (!o || !o.order_id) return;
  const i = S.orders.findIndex((x) => x.order_id === o.order_id);
  const keep = i >= 0 ? S.orders[i] : {};
  const next = {
    ...keep,
    order_id: o.order_id,
    state: o.state || keep.state || 'confirmed',
    quantity: o.quantity || keep.quantity || 1,
    pay_by: o.pay_by ?? keep.pay_by ?? null,
  };
  if (i >= 0) S.orders[i] = next;
  else S.orders.push(next);
  return next;
}

async function fetchOrders() {
  const user = S.buyer;
  try {
    const { status, body } = await getJSON(`${API}/${enc(S.id)}/orders/${enc(user)}`);
    if (status !== 200 || user !== S.buyer || !Array.isArray(body.orders)) return;
    S.orders = [];
    for (const o of body.orders) putOrder(o);
    S.limitHit = false;
    if (!S.result) {
      const active = S.orders.filter((o) => ACTIVE.has(o.state));
      const reserved = active.find((o) => o.state === 'reserved');
      if (reserved) showResult('reserved', reserved.order_id);
      else if (active.length && held()) showResult('already', active[0].order_id);
    }
    render();
  } catch {
    // Only a convenience: a purchase still answers "already bought".
  }
}

/** After pay_by, asks for the order until the server has expired it (or paid it: a
 *  payment decided at pay_by still counts). */
async function checkExpiry(o) {
  if (o.checking) return;
  o.checking = true;
  for (let i = 0; i < EXPIRY_CHECKS && S.orders.includes(o) && o.state === 'reserved'; i++) {
    try {
      const { status, body } = await getJSON(`${ORDERS}/${enc(o.order_id)}`);
      if (status === 200 && body.state && body.state !== 'reserved') {
        o.state = body.state;
        if (o.state === 'expired') showResult('expired', o.order_id);
        break;
      }
    } catch {
      // asked again below
    }
    await new Promise((r) => setTimeout(r, EXPIRY_CHECK_MS));
  }
  o.checking = false;
  // Still reserved after every check (the server is unreachable): stop asking; the next
  // fetch of the buyer's orders brings the truth.
  if (o.state === 'reserved') o.gaveUp = true;
  render();
}

async function payOrder(o) {
  if (S.acting) return;
  S.acting = o.order_id;
  render();
  let res = null;
  try {
    res = await postJSON(`${ORDERS}/${enc(o.order_id)}/demo-pay`);
  } catch {
    res = null;
  }
  S.acting = null;
  const { status, body } = res || { status: 0, body: {} };
  if (status === 200 && (body.result === 'confirmed' || body.result === 'duplicate')) {
    putOrder({ ...body, state: 'confirmed' });
    showResult('paid', o.order_id);
  } else if (status === 409 && body.state) {
    putOrder(body);
    showResult(body.error === 'expired' ? 'pay_expired' : 'pay_refused', o.order_id, body.message);
  } else if (status === 0 || status >= 500 || status === 429) {
    showResult('pay_retry', o.order_id);
  } else {
    showResult('error', o.order_id, body.message || body.error || `HTTP ${status}`);
  }
}

async function cancelOrder(o) {
  if (S.acting) return;
  S.acting = o.order_id;
  render();
  let res = null;
  try {
    res = await postJSON(`${ORDERS}/${enc(o.order_id)}/cancel`, { user_id: S.buyer });
  } catch {
    res = null;
  }
  S.acting = null;
  const { status, body } = res || { status: 0, body: {} };
  if (status === 200 && body.state) {
    putOrder(body);
    S.limitHit = false;
    showResult('cancelled', o.order_id);
  } else if (status === 409 && body.state) {
    putOrder(body);
    showResult(body.state === 'expired' ? 'expired' : 'cancel_refused', o.order_id);
  } else if (status === 0 || status >= 500 || status === 429) {
    showResult('cancel_retry', o.order_id);
  } else {
    showResult('error', o.order_id, body.message || body.error || `HTTP ${status}`);
  }
}

// ---- live updates: SSE, else polling ------------------------------------------------

function setMode(mode) {
  S.mode = mode;
  render();
}

function connectSSE() {
  clearTimeout(S.sseRetryTimer);
  if (S.es) S.es.close();
  const es = new EventSource(`${API}/${enc(S.id)}/events`);
  S.es = es;
  let openedAt = 0;
  es.addEventListener('open', () => {
    openedAt = Date.now();
    S.sseFailures = 0;
    stopPolling();
    setMode('sse');
  });
  es.addEventListener('sale', (ev) => {
    S.sseFailures = 0;
    if (S.mode !== 'sse') {
      stopPolling();
      setMode('sse');
    }
    try {
      applySale(JSON.parse(ev.data), true);
    } catch {
      // A malformed message is skipped; the next one carries the whole state again.
    }
  });
  es.addEventListener('error', () => {
    if (es !== S.es) return;
    if (openedAt && Date.now() - openedAt >= SSE_MIN_LIFE_MS) {
      // A stream that worked has ended: its lifetime is over, or the server restarted.
      // Open a new one soon, without the browser's retry delay and without showing
      // "reconnecting"; if that one fails, it counts as a failure below.
      es.close();
      S.es = null;
      S.sseRetryTimer = setTimeout(connectSSE, Math.random() * SSE_REOPEN_MS);
      return;
    }
    S.sseFailures++;
    // EventSource reconnects by itself after a dropped stream (readyState CONNECTING);
    // it gives up for good on an HTTP error (CLOSED). Poll when it gave up or keeps failing,
    // and try a stream again later.
    if (es.readyState === EventSource.CLOSED || S.sseFailures >= SSE_FAILURES_BEFORE_POLLING) {
      es.close();
      S.es = null;
      startPolling();
      S.sseRetryTimer = setTimeout(() => {
        S.sseFailures = 0;
        connectSSE();
      }, SSE_RETRY_MS);
    } else {
      setMode('reconnecting');
    }
  });
}

function startPolling() {
  setMode('polling');
  if (S.pollTimer) return;
  const tick = async () => {
    try {
      await fetchSale();
    } catch {
      // The next tick tries again.
    }
  };
  tick();
  S.pollTimer = setInterval(tick, POLL_MS);
}

function stopPolling() {
  clearInterval(S.pollTimer);
  S.pollTimer = 0;
}

// ---- buying -------------------------------------------------------------------------

function showResult(kind, order, msg) {
  S.result = { kind, order: order || '', msg: msg || '' };
  render();
}

/** The most units one purchase may ask for now: the sale's max_quantity, what the
 *  buyer's limit leaves, and what remains. */
function maxQuantity() {
  const s = S.sale;
  if (!s) return 1;
  const left = limit() - activeUnits();
  return Math.max(1, Math.min(s.max_quantity || 1, left, Math.max(1, s.remaining)));
}

function quantity() {
  const q = Math.floor(Number($('qty').value));
  return Number.isFinite(q) ? Math.min(Math.max(1, q), maxQuantity()) : 1;
}

async function buy() {
  if (S.busy || phase() !== 'live' || held() || queueBlocksBuy()) return;
  const q = quantity();
  if (!S.pending || S.pending.user !== S.buyer || S.pending.quantity !== q)
    S.pending = { user: S.buyer, rid: `r-${Date.now().toString(36)}-${randomId(10)}`, quantity: q };
  const p = S.pending;
  S.busy = true;
  render();
  let res = null;
  let sent = 0;
  const body = { user_id: p.user, request_id: p.rid };
  if (p.quantity > 1) body.quantity = p.quantity;
  try {
    const admission = queueAdmission(p.user);
    if (admission) body.admission = admission;
    sent = Date.now();
    res = await postJSON(`${API}/${enc(S.id)}/purchase`, body);
  } catch {
    res = null; // no answer: the outcome is unknown, so a retry must reuse the request id
  }
  S.busy = false;
  handlePurchase(p, res, sent);
}

/** sent: the browser's clock when the purchase left. */
function handlePurchase(p, res, sent) {
  const { status, body } = res || { status: 0, body: {} };
  const done = () => {
    if (S.pending === p) S.pending = null;
  };
  if ((status === 200 || status === 201) && body.order_id) {
    done();
    const state = body.state || (body.result === 'reserved' ? 'reserved' : 'confirmed');
    if (p.user === S.buyer) putOrder({ ...body, state });
    if (S.sale && typeof body.remaining === 'number' && body.remaining < S.sale.remaining)
      S.sale = { ...S.sale, remaining: body.remaining };
    return showResult(state === 'reserved' ? 'reserved' : state === 'confirmed' ? 'confirmed' : 'duplicate', body.order_id);
  }
  switch (status === 0 ? 'network' : body.error) {
    case 'sold_out':
      done();
      if (S.sale && !(body.remaining > 0)) S.sale = { ...S.sale, remaining: 0, state: 'sold_out' };
      return showResult(body.remaining > 0 ? 'too_few' : 'sold_out', '', '');
    case 'limit_reached':
      done();
      S.limitHit = true;
      fetchOrders();
      return showResult('already', body.order_id);
    case 'not_started':
      done();
      // The server read its clock between the request leaving and the answer arriving.
      if (S.sale && body.starts_in_ms > 0) clockBetween(S.sale.starts_at - body.starts_in_ms, sent);
      return showResult('not_started');
    case 'ended':
      done();
      if (S.sale) S.sale = { ...S.sale, state: 'ended' };
      return showResult('ended');
    case 'paused':
      done();
      return showResult('paused');
    case 'rate_limited':
      return showResult('rate_limited');
    case 'not_admitted':
      done();
      queueRefused();
      return showResult('not_admitted');
  }
  if (status === 429) return showResult('rate_limited');
  if (status === 0 || status >= 500) return showResult('retry');
  done();
  if (status === 404) return showResult('not_found');
  showResult('error', '', body.message || body.error || `HTTP ${status}`);
}

// ---- buyer id -----------------------------------------------------------------------

function setBuyer(id, save) {
  const clean = String(id || '').trim().slice(0, 64);
  S.buyer = clean || `u-${randomId(10)}`;
  if (save || !clean) localStorage.setItem(BUYER_KEY, S.buyer);
  $('buyer-id').value = S.buyer;
  $('forget').hidden = true;
  S.pending = null;
  S.orders = [];
  S.limitHit = false;
  S.result = null;
  render();
  if (S.id && S.sale) fetchOrders();
}

/** "New id" forgets the buyer id: it asks first, naming the id, since orders made with
 *  it can only be looked up with it. */
function askForget() {
  setText('forget-text', t('forgetAsk', { id: S.buyer }));
  $('forget').hidden = false;
  $('forget-no').focus();
}

// ---- rendering ----------------------------------------------------------------------

function fmtDuration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const d = Math.floor(total / 86400);
  const pad = (n) => String(n).padStart(2, '0');
  const hms = `${pad(Math.floor((total % 86400) / 3600))}:${pad(Math.floor((total % 3600) / 60))}:${pad(total % 60)}`;
  return d ? `${d}d ${hms}` : hms;
}

/** mm:ss under an hour, h:mm:ss above (a payment window is at most a day). */
function fmtShort(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const pad = (n) => String(n).padStart(2, '0');
  const h = Math.floor(total / 3600);
  const ms2 = `${pad(Math.floor((total % 3600) / 60))}:${pad(total % 60)}`;
  return h ? `${h}:${ms2}` : ms2;
}

function setText(id, text) {
  const el = typeof id === 'string' ? $(id) : id;
  if (el.textContent !== text) el.textContent = text;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** One of the buyer's orders: id, units, state; a reservation its countdown and buttons. */
function orderItem(o) {
  const li = el('li', 'order-item');
  li.dataset.orderId = o.order_id;
  const out = timedOut(o);
  const shown = out ? 'timed_out' : o.state;
  li.dataset.state = shown;
  const head = el('div', 'order-head');
  const badge = el('span', 'badge', t(`order.${shown}`));
  badge.dataset.state = shown;
  badge.dataset.testid = 'order-state';
  head.appendChild(badge);
  if ((o.quantity || 1) > 1) head.appendChild(el('span', 'units', tn('units', o.quantity)));
  li.appendChild(head);
  const id = el('code', 'oid', o.order_id);
  li.appendChild(id);
  if (o.state === 'reserved') {
    const left = o.pay_by - serverNow();
    const due = el('p', 'due');
    due.dataset.testid = 'pay-within';
    if (out) due.textContent = t('timeUp');
    else {
      const [before, after] = t('payWithin').split('{time}');
      const c = el('strong', 'pay-countdown', fmtShort(left));
      c.dataset.ms = String(Math.max(0, Math.round(left)));
      due.append(before, c, after || '');
    }
    li.appendChild(due);
    if (!out) {
      const row = el('div', 'row actions');
      if (S.config.demo_payments) {
        const pay = el('button', 'primary pay', t(S.acting === o.order_id ? 'paying' : 'pay'));
        pay.type = 'button';
        pay.dataset.action = 'pay';
        pay.disabled = Boolean(S.acting);
        row.appendChild(pay);
      }
      const cancel = el('button', 'cancel', t('cancel'));
      cancel.type = 'button';
      cancel.dataset.action = 'cancel';
      cancel.disabled = Boolean(S.acting);
      row.appendChild(cancel);
      li.appendChild(row);
      if (!S.config.demo_payments) li.appendChild(el('p', 'hint', t('payElsewhere')));
    }
  }
  return li;
}

/** Redraws the orders list only when what it shows changed (buttons keep their focus). */
function renderOrders() {
  const box = $('orders-box');
  const show = S.sale && S.sale.payment_window_ms > 0 && S.orders.length > 0;
  box.hidden = !show;
  if (!show) return;
  const key = JSON.stringify([
    t('pay'),
    S.acting,
    S.config.demo_payments,
    S.orders.map((o) => [o.order_id, o.state, o.quantity, timedOut(o), o.state === 'reserved' ? fmtShort(o.pay_by - serverNow()) : '']),
  ]);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  // Newest first: the reservation to pay is at the top.
  $('orders').replaceChildren(...S.orders.slice().reverse().map(orderItem));
}

function renderList() {
  const show = S.home && S.list.length > 0;
  $('list').hidden = !show;
  if (!show) return;
  const items = S.list.map((s) => {
    const li = el('li', 'sale-item');
    li.dataset.id = s.id;
    if (s.id === S.id) li.setAttribute('aria-current', 'true');
    const a = el('a', 'sale-link');
    a.href = `/sale/${enc(s.id)}`;
    a.appendChild(el('span', 'sale-title', s.name));
    const st = el('span', 'badge', t(`state.${s.state}`));
    st.dataset.state = s.state;
    a.appendChild(st);
    const info =
      s.state === 'scheduled'
        ? t('startsAt', { time: new Date(s.starts_at).toLocaleString(locale()) })
        : t('leftOf', { n: s.remaining, stock: s.stock });
    a.appendChild(el('small', 'sale-info', info));
    li.appendChild(a);
    return li;
  });
  $('sales').replaceChildren(...items);
}

function render() {
  const s = S.sale;
  $('sale').hidden = !s;
  if (s) {
    const ph = phase();
    // The connection dot says whether updates arrive; once the sale is over there is
    // nothing to wait for, and "live" next to "Ended" would read as the sale's state.
    $('conn').hidden = ph === 'ended';
    setText('conn', t(`conn.${S.mode}`));
    $('conn').dataset.mode = S.mode;
    document.title = `${s.name} · seckill`;
    setText('sale-name', s.name);
    setText('state', t(`state.${ph}`));
    $('state').dataset.state = ph;
    $('sale').dataset.phase = ph;
    const now = serverNow();
    const timer = $('timer');
    if (ph === 'scheduled' || ph === 'live') {
      const target = ph === 'scheduled' ? s.starts_at : s.ends_at;
      timer.hidden = false;
      timer.dataset.kind = ph === 'scheduled' ? 'start' : 'end';
      setText('timer-label', t(ph === 'scheduled' ? 'startsIn' : 'endsIn'));
      setText('countdown', fmtDuration(target - now));
      $('countdown').dataset.ms = String(Math.max(0, Math.round(target - now)));
      setText('starts-at', ph === 'scheduled' ? t('startsAt', { time: new Date(s.starts_at).toLocaleString(locale()) }) : '');
    } else {
      timer.hidden = true;
    }
    const remaining = ph === 'sold_out' ? 0 : s.remaining;
    setText('remaining', String(remaining));
    setText('stock', String(s.stock));
    $('meter-fill').style.width = `${s.stock > 0 ? (100 * remaining) / s.stock : 0}%`;
    // Units held by reservations may come back: a sold-out sale says so, and the Buy
    // button comes back by itself when one does (the next event has remaining > 0).
    const heldUnits = s.held > 0 && ph !== 'ended' ? s.held : 0;
    const note = $('held-note');
    note.hidden = !heldUnits;
    note.dataset.kind = ph === 'sold_out' ? 'sold_out' : 'live';
    if (heldUnits) setText(note, tn(ph === 'sold_out' ? 'mayComeBack' : 'heldNow', heldUnits));

    const buy = $('buy');
    let label;
    let enabled = false;
    if (S.busy) label = 'buy.busy';
    else if (ph !== 'ended' && S.orders.some((o) => o.state === 'reserved' && !timedOut(o)) && held())
      label = 'buy.reserved'; // this buyer's own reservation is what holds the units
    else if (ph === 'sold_out' && heldUnits) label = 'buy.waiting';
    else if (ph !== 'live') label = `buy.${ph}`;
    else if (held()) label = 'buy.held';
    else if (queueBlocksBuy()) label = 'buy.queue';
    else {
      enabled = true;
      label = S.pending ? 'buy.retry' : 'buy.live';
    }
    buy.disabled = !enabled;
    buy.setAttribute('aria-busy', String(S.busy));
    setText('buy', t(label));

    // The quantity picker: only while a purchase can be made (it stays during one).
    const qbox = $('qty-box');
    qbox.hidden = !((s.max_quantity || 1) > 1) || !(enabled || S.busy);
    if (!qbox.hidden) {
      const max = maxQuantity();
      const q = $('qty');
      if (q.max !== String(max)) q.max = String(max);
      if (Number(q.value) > max && document.activeElement !== q) q.value = String(max);
      setText('qty-max', t('qtyMax', { n: max }));
      q.disabled = !enabled;
      $('qty-minus').disabled = !enabled || Number(q.value) <= 1;
      $('qty-plus').disabled = !enabled || Number(q.value) >= max;
    }
    for (const o of S.orders) if (timedOut(o) && !o.checking && !o.gaveUp) checkExpiry(o);
  }
  queueRender(s, S.buyer, render);
  const r = S.result;
  $('result').hidden = !r;
  if (r) {
    $('result').dataset.result = r.kind;
    setText('result-text', t(`res.${r.kind}`, { msg: r.msg }));
    // A sale with a payment window lists the buyer's orders below, with their ids.
    $('order').hidden = !r.order || (s && s.payment_window_ms > 0 && S.orders.length > 0);
    setText('order-id', r.order);
  } else {
    delete $('result').dataset.result;
  }
  renderOrders();
}

// ---- start --------------------------------------------------------------------------

function initLang() {
  setLang(pickLang(), false);
  $('lang').addEventListener('click', () => {
    setLang(other(), true);
    if (!$('forget').hidden) askForget();
    renderList();
    render();
  });
}

function initControls() {
  $('buyer-id').addEventListener('change', (e) => setBuyer(e.target.value, true));
  $('buyer-new').addEventListener('click', askForget);
  $('forget-yes').addEventListener('click', () => setBuyer('', true));
  $('forget-no').addEventListener('click', () => {
    $('forget').hidden = true;
    $('buyer-new').focus();
  });
  $('buy').addEventListener('click', buy);
  const step = (d) => {
    $('qty').value = String(Math.min(maxQuantity(), Math.max(1, quantity() + d)));
    render();
  };
  $('qty-minus').addEventListener('click', () => step(-1));
  $('qty-plus').addEventListener('click', () => step(1));
  $('qty').addEventListener('change', () => {
    $('qty').value = String(quantity());
    render();
  });
  $('orders').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-action]');
    const li = e.target.closest('li[data-order-id]');
    const o = li && S.orders.find((x) => x.order_id === li.dataset.orderId);
    if (!b || !o || b.disabled) return;
    if (b.dataset.action === 'pay') payOrder(o);
    else cancelOrder(o);
  });
}

async function start() {
  initLang();
  initControls();
  setBuyer(localStorage.getItem(BUYER_KEY), false);
  // The config only ranks the list and shows the Pay button: a sale's own page does not
  // wait for it.
  const config = loadConfig().then(render);

  S.id = saleIdFromUrl();
  S.home = !S.id;
  if (S.home) await config;
  while (!S.id) {
    try {
      const open = await fetchList();
      S.id = open.length ? open[0].id : null;
    } catch {
      S.id = null;
    }
    if (S.id) break;
    $('empty').hidden = false;
    setText('empty-text', t('empty'));
    await new Promise((r) => setTimeout(r, 5000));
  }
  $('empty').hidden = true;
  if (S.home) {
    renderList();
    setInterval(() => fetchList().catch(() => {}), LIST_MS);
  }

  for (let attempt = 0; ; attempt++) {
    try {
      if (!(await fetchSale())) return; // unknown sale: the result says so
      break;
    } catch {
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** attempt)));
    }
  }
  connectSSE();
  fetchOrders();
  // The countdowns run on the server's clock; a tenth of a second is fine enough.
  setInterval(render, 100);
}

start();
