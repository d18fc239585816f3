// The operator's dashboard: create sales, list them, and watch one live from /metrics
// (with the front door's refusals: rate-limited, denied, bad tokens); manage the selected
// one (admin-controls.js), read its orders (admin-orderlist.js) and its trail (admin-trail.js).
import './admin-strings.js';
import { pickLang, setLang, other, t } from './i18n.js';
import { LifecycleView, lifecycleSnapshot } from './admin-orders.js';
import { fmtTime, localInput, errorText, fieldErrorText, setUnauthorizedHandler, zoneOf } from './admin-common.js';
import { initControls, renderControls } from './admin-controls.js';
import { showTrail } from './admin-trail.js';
import { initOrders, showOrders, reloadOrders } from './admin-orderlist.js';

const $ = (id) => document.getElementById(id);
const API = '/api/v1/sales';
const TOKEN_KEY = 'seckill.adminToken';
const SCRAPE_MS = 1000;
const LIST_MS = 2000;
const WINDOW_MS = 10000; // p99, batch size and commit latency are taken over this window
const HISTORY_MS = 5 * 60 * 1000; // the charts show this much
const FIELDS = ['id', 'name', 'stock', 'starts_at', 'ends_at', 'per_user_limit'];
const ACCEPTED = new Set(['confirmed', 'reserved', 'duplicate']);
const MADE = new Set(['confirmed', 'reserved']); // a purchase that made an order
// The front door's refusals the dashboard charts (node-wide, not per sale).
const FRONT_KINDS = ['rate_limited', 'denied'];
const FRONT_ALL = [...FRONT_KINDS, 'tokens'];

const D = {
  sales: [],
  selected: null,
  pendingCreate: null, // a create that was answered 401, sent again once a token is given
  pastBody: null, // a create with a time in the past, sent once the operator confirms
  snaps: [], // metric snapshots of the last WINDOW_MS (+1 scrape)
  history: { pps: [], rej: [], front: [] },
  life: new LifecycleView(), // held, sold and the orders' states (admin-orders.js)
};

