// The waiting room on the buyer's page: join a queued sale's queue (solving the proof of
// work when the sale asks one), show the place, the people ahead and the estimated wait
// moving live (SSE .../queue/events, else polling by asking again), and hold the
// admission the buy button needs. app.js calls queueRender() from its render and asks
// queueAdmission() / queueBlocksBuy() when buying; everything else lives here.
import { t, locale } from './i18n.js';
import { solvePow } from './pow.js';

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const POLL_MS = 2000;

const Q = {
  sale: null, // the sale as app.js last rendered it
  buyer: '',
  place: null, // the last answer of the queue for this buyer
  busy: '', // '', 'joining', 'solving'
  error: '',
  es: null,
  pollTimer: 0,
  offset: 0, // the server's clock minus ours
  onChange: () => {},
};

const queued = () => Boolean(Q.sale && Q.sale.queue && Q.sale.queue !== 'off');

/** The admission token of `user` for the current sale while it is good, else null. */
export function queueAdmission(user) {
  const p = Q.place;
  if (!queued() || !p || !p.admission || user !== Q.buyer) return null;
  // By the server's clock (as of its last answer); the server decides in the end.
  return Date.now() + Q.offset < p.admission_expires_at ? p.admission : null;
}

/** True when the sale is queued and this buyer holds no admission yet. */
export function queueBlocksBuy() {
  return queued() && !queueAdmission(Q.buyer);
}

/** The purchase was refused not_admitted: the admission is gone; ask the queue again. */
export function queueRefused() {
  if (!Q.place) return;
  Q.place = { ...Q.place, admission: null };
  ask(true).catch(() => {}); // an expired admission: back of the queue
}

/** Where the page remembers that this buyer joined this sale's queue (a reload rejoins). */
const joinedKey = () => `seckill.queue.${Q.sale.id}.${Q.buyer}`;

function panel() {
  let el = $('queue');
  if (el) return el;
  el = document.createElement('div');
  el.id = 'queue';
  el.className = 'queue';
  el.dataset.testid = 'queue';
  el.innerHTML = `
    <h2 data-q="title"></h2>
    <p class="hint" data-q="intro"></p>
    <button type="button" class="buy" data-testid="queue-join"></button>
    <dl class="queue-place">
      <div><dt data-q="position"></dt><dd data-testid="q-position">–</dd></div>
      <div><dt data-q="ahead"></dt><dd data-testid="q-ahead">–</dd></div>
      <div><dt data-q="eta"></dt><dd data-testid="q-eta">–</dd></div>
    </dl>
    <p class="queue-state" data-testid="q-state" role="status" aria-live="polite"></p>`;
  // Above the buy button: the page reads top to bottom, queue first.
  const buy = $('buy');
  buy.parentNode.insertBefore(el, buy);
  el.querySelector('[data-testid="queue-join"]').addEventListener('click', () => join());
  return el;
}

function stopLive() {
  if (Q.es) Q.es.close();
  Q.es = null;
  clearInterval(Q.pollTimer);
  Q.pollTimer = 0;
}

function apply(place) {
  if (typeof place.server_time === 'number') Q.offset = place.server_time - Date.now();
  Q.place = place;
  Q.error = '';
  Q.onChange();
}

/** Asks the queue (a join when `join`, else the place only; a newcomer hears pow_required). */
async function ask(joinIt, pow) {
  const body = { user_id: Q.buyer };
  if (pow) body.pow = pow;
  const res = await fetch(`/api/v1/sales/${enc(Q.sale.id)}/queue`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    cache: 'no-store',
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 202) {
    apply(data);
    return data;
  }
  if (res.status === 403 && (data.error === 'pow_required' || data.error === 'bad_pow') && joinIt) return data;
  if (!joinIt && data.error === 'pow_required') return null; // not in the queue (yet)
  throw new Error(data.message || `HTTP ${res.status}`);
}

function watch() {
  stopLive();
  const user = Q.buyer;
  const es = new EventSource(`/api/v1/sales/${enc(Q.sale.id)}/queue/events?user_id=${enc(user)}`);
  Q.es = es;
  let failures = 0;
  es.addEventListener('queue', (ev) => {
    failures = 0;
    try {
      if (user === Q.buyer) apply(JSON.parse(ev.data));
    } catch {
      // The next event carries the whole place again.
    }
  });
  es.addEventListener('error', () => {
    if (es !== Q.es) return;
    if (es.readyState === EventSource.CLOSED || ++failures >= 3) {
      // No stream: ask again now and then instead (the same answer).
      es.close();
      Q.es = null;
      Q.pollTimer = setInterval(() => ask(false).catch(() => {}), POLL_MS);
    }
  });
}

async function join() {
  if (Q.busy || !queued()) return;
  Q.busy = 'joining';
  Q.error = '';
  Q.onChange();
  try {
    let r = await ask(true);
    if (r && r.challenge) {
      Q.busy = 'solving';
      Q.onChange();
      const nonce = await solvePow(r.challenge, r.bits);
      Q.busy = 'joining';
      Q.onChange();
      r = await ask(true, { challenge: r.challenge, nonce });
      if (r && r.challenge) throw new Error(r.message);
    }
    sessionStorage.setItem(joinedKey(), '1');
    watch();
  } catch (e) {
    Q.error = e.message;
  }
  Q.busy = '';
  Q.onChange();
}

function fmtWait(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}` : `${s} s`;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Called from app.js's render with the sale, the buyer and a callback that renders again. */
export function queueRender(sale, buyer, onChange) {
  Q.onChange = onChange;
  const changed = !Q.sale || !sale || sale.id !== Q.sale.id || buyer !== Q.buyer;
  Q.sale = sale;
  if (changed) {
    stopLive();
    Q.buyer = buyer;
    Q.place = null;
    Q.error = '';
    // A reload of a page that had joined finds the place again (asking is idempotent).
    if (queued() && sessionStorage.getItem(joinedKey())) ask(false).then((p) => p && watch()).catch(() => {});
  }
  const show = queued();
  if (!show && !$('queue')) return;
  const el = panel();
  el.hidden = !show;
  if (!show) return;
  for (const d of el.querySelectorAll('[data-q]')) setText(d, t(`q.${d.dataset.q}`));
  const btn = el.querySelector('[data-testid="queue-join"]');
  const p = Q.place;
  btn.hidden = Boolean(p);
  btn.disabled = Boolean(Q.busy);
  setText(btn, t(Q.busy === 'solving' ? 'q.solving' : Q.busy ? 'q.joining' : 'q.join'));
  el.querySelector('.queue-place').hidden = !p;
  const st = el.querySelector('[data-testid="q-state"]');
  el.dataset.state = p ? p.state : '';
  if (p) {
    setText(el.querySelector('[data-testid="q-position"]'), p.position == null ? t('q.undrawn') : String(p.position));
    setText(el.querySelector('[data-testid="q-ahead"]'), String(p.ahead));
    setText(el.querySelector('[data-testid="q-eta"]'), p.eta_ms == null ? '–' : fmtWait(p.eta_ms));
    const time = p.admission_expires_at ? new Date(p.admission_expires_at).toLocaleTimeString(locale()) : '';
    setText(st, t(`q.state.${p.state}`, { time }));
  } else {
    setText(st, Q.error ? t('q.error', { msg: Q.error }) : '');
  }
}
