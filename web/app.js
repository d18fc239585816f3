// The buyer's page: one sale, a countdown on the server's clock, the remaining count
// pushed by Server-Sent Events (polling when those fail), and a Buy button.
import { pickLang, setLang, other, t, locale } from './i18n.js';
import { queueAdmission, queueBlocksBuy, queueRefused, queueRender } from './queue.js';

const $ = (id) => document.getElementById(id);
const API = '/api/v1/sales';
const BUYER_KEY = 'seckill.buyer';
const POLL_MS = 2000;
const SSE_FAILURES_BEFORE_POLLING = 3;
const SSE_RETRY_MS = 15000;
// The server ends every stream after its lifetime (--stream-lifetime): the page opens a
// new one within SSE_REOPEN_MS, at random, so that a crowd does not come back in one
// instant. A stream that ended sooner than SSE_MIN_LIFE_MS counts as a failure instead,
// so that a server dropping streams at once is not hammered.
const SSE_REOPEN_MS = 1000;
const SSE_MIN_LIFE_MS = 5000;

const S = {
  id: null,
  sale: null,
  offset: 0, // server clock minus browser clock, in ms
  buyer: '',
  orders: [], // this buyer's order ids in this sale
  limitHit: false, // the server said this buyer holds all the units allowed
  pending: null, // {user, rid}: a purchase without a definite answer yet; retries reuse rid
  busy: false,
  result: null, // {kind, order, msg}
  mode: 'connecting',
  es: null,
  sseFailures: 0,
  pollTimer: 0,
  sseRetryTimer: 0,
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
    return { status: res.status, body };
  } finally {
    clearTimeout(timer);
  }
}

// ---- which sale ---------------------------------------------------------------------

function saleIdFromUrl() {
  const m = /^\/sale\/([^/]+)\/?$/.exec(location.pathname);
  if (m) return decodeURIComponent(m[1]);
  return new URLSearchParams(location.search).get('sale');
}

async function chooseSale() {
  const { status, body } = await getJSON(API);
  if (status !== 200 || !Array.isArray(body.sales)) throw new Error(`HTTP ${status}`);
  const open = body.sales.filter((s) => s.state === 'live' || s.state === 'scheduled');
  const live = open.find((s) => s.state === 'live');
  if (live) return live.id;
  open.sort((a, b) => a.starts_at - b.starts_at);
  return open.length ? open[0].id : null;
}

// ---- sale state ---------------------------------------------------------------------

/** Applies a sale snapshot (from a fetch or an SSE message). */
function applySale(sale, offsetFromServerTime) {
  if (!sale || sale.id !== S.id) return;
  if (offsetFromServerTime && typeof sale.server_time === 'number')
    S.offset = sale.server_time - Date.now();
  S.sale = sale;
  render();
}

/** What the page shows now: the server's state, moved on by the server clock. */
function phase() {
  const s = S.sale;
  if (!s) return null;
  const now = serverNow();
  if (s.state === 'ended') return 'ended';
  if (s.state === 'sold_out' || s.remaining <= 0) return 'sold_out';
  if (now >= s.ends_at) return 'ended';
  if (s.state === 'scheduled' && now < s.starts_at) return 'scheduled';
  return 'live';
}

async function fetchSale() {
  const t0 = Date.now();
  const { status, body } = await getJSON(`${API}/${enc(S.id)}`);
  const t1 = Date.now();
  if (status === 404) {
    $('empty').hidden = false;
    setText('empty-text', t('res.not_found'));
    return false;
  }
  if (status !== 200) throw new Error(`HTTP ${status}`);
  // The answer left the server about halfway through the round trip.
  if (typeof body.server_time === 'number') S.offset = body.server_time - (t0 + t1) / 2;
  applySale(body, false);
  return true;
}