async function call(url, opts = {}) {
  const res = await fetch(url, { cache: 'no-store', ...opts });
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

// ---- token --------------------------------------------------------------------------

const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

function askToken(rejected, neededKey = 'tokenNeeded') {
  const key = rejected ? 'tokenRejected' : neededKey;
  $('token-box').hidden = false;
  $('token-msg').textContent = t(key);
  $('token-msg').dataset.key = key;
  $('token').value = '';
  $('token').focus();
}

function renderToken() {
  $('token-forget').hidden = !token();
}

// ---- create -------------------------------------------------------------------------

function formBody(form) {
  const body = {};
  for (const name of FIELDS) {
    const input = form.elements[name];
    const v = input.value.trim();
    if (v === '') continue; // missing fields are the API's to report
    if (input.type === 'number') body[name] = Number(v);
    else if (input.type === 'datetime-local') {
      const ms = new Date(v).getTime();
      if (Number.isFinite(ms)) body[name] = ms;
    } else body[name] = v;
  }
  return body;
}

function clearErrors() {
  for (const name of FIELDS) {
    $(`err-${name}`).textContent = '';
    $('create-form').elements[name].removeAttribute('aria-invalid');
  }
  $('create-msg').textContent = '';
  delete $('create-msg').dataset.kind;
}

function message(kind, text) {
  $('create-msg').textContent = text;
  $('create-msg').dataset.kind = kind;
}

/** The create form's times that are in the past, as sentences; [] when none. A start up
 *  to a minute ago is "now" (the server's grace), not a mistake. */
function pastTimes(body) {
  const now = Date.now();
  const out = [];
  if (Number.isFinite(body.starts_at) && body.starts_at < now - 60000) out.push(t('past.start', { time: fmtTime(body.starts_at) }));
  if (Number.isFinite(body.ends_at) && body.ends_at <= now) out.push(t('past.end', { time: fmtTime(body.ends_at) }));
  return out;
}

/** Creates the sale, after asking when a time is in the past. */
function submitCreate(body) {
  clearErrors();
  const past = pastTimes(body);
  if (!past.length) return create(body);
  D.pastBody = body;
  $('past-msg').textContent = `${past.join(' ')} ${t('past.ask')}`;
  $('past-box').hidden = false;
  $('past-yes').focus();
}

async function create(body) {
  clearErrors();
  $('past-box').hidden = true;
  const headers = { 'Content-Type': 'application/json' };
  const tok = token();
  if (tok) headers.Authorization = `Bearer ${tok}`;
  let res;
  try {
    res = await call(API, { method: 'POST', headers, body: JSON.stringify(body) });
  } catch (e) {
    return message('error', t('res.error', { msg: e.message }));
  }
  const b = res.body && typeof res.body === 'object' ? res.body : {};
  if (res.status === 201) {
    $('token-box').hidden = true;
    const warns = Array.isArray(b.warnings) ? b.warnings : [];
    if (warns.length) {
      const w = warns.map((x) =>
        t(`warn.${x.field}.${x.code}`) !== `warn.${x.field}.${x.code}` ? t(`warn.${x.field}.${x.code}`) : t('warn.other', x),
      );
      message('warn', t('createdWarn', { id: b.id || body.id, w: w.join('; ') }));
      $('create-msg').dataset.warnings = warns.map((x) => `${x.field}.${x.code}`).join(' ');
    } else message('ok', t('created', { id: b.id || body.id }));
    $('create-form').elements.id.value = '';
    D.selected = b.id || body.id;
    resetLive();
    await refreshList();
    selected();
    return;
  }
  if (res.status === 401) {
    D.pendingCreate = body;
    if (tok) sessionStorage.removeItem(TOKEN_KEY);
    renderToken();
    return askToken(Boolean(tok));
  }
  if (res.status === 409) return message('error', t('exists', { id: body.id }));
  // In the interface's language from the field and its code; the API's English message
  // only for a code this page does not know.
  const input = b.field && FIELDS.includes(b.field) ? $('create-form').elements[b.field] : null;
  if (input) {
    const msg = fieldErrorText(b) || b.message || b.code;
    input.setAttribute('aria-invalid', 'true');
    $(`err-${b.field}`).textContent = msg;
    $(`err-${b.field}`).dataset.code = b.code || '';
    input.focus();
    return message('error', t('badField', { field: t(`f.${b.field}`), msg }));
  }
  message('error', errorText(res.status, b));
}

// ---- sales list ---------------------------------------------------------------------

// Each cell carries its column's name: on a phone the rows become cards that show it.
const COLS = ['col.id', 'col.name', 'col.state', 'col.sold', 'col.starts', 'col.ends', 'openPage'];

function cell(tr, text) {
  const td = document.createElement('td');
  td.textContent = text;
  td.dataset.label = t(COLS[tr.cells.length] || '');
  tr.appendChild(td);
  return td;
}

function renderList() {
  const tbody = $('sales').tBodies[0];
  const rows = D.sales.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.id = s.id;
    tr.dataset.testid = `row-${s.id}`;
    tr.setAttribute('aria-selected', String(s.id === D.selected));
    cell(tr, s.id).className = 'clip';
    const name = cell(tr, s.name);
    name.className = 'clip name';
    name.title = s.name;
    cell(tr, t(`state.${s.state}`)).dataset.state = s.state;
    cell(tr, `${s.sold} / ${s.stock}`);
    cell(tr, fmtTime(s.starts_at, { seconds: false })).className = 'time';
    cell(tr, fmtTime(s.ends_at, { seconds: false })).className = 'time';
    const a = document.createElement('a');
    a.href = `/sale/${encodeURIComponent(s.id)}`;
    a.target = '_blank';
    a.textContent = t('openPage');
    cell(tr, '').appendChild(a);
    return tr;
  });
  tbody.replaceChildren(...rows);
  $('no-sales').hidden = D.sales.length > 0;
}

