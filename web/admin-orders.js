// The dashboard's order lifecycle view for the selected sale: units held and sold now,
// and the orders that entered each state (reserved, confirmed, expired, cancelled,
// refunded) in all and per second over time, from two series of /metrics:
//   seckill_sale_units{sale,kind="held"|"sold"|"remaining"}       gauges, in units
//   seckill_sale_orders_total{sale,state}                            counters, in orders
// Self-contained: admin.js hands it each scrape's samples and asks it to draw.
import { lang, t } from './i18n.js';

export const STATES = ['reserved', 'confirmed', 'expired', 'cancelled', 'refunded'];
const COLORS = {
  reserved: '#e4393c',
  confirmed: '#1a7f37',
  expired: '#b35900',
  cancelled: '#6e6e73',
  refunded: '#6a4bc4',
};
const HISTORY_MS = 5 * 60 * 1000;

const $ = (id) => document.getElementById(id);

/** The sale's lifecycle figures in one scrape's samples ({name, labels, value}). */
export function lifecycleSnapshot(samples, sale) {
  const snap = { held: null, sold: null, entered: {} };
  for (const x of samples) {
    if (x.labels.sale !== sale) continue;
    if (x.name === 'seckill_sale_units') {
      if (x.labels.kind === 'held') snap.held = x.value;
      else if (x.labels.kind === 'sold') snap.sold = x.value;
    } else if (x.name === 'seckill_sale_orders_total' && STATES.includes(x.labels.state)) {
      snap.entered[x.labels.state] = x.value;
    }
  }
  return snap;
}

const fmtCount = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString() : '–');
const fmtRate = (v) => (!Number.isFinite(v) ? '–' : v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString());

export class LifecycleView {
  constructor() {
    this.reset();
  }

  reset() {
    this.last = null; // {t, snap}
    this.rates = Object.fromEntries(STATES.map((s) => [s, []])); // [[t, per second]]
    this.held = []; // [[t, units]]
  }

  /** Adds one scrape taken at `now` (ms). A counter that went down belongs to a
   *  restarted server: that interval's rate is its new value. */
  push(snap, now) {
    const prev = this.last;
    this.last = { t: now, snap };
    if (snap.held !== null) this.held.push([now, snap.held]);
    if (prev) {
      const dt = (now - prev.t) / 1000;
      for (const s of STATES) {
        const a = prev.snap.entered[s] || 0;
        const b = snap.entered[s] || 0;
        if (dt > 0) this.rates[s].push([now, (b >= a ? b - a : b) / dt]);
      }
    }
    for (const h of [...Object.values(this.rates), this.held])
      while (h.length && h[0][0] < now - HISTORY_MS) h.shift();
  }

  render() {
    const snap = this.last && this.last.snap;
    const box = $('lifecycle');
    if (!box) return;
    $('l-held').textContent = snap ? fmtCount(snap.held) : '–';
    $('l-sold').textContent = snap ? fmtCount(snap.sold) : '–';
    for (const s of STATES) {
      $(`l-${s}`).textContent = snap ? fmtCount(snap.entered[s]) : '–';
      const r = this.rates[s];
      $(`l-rate-${s}`).textContent = t('perSecond', { v: r.length ? fmtRate(r[r.length - 1][1]) : '–' });
    }
    drawLines($('c-held'), { held: this.held }, { held: COLORS.reserved });
    drawLines($('c-life'), this.rates, COLORS);
    const legend = $('l-legend');
    if (legend.dataset.lang !== lang()) {
      legend.dataset.lang = lang();
      legend.replaceChildren(
        ...STATES.map((s) => {
          const span = document.createElement('span');
          span.className = 'key';
          span.style.setProperty('--key', COLORS[s]);
          span.textContent = t(`life.${s}`);
          return span;
        }),
      );
    }
  }
}

/** Draws one line per series ({name: [[t, v]]}) on a shared scale over the last minutes;
 *  records each series' last and highest value on the canvas for tests. */
function drawLines(canvas, series, colors) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(100, canvas.clientWidth || 300);
  const h = canvas.clientHeight || 80;
  if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
  if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  let max = 0;
  let end = 0;
  let start = Infinity;
  const stats = {};
  for (const [name, pts] of Object.entries(series)) {
    let m = 0;
    for (const [tm, v] of pts) {
      m = Math.max(m, v);
      end = Math.max(end, tm);
      start = Math.min(start, tm);
    }
    max = Math.max(max, m);
    stats[name] = { max: m, last: pts.length ? pts[pts.length - 1][1] : 0, points: pts.length };
  }
  canvas.dataset.series = JSON.stringify(stats);
  if (!end) return;
  const span = Math.min(HISTORY_MS, Math.max(60000, Math.ceil((end - start) / 60000) * 60000));
  const top = max > 0 ? max * 1.15 : 1;
  const x = (tm) => w - ((end - tm) / span) * w;
  const y = (v) => h - 2 - (v / top) * (h - 14);
  for (const [name, pts] of Object.entries(series)) {
    if (pts.length < 2) continue;
    g.beginPath();
    pts.forEach(([tm, v], i) => (i ? g.lineTo(x(tm), y(v)) : g.moveTo(x(tm), y(v))));
    g.strokeStyle = colors[name];
    g.lineWidth = 1.5;
    g.stroke();
  }
  g.fillStyle = '#6e6e73';
  g.font = '10px system-ui, sans-serif';
  g.fillText(`max ${fmtRate(max)}`, 4, 10);
}