async function fetchOrders() {
  const user = S.buyer;
  try {
    const { status, body } = await getJSON(`${API}/${enc(S.id)}/orders/${enc(user)}`);
    if (status !== 200 || user !== S.buyer || !Array.isArray(body.orders)) return;
    S.orders = body.orders.map((o) => o.order_id);
    if (S.orders.length && !S.result && held()) showResult('already', S.orders[0]);
    render();
  } catch {
    // Only a convenience: a purchase still answers "already bought".
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

const held = () =>
  S.limitHit || (S.sale && S.orders.length >= Math.max(1, S.sale.per_user_limit || 1));

function showResult(kind, order, msg) {
  S.result = { kind, order: order || '', msg: msg || '' };
  render();
}

async function buy() {
  if (S.busy || phase() !== 'live' || held() || queueBlocksBuy()) return;
  if (!S.pending || S.pending.user !== S.buyer)
    S.pending = { user: S.buyer, rid: `r-${Date.now().toString(36)}-${randomId(10)}` };
  const p = S.pending;
  S.busy = true;
  render();
  let res = null;
  try {
    res = await getJSON(
      `${API}/${enc(S.id)}/purchase`,
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ user_id: p.user, request_id: p.rid, admission: queueAdmission(p.user) || undefined }),
      },
      15000,
    );
  } catch {
    res = null; // no answer: the outcome is unknown, so a retry must reuse the request id
  }
  S.busy = false;
  handlePurchase(p, res);
}

function handlePurchase(p, res) {
  const { status, body } = res || { status: 0, body: {} };
  const done = () => {
    if (S.pending === p) S.pending = null;
  };
  if ((status === 200 || status === 201) && body.order_id) {
    done();
    if (!S.orders.includes(body.order_id)) S.orders.push(body.order_id);
    if (S.sale && typeof body.remaining === 'number' && body.remaining < S.sale.remaining)
      S.sale = { ...S.sale, remaining: body.remaining };
    return showResult('confirmed', body.order_id);
  }
  switch (status === 0 ? 'network' : body.error) {
    case 'sold_out':
      done();
      if (S.sale) S.sale = { ...S.sale, remaining: 0, state: 'sold_out' };
      return showResult('sold_out');
    case 'limit_reached':
      done();
      if (body.order_id && !S.orders.includes(body.order_id)) S.orders.push(body.order_id);
      S.limitHit = true;
      return showResult('already', body.order_id);
    case 'not_started':
      done();
      if (S.sale && typeof body.starts_in_ms === 'number')
        S.offset = S.sale.starts_at - body.starts_in_ms - Date.now();
      return showResult('not_started');
    case 'ended':
      done();
      if (S.sale) S.sale = { ...S.sale, state: 'ended' };
      return showResult('ended');
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
  S.pending = null;
  S.orders = [];
  S.limitHit = false;
  S.result = null;
  render();
  if (S.id && S.sale) fetchOrders();
}

// ---- rendering ----------------------------------------------------------------------

function fmtDuration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const d = Math.floor(total / 86400);
  const pad = (n) => String(n).padStart(2, '0');
  const hms = `${pad(Math.floor((total % 86400) / 3600))}:${pad(Math.floor((total % 3600) / 60))}:${pad(total % 60)}`;
  return d ? `${d}d ${hms}` : hms;
}

function setText(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

function render() {
  const s = S.sale;
  $('sale').hidden = !s;
  setText('conn', t(`conn.${S.mode}`));
  $('conn').dataset.mode = S.mode;
  if (s) {
    const ph = phase();
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

    const buy = $('buy');
    let label;
    let enabled = false;
    if (S.busy) label = 'buy.busy';
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
  }
  queueRender(s, S.buyer, render);
  const r = S.result;
  $('result').hidden = !r;
  if (r) {
    $('result').dataset.result = r.kind;
    setText('result-text', t(`res.${r.kind}`, { msg: r.msg }));
    $('order').hidden = !r.order;
    setText('order-id', r.order);
  } else {
    delete $('result').dataset.result;
  }
}

// ---- start --------------------------------------------------------------------------

function initLang() {
  setLang(pickLang(), false);
  $('lang').addEventListener('click', () => {
    setLang(other(), true);
    render();
  });
}

async function start() {
  initLang();
  setBuyer(localStorage.getItem(BUYER_KEY), false);
  $('buyer-id').addEventListener('change', (e) => setBuyer(e.target.value, true));
  $('buyer-new').addEventListener('click', () => setBuyer('', true));
  $('buy').addEventListener('click', buy);

  S.id = saleIdFromUrl();
  while (!S.id) {
    try {
      S.id = await chooseSale();
    } catch {
      S.id = null;
    }
    if (S.id) break;
    $('empty').hidden = false;
    setText('empty-text', t('empty'));
    await new Promise((r) => setTimeout(r, 5000));
  }
  $('empty').hidden = true;

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
  // The countdown runs on the server's clock; a tenth of a second is fine enough.
  setInterval(render, 100);
}

start();