async function refreshList() {
  try {
    const { status, body } = await call(API);
    if (status !== 200 || !Array.isArray(body.sales)) return;
    D.sales = body.sales;
  } catch {
    return;
  }
  if (!D.selected) {
    const wanted = new URLSearchParams(location.search).get('sale');
    const pick =
      D.sales.find((s) => s.id === wanted) ||
      D.sales.find((s) => s.state === 'live') ||
      D.sales.find((s) => s.state === 'scheduled');
    if (pick) {
      D.selected = pick.id;
      resetLive();
      selected();
    }
  }
  renderList();
  renderLive();
}

/** The selected sale changed: its controls, orders and trail follow. */
function selected() {
  renderControls(D.sales.find((s) => s.id === D.selected) || null);
  showOrders(D.selected);
  showTrail(D.selected);
}

// ---- metrics ------------------------------------------------------------------------

/** Parses Prometheus text into [{name, labels, value}]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) {
      for (const l of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    out.push({ name: m[1], labels, value });
  }
  return out;
}

/** The figures the dashboard needs from one scrape, for one sale. */
function snapshot(samples, sale, now) {
  const s = { t: now, results: {}, sold: null, remaining: null, http: {}, batch: {}, commit: {}, front: {}, queue: null };
  const hist = (h, base, x) => {
    if (x.name === `${base}_bucket`) {
      const le = x.labels.le === '+Inf' ? Infinity : Number(x.labels.le);
      h.buckets = h.buckets || new Map();
      h.buckets.set(le, (h.buckets.get(le) || 0) + x.value);
    } else if (x.name === `${base}_sum`) h.sum = (h.sum || 0) + x.value;
    else if (x.name === `${base}_count`) h.count = (h.count || 0) + x.value;
  };
  for (const x of samples) {
    if (x.name === 'seckill_purchases_total' && x.labels.sale === sale)
      s.results[x.labels.result] = (s.results[x.labels.result] || 0) + x.value;
    else if (x.name === 'seckill_sale_sold' && x.labels.sale === sale) s.sold = x.value;
    else if (x.name === 'seckill_sale_remaining' && x.labels.sale === sale) s.remaining = x.value;
    else if (x.name.startsWith('seckill_http_request_duration_seconds'))
      hist(s.http, 'seckill_http_request_duration_seconds', x);
    else if (x.name.startsWith('seckill_ledger_batch_size')) hist(s.batch, 'seckill_ledger_batch_size', x);
    else if (x.name.startsWith('seckill_ledger_commit_seconds')) hist(s.commit, 'seckill_ledger_commit_seconds', x);
    else if (x.name === 'seckill_front_refused_total' && FRONT_KINDS.includes(x.labels.reason))
      s.front[x.labels.reason] = (s.front[x.labels.reason] || 0) + x.value;
    else if (x.name === 'seckill_front_tokens_rejected_total') s.front.tokens = (s.front.tokens || 0) + x.value;
    else if (x.name.startsWith('seckill_queue_') && x.labels.sale === sale) {
      s.queue = s.queue || {};
      s.queue[x.name.slice('seckill_queue_'.length)] = x.value;
    }
  }
  return s;
}

const EMPTY_SNAP = { results: {}, http: {}, batch: {}, commit: {}, front: {} };

/** Histogram change between two snapshots; a restarted server counts from zero. */
function histDelta(a, b) {
  const buckets = [];
  let reset = (b.count || 0) < (a.count || 0);
  for (const [le, c] of b.buckets || []) {
    const d = c - ((a.buckets && a.buckets.get(le)) || 0);
    if (d < 0) reset = true;
    buckets.push([le, d]);
  }
  if (reset) {
    buckets.length = 0;
    for (const [le, c] of b.buckets || []) buckets.push([le, c]);
  }
  buckets.sort((x, y) => x[0] - y[0]);
  if (reset) return { buckets, sum: b.sum || 0, count: b.count || 0 };
  return { buckets, sum: (b.sum || 0) - (a.sum || 0), count: (b.count || 0) - (a.count || 0) };
}

/** The q-quantile of cumulative buckets [[le, count]], interpolated within a bucket. */
export function quantile(q, buckets) {
  if (!buckets.length) return NaN;
  const total = buckets[buckets.length - 1][1];
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevC = 0;
  for (const [le, c] of buckets) {
    if (c >= rank && c > prevC) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevC)) / (c - prevC);
    }
    prevLe = le === Infinity ? prevLe : le;
    prevC = c;
  }
  return prevLe;
}

function counterDelta(a, b) {
  return b >= a ? b - a : b; // a counter that went down belongs to a restarted server
}

function sumResults(results, pred) {
  let n = 0;
  for (const [k, v] of Object.entries(results)) if (pred(k)) n += v;
  return n;
}

function fmtRate(v) {
  if (!Number.isFinite(v)) return '–';
  return v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString();
}

/** A wait in seconds as "42 s" or "3 min 5 s". */
function fmtWait(seconds) {
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

function fmtMs(seconds) {
  if (!Number.isFinite(seconds)) return '–';
  const ms = seconds * 1000;
  return `${ms < 1 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

function resetLive() {
  D.snaps = [];
  D.history = { pps: [], rej: [], front: [], qrate: [] };
  D.life.reset();
}

async function scrape() {
  if (!D.selected) return;
  const sale = D.selected;
  let text;
  try {
    const tok = token();
    const res = await fetch('/metrics', { cache: 'no-store', headers: tok ? { Authorization: `Bearer ${tok}` } : {} });
    if (res.status === 401) {
      // --metrics-token is set: an admin token opens /metrics too.
      if (tok) sessionStorage.removeItem(TOKEN_KEY);
      renderToken();
      if ($('token-box').hidden) askToken(Boolean(tok), 'metricsToken');
      throw new Error('HTTP 401');
    }
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    text = await res.text();
  } catch (e) {
    $('metrics-msg').hidden = false;
    $('metrics-msg').textContent = t('metricsDown', { msg: e.message });
    return;
  }
  if (sale !== D.selected) return;
  $('metrics-msg').hidden = true;
  const now = Date.now();
  const samples = parseMetrics(text);
  const snap = snapshot(samples, sale, now);
  D.life.push(lifecycleSnapshot(samples, sale), now);
  const prev = D.snaps[D.snaps.length - 1];
  D.snaps.push(snap);
  while (D.snaps.length > 2 && D.snaps[1].t <= now - WINDOW_MS) D.snaps.shift();
  if (prev) {
    const dt = (now - prev.t) / 1000;
    const ok = (k) => MADE.has(k);
    const rejected = (k) => !ACCEPTED.has(k);
    const pps = counterDelta(sumResults(prev.results, ok), sumResults(snap.results, ok)) / dt;
    const rej = counterDelta(sumResults(prev.results, rejected), sumResults(snap.results, rejected)) / dt;
    const all = () => true;
    const front = counterDelta(sumResults(prev.front, all), sumResults(snap.front, all)) / dt;
    const admitted = (x) => (x.queue ? x.queue.admitted_total || 0 : 0);
    const qrate = counterDelta(admitted(prev), admitted(snap)) / dt;
    for (const [key, v] of [['pps', pps], ['rej', rej], ['front', front], ['qrate', qrate]]) {
      const h = D.history[key];
      h.push([now, v]);
      while (h.length && h[0][0] < now - HISTORY_MS) h.shift();
    }
  }
  renderLive();
}

// ---- live view ----------------------------------------------------------------------

/** The time the charts cover: a minute at first, growing to HISTORY_MS. */
function chartSpan(points) {
  const have = points.length ? points[points.length - 1][0] - points[0][0] : 0;
  return Math.min(HISTORY_MS, Math.max(60000, Math.ceil(have / 60000) * 60000));
}

function drawChart(canvas, points) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(100, canvas.clientWidth || 300);
  const h = canvas.clientHeight || 60;
  if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
  if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const max = points.reduce((m, p) => Math.max(m, p[1]), 0);
  canvas.dataset.points = String(points.length);
  canvas.dataset.max = String(max);
  canvas.dataset.last = String(points.length ? points[points.length - 1][1] : 0);
  if (points.length < 2) return;
  const end = points[points.length - 1][0];
  const top = max > 0 ? max * 1.15 : 1;
  const x = (tm) => w - ((end - tm) / chartSpan(points)) * w;
  const y = (v) => h - 2 - (v / top) * (h - 14);
  const style = getComputedStyle(document.documentElement);
  g.beginPath();
  g.moveTo(x(points[0][0]), h);
  for (const [tm, v] of points) g.lineTo(x(tm), y(v));
  g.lineTo(x(end), h);
  g.closePath();
  g.fillStyle = 'rgba(228, 57, 60, 0.15)';
  g.fill();
  g.beginPath();
  points.forEach(([tm, v], i) => (i ? g.lineTo(x(tm), y(v)) : g.moveTo(x(tm), y(v))));
  g.strokeStyle = style.getPropertyValue('--accent').trim() || '#e4393c';
  g.lineWidth = 1.5;
  g.stroke();
  g.fillStyle = style.getPropertyValue('--muted').trim() || '#666';
  g.font = '10px system-ui, sans-serif';
  g.fillText(`max ${fmtRate(max)}`, 4, 10);
}

function renderLive() {
  const sale = D.sales.find((s) => s.id === D.selected);
  renderControls(sale || null);
  $('tiles').hidden = !D.selected;
  $('lifecycle').hidden = !D.selected;
  D.life.render();
  $('live').dataset.sale = D.selected || '';
  if (!D.selected) {
    $('live-title').textContent = t('pickSale');
    return;
  }
  $('live-title').textContent = t('liveTitle', { name: sale ? `${sale.name} (${sale.id})` : D.selected });
  for (const tr of $('sales').tBodies[0].rows) tr.setAttribute('aria-selected', String(tr.dataset.id === D.selected));

  const last = D.snaps[D.snaps.length - 1];
  const sold = last && last.sold !== null ? last.sold : sale ? sale.sold : NaN;
  const remaining = last && last.remaining !== null ? last.remaining : sale ? sale.remaining : NaN;
  $('m-sold').textContent = Number.isFinite(sold) ? String(sold) : '–';
  $('m-remaining').textContent = Number.isFinite(remaining) ? String(remaining) : '–';

  const pps = D.history.pps;
  const rej = D.history.rej;
  $('m-pps').textContent = pps.length ? fmtRate(pps[pps.length - 1][1]) : '–';
  $('m-rej').textContent = rej.length ? fmtRate(rej[rej.length - 1][1]) : '–';
  const front = D.history.front;
  $('m-front').textContent = front.length ? fmtRate(front[front.length - 1][1]) : '–';
  drawChart($('c-pps'), pps);
  drawChart($('c-rej'), rej);
  drawChart($('c-front'), front);
  // The waiting room's tiles, for a queued sale only.
  const q = last && last.queue;
  for (const el of document.querySelectorAll('#tiles [data-queue]')) el.hidden = !q;
  if (q) {
    const qr = D.history.qrate;
    $('m-qlen').textContent = String(q.length ?? '–');
    $('m-qadmitted').textContent = String(q.admitted_total ?? '–');
    $('m-qrate').textContent = qr.length ? fmtRate(qr[qr.length - 1][1]) : '–';
    $('m-qrate-set').textContent = t('m.qrateSet', { n: q.admit_per_second ?? '–' });
    $('m-qwait').textContent = typeof q.wait_seconds === 'number' ? fmtWait(q.wait_seconds) : '–';
    drawChart($('c-qrate'), qr);
  }
  for (const el of document.querySelectorAll('#tiles .window'))
    el.textContent = t('lastMinutes', { n: chartSpan(pps) / 60000 });
  if (!last) return;

  // Over the window: the oldest snapshot kept, or the server's whole life on a first scrape.
  const first = D.snaps.length > 1 ? D.snaps[0] : EMPTY_SNAP;
  const secs = D.snaps.length > 1 ? (last.t - first.t) / 1000 : NaN;
  const why = Object.keys(last.results)
    .filter((k) => !ACCEPTED.has(k))
    .map((k) => [k, counterDelta(first.results[k] || 0, last.results[k])])
    .filter(([, n]) => n > 0)
    .map(([k, n]) => (Number.isFinite(secs) ? `${k} ${fmtRate(n / secs)}/s` : `${k} ${n}`));
  $('m-rej-why').textContent = why.join(' · ');
  $('m-front-why').textContent = FRONT_ALL.map((k) => [k, counterDelta(first.front[k] || 0, last.front[k] || 0)])
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${t(`front.${k}`)} ${Number.isFinite(secs) ? `${fmtRate(n / secs)}/s` : n}`)
    .join(' · ');

  const http = histDelta(first.http, last.http);
  $('m-p99').textContent = fmtMs(quantile(0.99, http.buckets));
  const batch = histDelta(first.batch, last.batch);
  $('m-batch').textContent = batch.count > 0 ? (batch.sum / batch.count).toFixed(1) : '–';
  const commit = histDelta(first.commit, last.commit);
  $('m-commit').textContent =
    commit.count > 0 ? `${fmtMs(commit.sum / commit.count)} / ${fmtMs(quantile(0.99, commit.buckets))}` : '–';
}

/** The create form says which zone its times are in. */
function renderTz() {
  $('tz-hint').textContent = t('tzHint', { zone: zoneOf() });
}

// ---- start --------------------------------------------------------------------------

function start() {
  setLang(pickLang(), false);
  $('lang').addEventListener('click', () => {
    setLang(other(), true);
    renderList();
    renderLive();
    renderTz();
    reloadOrders();
    showTrail(D.selected);
    if (!$('token-box').hidden) $('token-msg').textContent = t($('token-msg').dataset.key);
  });
  const form = $('create-form');
  form.elements.starts_at.value = localInput(Date.now() + 60000);
  form.elements.ends_at.value = localInput(Date.now() + 3600000);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    submitCreate(formBody(form));
  });
  $('past-yes').addEventListener('click', () => create(D.pastBody));
  $('past-no').addEventListener('click', () => {
    $('past-box').hidden = true;
    form.elements.starts_at.focus();
  });
  setUnauthorizedHandler((rejected) => {
    if (rejected) sessionStorage.removeItem(TOKEN_KEY);
    renderToken();
    askToken(rejected);
  });
  initControls({
    sale: () => D.sales.find((s) => s.id === D.selected) || null,
    changed: (sale) => {
      if (sale) {
        const i = D.sales.findIndex((s) => s.id === sale.id);
        if (i >= 0) D.sales[i] = { ...D.sales[i], ...sale };
        renderList();
        renderLive();
      }
      refreshList();
      showTrail(D.selected);
      reloadOrders();
    },
  });
  initOrders();
  renderTz();
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('token').value.trim();
    if (!v) return;
    sessionStorage.setItem(TOKEN_KEY, v);
    renderToken();
    $('token-box').hidden = true;
    showTrail(D.selected);
    reloadOrders();
    if (D.pendingCreate) {
      const body = D.pendingCreate;
      D.pendingCreate = null;
      create(body);
    }
  });
  $('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    renderToken();
  });
  $('sales').addEventListener('click', (e) => {
    const tr = e.target.closest('tbody tr');
    if (!tr || e.target.closest('a') || tr.dataset.id === D.selected) return;
    D.selected = tr.dataset.id;
    resetLive();
    renderLive();
    selected();
    scrape();
  });
  renderToken();
  renderLive();
  refreshList().then(scrape);
  setInterval(refreshList, LIST_MS);
  setInterval(scrape, SCRAPE_MS);
}

start();
