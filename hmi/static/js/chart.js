// Canvas trend chart: min-max bands with a mean line per series, one y-axis per unit (or one
// normalised axis), a time axis in the site's time zone, wheel/drag-select zoom, pan, hover
// readout, a live tail.  Standalone: no imports; the caller passes formatting and texts.
//
//   const chart = new TrendChart(canvas, {timeZone, locale, fmtValue, onView, texts});
//   chart.setView(fromMs, toMs, {home: true});
//   chart.setSeries([{name, label, unit, unitLabel, color, gapMs, stepMs, points: [{t, lo, hi, v}]}]);
//   fmtValue(value, unit, withUnit) -> text for the hover readout
//   chart.append(name, tMs, value);            // live samples, drawn after the history
//   onView({from, to, reason})                 // after a zoom/pan ('zoom'|'pan'|'reset'), debounced
//
// Times are milliseconds since the epoch everywhere.

export const PALETTE = ['#1f4e79', '#7a4a1e', '#2e6b5e', '#5b4a8a', '#6b6b24', '#3d3d3d', '#8a5a6b', '#2f6f8f'];

const MIN_SPAN = 10e3;                 // the narrowest zoom: 10 s
const MAX_SPAN = 400 * 86400e3;        // the widest: 400 days
const SEC = 1e3, MIN = 60e3, HOUR = 3600e3, DAY = 86400e3;

// ---------------------------------------------------------------- time zone helpers

const partFormats = new Map();

function partsFormat(timeZone) {
  let f = partFormats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
      hour: 'numeric', minute: 'numeric', second: 'numeric', weekday: 'short',
    });
    partFormats.set(timeZone, f);
  }
  return f;
}

/** Wall-clock fields of `t` in `timeZone`: {year, month (1-12), day, hour, minute, second, weekday (0=Mon)}. */
export function zoneParts(t, timeZone) {
  const out = {};
  for (const p of partsFormat(timeZone).formatToParts(new Date(t))) {
    if (p.type === 'weekday') out.weekday = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(p.value);
    else if (p.type !== 'literal' && p.type !== 'dayPeriod') out[p.type] = Number(p.value);
  }
  if (out.hour === 24) out.hour = 0;
  return out;
}

/** Offset of `timeZone` from UTC at instant `t`, in ms (Moscow: +3 h). */
export function zoneOffset(t, timeZone) {
  if (!timeZone) return -new Date(t).getTimezoneOffset() * MIN;
  const p = zoneParts(t, timeZone);
  const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return wall - Math.floor(t / 1000) * 1000;
}

/** The instant whose wall-clock time in `timeZone` is `wall` (ms of a UTC-based wall clock). */
export function wallToUtc(wall, timeZone) {
  let t = wall - zoneOffset(wall, timeZone);
  t = wall - zoneOffset(t, timeZone);
  return t;
}

/** Value for an <input type="datetime-local"> showing instant `t` in `timeZone`. */
export function toLocalInput(t, timeZone) {
  const d = new Date(t + zoneOffset(t, timeZone));
  return d.toISOString().slice(0, 16);
}

/** Instant of an <input type="datetime-local"> value read in `timeZone`; NaN when empty/bad. */
export function fromLocalInput(value, timeZone) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value || '');
  if (!m) return NaN;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  return wallToUtc(wall, timeZone);
}

// ---------------------------------------------------------------- ticks

function niceStep(raw) {
  const exp = Math.floor(Math.log10(raw));
  const base = 10 ** exp;
  for (const m of [1, 2, 2.5, 5, 10]) if (m * base >= raw) return m * base;
  return 10 * base;
}

function valueTicks(lo, hi, count) {
  const step = niceStep((hi - lo) / Math.max(1, count));
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return {ticks: out, step};
}

// Time steps: [kind, size, ms]; kind 'ms' aligns in wall-clock ms, 'week' on Mondays, 'month'/'year' by calendar.
const TIME_STEPS = [
  ['ms', 1, SEC], ['ms', 2, 2 * SEC], ['ms', 5, 5 * SEC], ['ms', 10, 10 * SEC], ['ms', 15, 15 * SEC], ['ms', 30, 30 * SEC],
  ['ms', 1, MIN], ['ms', 2, 2 * MIN], ['ms', 5, 5 * MIN], ['ms', 10, 10 * MIN], ['ms', 15, 15 * MIN], ['ms', 30, 30 * MIN],
  ['ms', 1, HOUR], ['ms', 2, 2 * HOUR], ['ms', 3, 3 * HOUR], ['ms', 6, 6 * HOUR], ['ms', 12, 12 * HOUR],
  ['ms', 1, DAY], ['ms', 2, 2 * DAY], ['week', 1, 7 * DAY], ['month', 1, 30 * DAY], ['month', 3, 91 * DAY],
  ['year', 1, 365 * DAY],
];

/** Tick instants between from and to, at least `minPx` (a number, or step ms → px) apart over `width` px,
 *  aligned in the zone's wall clock. */
export function timeTicks(from, to, width, minPx, timeZone) {
  const span = to - from;
  const need = typeof minPx === 'function' ? minPx : () => minPx;
  const step = TIME_STEPS.find(s => s[2] / span * width >= need(s[2])) || TIME_STEPS[TIME_STEPS.length - 1];
  const [kind, size, ms] = step;
  const out = [];
  const off = zoneOffset(from, timeZone);
  if (kind === 'ms') {
    let wall = Math.ceil((from + off) / ms) * ms;
    for (let i = 0; i < 500; i++, wall += ms) {
      const t = ms >= HOUR ? wallToUtc(wall, timeZone) : wall - off;
      if (t > to) break;
      if (t >= from) out.push(t);
    }
  } else if (kind === 'week') {
    const p = zoneParts(from, timeZone);
    let wall = Date.UTC(p.year, p.month - 1, p.day) - p.weekday * DAY;
    for (let i = 0; i < 500; i++, wall += 7 * DAY) {
      const t = wallToUtc(wall, timeZone);
      if (t > to) break;
      if (t >= from) out.push(t);
    }
  } else {
    const p = zoneParts(from, timeZone);
    let y = p.year, m = kind === 'year' ? 0 : Math.floor((p.month - 1) / size) * size;
    for (let i = 0; i < 500; i++) {
      const t = wallToUtc(Date.UTC(y, m, 1), timeZone);
      if (t > to) break;
      if (t >= from) out.push(t);
      if (kind === 'year') y += 1; else { m += size; if (m >= 12) { m -= 12; y += 1; } }
    }
  }
  return {ticks: out, step: ms, kind};
}

// ---------------------------------------------------------------- the chart

function bsearch(points, t) {
  // index of the first point with .t >= t
  let lo = 0, hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid].t < t) lo = mid + 1; else hi = mid;
  }
  return lo;
}

function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }

function hexToRgba(hex, alpha) {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) return hex;
  return `rgba(${parseInt(m[1], 16)},${parseInt(m[2], 16)},${parseInt(m[3], 16)},${alpha})`;
}

export class TrendChart {
  constructor(canvas, opts = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.opts = opts;
    this.timeZone = opts.timeZone || undefined;
    this.locale = opts.locale || 'ru';
    this.fmtValue = opts.fmtValue || ((v) => (v == null ? '—' : String(+v.toPrecision(6))));
    this.texts = Object.assign({min: 'min', max: 'max'}, opts.texts || {});
    this.series = [];
    this.live = new Map();          // name -> [{t, v}]
    this.from = Date.now() - HOUR;
    this.to = Date.now();
    this.home = [this.from, this.to];
    this.normalised = false;
    this.message = null;
    this.hoverX = null;
    this.sel = null;                // {x0, x1} during drag-select
    this.drag = null;
    this.pointers = new Map();
    this.layout = null;
    this.frame = 0;
    this.viewTimer = 0;

    const wrap = canvas.parentElement;
    this.readout = document.createElement('div');
    this.readout.className = 'trend-readout';
    this.readout.hidden = true;
    wrap.appendChild(this.readout);

    if (!canvas.hasAttribute('tabindex')) canvas.tabIndex = 0;
    canvas.style.touchAction = 'none';
    this._handlers = {
      wheel: (e) => this._onWheel(e),
      pointerdown: (e) => this._onDown(e),
      pointermove: (e) => this._onMove(e),
      pointerup: (e) => this._onUp(e),
      pointercancel: (e) => this._onUp(e, true),
      pointerleave: (e) => { if (e.pointerType === 'mouse' && !this.drag) { this.hoverX = null; this._hideReadout(); this.redraw(); } },
      dblclick: (e) => { e.preventDefault(); this.reset(); },
      keydown: (e) => this._onKey(e),
      contextmenu: (e) => { if (this.drag) e.preventDefault(); },
    };
    for (const [ev, fn] of Object.entries(this._handlers)) {
      canvas.addEventListener(ev, fn, ev === 'wheel' ? {passive: false} : undefined);
    }
    this._ro = new ResizeObserver(() => this.redraw());
    this._ro.observe(wrap);
    // A window moved to a screen of another pixel ratio re-renders crisp.
    this._dprWatch = () => {
      const mq = matchMedia(`(resolution: ${devicePixelRatio}dppx)`);
      const fn = () => { this.redraw(); this._dprWatch(); };
      mq.addEventListener('change', fn, {once: true});
      this._dprOff = () => mq.removeEventListener('change', fn);
    };
    this._dprWatch();
  }

  destroy() {
    for (const [ev, fn] of Object.entries(this._handlers)) this.canvas.removeEventListener(ev, fn);
    this._ro.disconnect();
    if (this._dprOff) this._dprOff();
    cancelAnimationFrame(this.frame);
    clearTimeout(this.viewTimer);
    this.readout.remove();
  }

  // ------------------------------------------------------------ public API

  setView(from, to, {home = false, notify = false, reason = 'zoom'} = {}) {
    let span = clamp(to - from, MIN_SPAN, MAX_SPAN);
    const mid = (from + to) / 2;
    if (to - from !== span) { from = mid - span / 2; to = mid + span / 2; }
    this.from = from;
    this.to = to;
    if (home) this.home = [from, to];
    this.redraw();
    if (notify) this._notify(reason);
  }

  reset() {
    this.setView(this.home[0], this.home[1], {notify: true, reason: 'reset'});
  }

  setSeries(list) {
    this.series = list.map((s, i) => ({color: PALETTE[i % PALETTE.length], ...s, points: s.points || []}));
    for (const name of [...this.live.keys()]) if (!this.series.some(s => s.name === name)) this.live.delete(name);
    this.redraw();
  }

  /** Replace one series' history points (the others stay). */
  updateSeries(name, points, extra = {}) {
    const s = this.series.find(x => x.name === name);
    if (!s) return;
    s.points = points;
    Object.assign(s, extra);
    // live samples older than the history's end are covered by it now
    const tail = this.live.get(name);
    if (tail && points.length) {
      const last = points[points.length - 1].t;
      this.live.set(name, tail.filter(p => p.t > last));
    }
    this.redraw();
  }

  append(name, t, v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return;
    let tail = this.live.get(name);
    if (!tail) { tail = []; this.live.set(name, tail); }
    if (tail.length && tail[tail.length - 1].t >= t) return;
    tail.push({t, v});
    if (tail.length > 20000) tail.splice(0, tail.length - 20000);
    this.redraw();
  }

  setNormalised(on) { this.normalised = !!on; this.redraw(); }

  setMessage(text) { this.message = text || null; this.redraw(); }

  redraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this._draw(); });
  }

  // ------------------------------------------------------------ geometry

  _xOf(t) { const L = this.layout; return L.x0 + (t - this.from) / (this.to - this.from) * (L.x1 - L.x0); }
  _tOf(x) { const L = this.layout; return this.from + (x - L.x0) / (L.x1 - L.x0) * (this.to - this.from); }

  _localX(e) {
    const r = this.canvas.getBoundingClientRect();
    return {x: e.clientX - r.left, y: e.clientY - r.top};
  }

  _notify(reason) {
    clearTimeout(this.viewTimer);
    this.viewTimer = setTimeout(() => {
      if (this.opts.onView) this.opts.onView({from: this.from, to: this.to, reason});
    }, reason === 'reset' ? 0 : 300);
  }

  _zoomAt(x, factor, reason = 'zoom') {
    if (!this.layout) return;
    const L = this.layout;
    const t = this._tOf(clamp(x, L.x0, L.x1));
    const span = clamp((this.to - this.from) * factor, MIN_SPAN, MAX_SPAN);
    const k = (t - this.from) / (this.to - this.from);
    this.setView(t - k * span, t - k * span + span, {notify: true, reason});
  }

  _panBy(dxPx) {
    if (!this.layout) return;
    const L = this.layout;
    const dt = dxPx / (L.x1 - L.x0) * (this.to - this.from);
    this.setView(this.from - dt, this.to - dt, {notify: true, reason: 'pan'});
  }

  /** Pan by a fraction of the visible span (positive = later). */
  pan(fraction) {
    const dt = (this.to - this.from) * fraction;
    this.setView(this.from + dt, this.to + dt, {notify: true, reason: 'pan'});
  }

  zoom(factor) {
    if (!this.layout) return;
    this._zoomAt((this.layout.x0 + this.layout.x1) / 2, factor);
  }

  // ------------------------------------------------------------ input

  _onWheel(e) {
    e.preventDefault();
    const {x} = this._localX(e);
    if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      this._panBy(-(e.deltaX || e.deltaY) / 2);
      return;
    }
    const unit = e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? 400 : 1;
    this._zoomAt(x, Math.pow(1.0015, e.deltaY * unit));
  }

  _onDown(e) {
    const p = this._localX(e);
    this.canvas.focus({preventScroll: true});
    this.pointers.set(e.pointerId, p);
    try { this.canvas.setPointerCapture(e.pointerId); } catch (_) { /* synthetic events */ }
    if (this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      this.drag = {mode: 'pinch', dist: Math.abs(a.x - b.x) || 1, mid: (a.x + b.x) / 2};
      this.sel = null;
      return;
    }
    const pan = e.pointerType === 'touch' || e.shiftKey || e.button === 1 || e.button === 2 || e.ctrlKey;
    this.drag = {mode: pan ? 'pan' : 'select', x: p.x, lastX: p.x};
    if (!pan) this.sel = null;
    if (e.button === 1) e.preventDefault();
  }

  _onMove(e) {
    const p = this._localX(e);
    if (this.pointers.has(e.pointerId)) this.pointers.set(e.pointerId, p);
    const d = this.drag;
    if (d && d.mode === 'pinch' && this.pointers.size >= 2) {
      const [a, b] = [...this.pointers.values()];
      const dist = Math.abs(a.x - b.x) || 1;
      this._zoomAt((a.x + b.x) / 2, d.dist / dist, 'zoom');
      d.dist = dist;
      return;
    }
    if (d && d.mode === 'pan') {
      this._panBy(p.x - d.lastX);
      d.lastX = p.x;
      return;
    }
    if (d && d.mode === 'select') {
      if (Math.abs(p.x - d.x) > 3) this.sel = {x0: d.x, x1: p.x};
      this.hoverX = p.x;
      this.redraw();
      return;
    }
    if (e.pointerType === 'mouse' || e.pointerType === 'pen') {
      this.hoverX = p.x;
      this.redraw();
    }
  }

  _onUp(e, cancelled = false) {
    const p = this._localX(e);
    this.pointers.delete(e.pointerId);
    const d = this.drag;
    if (this.pointers.size > 0 && d && d.mode === 'pinch') { this.drag = {mode: 'pan', lastX: [...this.pointers.values()][0].x}; return; }
    this.drag = null;
    if (!d) return;
    if (d.mode === 'select') {
      const sel = this.sel;
      this.sel = null;
      if (!cancelled && sel && Math.abs(sel.x1 - sel.x0) > 5 && this.layout) {
        const L = this.layout;
        const a = this._tOf(clamp(Math.min(sel.x0, sel.x1), L.x0, L.x1));
        const b = this._tOf(clamp(Math.max(sel.x0, sel.x1), L.x0, L.x1));
        this.setView(a, b, {notify: true, reason: 'zoom'});
      } else if (!cancelled && e.pointerType !== 'mouse') {
        this.hoverX = p.x;       // a tap shows the readout
      }
      this.redraw();
    } else if (e.pointerType === 'touch' && Math.abs(p.x - d.x) < 4) {
      this.hoverX = p.x;         // a tap without movement shows the readout
      this.redraw();
    }
  }

  _onKey(e) {
    const k = e.key;
    if (k === 'ArrowLeft') this.pan(-0.25);
    else if (k === 'ArrowRight') this.pan(0.25);
    else if (k === '+' || k === '=') this.zoom(0.5);
    else if (k === '-' || k === '_') this.zoom(2);
    else if (k === 'Home' || k === 'Escape') { if (this.sel) { this.sel = null; this.drag = null; this.redraw(); } else this.reset(); }
    else return;
    e.preventDefault();
  }

  // ------------------------------------------------------------ drawing

  _fmtTick(t, kind, step, withDate) {
    const p = zoneParts(t, this.timeZone);
    const pad = (n) => String(n).padStart(2, '0');
    const date = this.locale === 'en' ? `${pad(p.month)}-${pad(p.day)}` : `${pad(p.day)}.${pad(p.month)}`;
    if (kind === 'year') return [String(p.year), ''];
    if (kind === 'month') {
      const name = new Intl.DateTimeFormat(this.locale, {month: 'short', timeZone: this.timeZone}).format(new Date(t));
      return [name, p.month === 1 || withDate ? String(p.year) : ''];
    }
    if (step >= DAY) return [date, withDate ? String(p.year) : ''];
    const hm = `${pad(p.hour)}:${pad(p.minute)}` + (step < MIN ? `:${pad(p.second)}` : '');
    return [hm, withDate ? date : ''];
  }

  _visible(points, pad) {
    // slice of points within [from - pad, to + pad], one beyond each end so lines reach the edges
    const a = Math.max(0, bsearch(points, this.from - pad) - 1);
    const b = Math.min(points.length, bsearch(points, this.to + pad) + 1);
    return [a, b];
  }

  _axes(ctx, fontPx) {
    // Group series by unit; each group is an axis with its range over the visible data.
    const groups = new Map();
    for (const s of this.series) {
      const key = this.normalised ? '%' : (s.unit || '');
      if (!groups.has(key)) {
        groups.set(key, {unit: this.normalised ? '%' : (s.unitLabel ?? s.unit ?? ''), series: [], lo: Infinity, hi: -Infinity, color: s.color});
      }
      groups.get(key).series.push(s);
    }
    for (const s of this.series) {
      let lo = Infinity, hi = -Infinity;
      const pad = s.gapMs || 0;
      const [a, b] = this._visible(s.points, pad);
      for (let i = a; i < b; i++) {
        const p = s.points[i];
        const pl = p.lo ?? p.v, ph = p.hi ?? p.v;
        if (pl != null && pl < lo) lo = pl;
        if (ph != null && ph > hi) hi = ph;
      }
      const tail = this.live.get(s.name) || [];
      for (const p of tail) if (p.t >= this.from && p.t <= this.to) { lo = Math.min(lo, p.v); hi = Math.max(hi, p.v); }
      s._lo = lo; s._hi = hi;
      const g = groups.get(this.normalised ? '%' : (s.unit || ''));
      if (this.normalised) { g.lo = 0; g.hi = 100; } else { g.lo = Math.min(g.lo, lo); g.hi = Math.max(g.hi, hi); }
    }
    const axes = [...groups.values()];
    for (const g of axes) {
      if (!Number.isFinite(g.lo)) { g.lo = 0; g.hi = 1; g.empty = true; }
      if (g.hi - g.lo < 1e-9) { const d = Math.abs(g.hi) * 0.05 || 1; g.lo -= d; g.hi += d; }
      const m = (g.hi - g.lo) * 0.06;
      if (!this.normalised) { g.lo -= m; g.hi += m; }
    }
    return axes;
  }

  _draw() {
    const canvas = this.canvas, ctx = this.ctx;
    const wrap = canvas.parentElement;
    const cssW = Math.max(50, canvas.clientWidth || wrap.clientWidth);
    const cssH = Math.max(50, canvas.clientHeight || wrap.clientHeight);
    const dpr = window.devicePixelRatio || 1;
    const pw = Math.round(cssW * dpr), ph = Math.round(cssH * dpr);
    if (canvas.width !== pw || canvas.height !== ph) { canvas.width = pw; canvas.height = ph; }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const cs = getComputedStyle(canvas);
    const fontPx = parseFloat(cs.fontSize) || 14;
    const family = cs.fontFamily || 'sans-serif';
    const ink = cs.color || '#1a1a1a';
    const font = `${fontPx}px ${family}`;
    ctx.font = font;
    ctx.clearRect(0, 0, cssW, cssH);

    const axes = this._axes(ctx, fontPx);
    const plotTop = Math.round(fontPx * 1.6);
    const plotBottom = cssH - Math.round(fontPx * 2.9);
    const tickCount = Math.max(2, Math.floor((plotBottom - plotTop) / (fontPx * 3)));
    // axis widths from their tick labels
    let left = 0, right = 0;
    axes.forEach((g, i) => {
      const {ticks, step} = valueTicks(g.lo, g.hi, tickCount);
      g.ticks = ticks; g.step = step;
      g.labels = ticks.map(v => this._fmtAxis(v, step));
      const w = Math.max(ctx.measureText(g.unit).width, ...g.labels.map(s => ctx.measureText(s).width), fontPx * 2) + fontPx * 0.9;
      g.width = Math.ceil(w);
      g.side = i % 2 === 0 ? 'left' : 'right';
      if (g.side === 'left') { g.pos = left; left += g.width; } else { g.pos = right; right += g.width; }
    });
    if (!axes.length) left = fontPx * 3;
    if (!right) right = fontPx;
    const L = this.layout = {x0: left, x1: cssW - right, y0: plotTop, y1: plotBottom, axes, cssW, cssH, fontPx};
    const yOf = (g, v) => L.y1 - (v - g.lo) / (g.hi - g.lo) * (L.y1 - L.y0);

    // plot area
    ctx.fillStyle = cs.getPropertyValue('--chart-bg').trim() || '#ececec';
    ctx.fillRect(L.x0, L.y0, L.x1 - L.x0, L.y1 - L.y0);
    const grid = cs.getPropertyValue('--chart-grid').trim() || '#c4c4c4';

    // time grid and labels
    // "HH:MM" over a date needs more room than "DD.MM"
    const tt = timeTicks(this.from, this.to, L.x1 - L.x0, (step) => fontPx * (step >= DAY ? 4.2 : 6.5), this.timeZone);
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    ctx.fillStyle = ink;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    let prevDay = null;
    tt.ticks.forEach((t, i) => {
      const x = Math.round(this._xOf(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, L.y0); ctx.lineTo(x, L.y1); ctx.stroke();
      const p = zoneParts(t, this.timeZone);
      const dayKey = tt.step >= DAY ? p.year : `${p.year}-${p.month}-${p.day}`;
      const [a, b] = this._fmtTick(t, tt.kind, tt.step, i === 0 || dayKey !== prevDay);
      prevDay = dayKey;
      ctx.fillText(a, x, L.y1 + fontPx * 0.35);
      if (b) ctx.fillText(b, x, L.y1 + fontPx * 1.45);
    });

    // value grids (the first axis only) and axes
    axes.forEach((g, gi) => {
      const x = g.side === 'left' ? L.x0 - g.pos : L.x1 + g.pos;
      ctx.fillStyle = axes.length > 1 ? g.color : ink;
      ctx.textBaseline = 'middle';
      ctx.textAlign = g.side === 'left' ? 'right' : 'left';
      const tx = g.side === 'left' ? x - fontPx * 0.45 : x + fontPx * 0.45;
      g.ticks.forEach((v, i) => {
        const y = Math.round(yOf(g, v)) + 0.5;
        if (gi === 0) {
          ctx.strokeStyle = grid;
          ctx.beginPath(); ctx.moveTo(L.x0, y); ctx.lineTo(L.x1, y); ctx.stroke();
        }
        if (y >= L.y0 - 1 && y <= L.y1 + 1) ctx.fillText(g.labels[i], tx, y);
      });
      ctx.textBaseline = 'bottom';
      ctx.fillText(g.unit, tx, L.y0 - fontPx * 0.3);
      ctx.strokeStyle = axes.length > 1 ? g.color : '#8a8a8a';
      ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, L.y0); ctx.lineTo(Math.round(x) + 0.5, L.y1); ctx.stroke();
    });

    // the data, clipped to the plot area
    ctx.save();
    ctx.beginPath(); ctx.rect(L.x0, L.y0, L.x1 - L.x0, L.y1 - L.y0); ctx.clip();
    for (const s of this.series) {
      const g = axes.find(a => a.series.includes(s));
      if (!g) continue;
      let map = (v) => yOf(g, v);
      if (this.normalised) {
        const lo = s._lo, hi = s._hi;
        const span = hi - lo > 1e-12 ? hi - lo : 1;
        const base = hi - lo > 1e-12 ? lo : lo - 0.5;
        map = (v) => yOf(g, (v - base) / span * 100);
      }
      s._map = map;
      this._drawSeries(ctx, s, map);
    }
    // now
    const now = Date.now();
    if (now > this.from && now < this.to) {
      const x = Math.round(this._xOf(now)) + 0.5;
      ctx.strokeStyle = '#6a6a6a';
      ctx.setLineDash([4, 4]);
      ctx.beginPath(); ctx.moveTo(x, L.y0); ctx.lineTo(x, L.y1); ctx.stroke();
      ctx.setLineDash([]);
    }
    // drag selection
    if (this.sel) {
      const a = clamp(Math.min(this.sel.x0, this.sel.x1), L.x0, L.x1), b = clamp(Math.max(this.sel.x0, this.sel.x1), L.x0, L.x1);
      ctx.fillStyle = 'rgba(31,78,121,0.15)';
      ctx.fillRect(a, L.y0, b - a, L.y1 - L.y0);
      ctx.strokeStyle = 'rgba(31,78,121,0.7)';
      ctx.strokeRect(a + 0.5, L.y0 + 0.5, b - a - 1, L.y1 - L.y0 - 1);
    }
    // hover cursor
    if (this.hoverX != null && this.hoverX >= L.x0 && this.hoverX <= L.x1) {
      const x = Math.round(this.hoverX) + 0.5;
      ctx.strokeStyle = '#303030';
      ctx.beginPath(); ctx.moveTo(x, L.y0); ctx.lineTo(x, L.y1); ctx.stroke();
    }
    ctx.restore();

    ctx.strokeStyle = '#8a8a8a';
    ctx.strokeRect(L.x0 + 0.5, L.y0 + 0.5, L.x1 - L.x0 - 1, L.y1 - L.y0 - 1);

    if (this.message) {
      ctx.fillStyle = ink;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.font = `${Math.round(fontPx * 1.2)}px ${family}`;
      ctx.fillText(this.message, (L.x0 + L.x1) / 2, (L.y0 + L.y1) / 2, L.x1 - L.x0 - 20);
      ctx.font = font;
    }
    this._updateReadout();
  }

  _fmtAxis(v, step) {
    const digits = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
    return new Intl.NumberFormat(this.locale === 'en' ? 'en-US' : 'ru-RU', {
      minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: Math.abs(v) >= 1e4,
    }).format(v);
  }

  // Points closer than `stepMs` are joined straight; farther apart (a historian that writes on
  // change holds the value meanwhile) the line holds the value, then steps; beyond `gapMs` it breaks.
  _drawSeries(ctx, s, map) {
    const gap = s.gapMs || Infinity;
    const step = s.stepMs || gap;
    const hist = s.points;
    const [a, b] = this._visible(hist, gap === Infinity ? 0 : gap);
    const tail = (this.live.get(s.name) || []).filter(p => !hist.length || p.t > hist[hist.length - 1].t);
    const pts = hist.slice(a, b).concat(tail.filter(p => p.t >= this.from - gap && p.t <= this.to + gap));
    // the min-max band over runs of adjacent buckets
    ctx.fillStyle = hexToRgba(s.color, 0.22);
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        ctx.beginPath();
        run.forEach((p, i) => { const x = this._xOf(p.t); const y = map(p.hi); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
        for (let i = run.length - 1; i >= 0; i--) ctx.lineTo(this._xOf(run[i].t), map(run[i].lo));
        ctx.closePath();
        ctx.fill();
      } else if (run.length === 1 && run[0].hi !== run[0].lo) {
        const x = this._xOf(run[0].t);
        ctx.fillRect(x - 1.5, map(run[0].hi), 3, map(run[0].lo) - map(run[0].hi));
      }
      run = [];
    };
    for (const p of pts) {
      if (p.lo == null || p.hi == null) { flush(); continue; }
      if (run.length && p.t - run[run.length - 1].t > step) flush();
      run.push(p);
    }
    flush();
    // the mean (or raw/live value) line
    const lw = Math.max(1.6, (this.layout ? this.layout.fontPx : 14) / 8);   // thicker on a big wall screen
    ctx.strokeStyle = s.color;
    ctx.lineWidth = lw;
    ctx.lineJoin = 'round';
    ctx.beginPath();
    const lone = [];
    let prev = null, joined = false;
    for (const p of pts) {
      if (p.v == null) { if (prev && !joined) lone.push(prev); prev = null; continue; }
      const x = this._xOf(p.t), y = map(p.v);
      if (prev && p.t - prev.t <= gap) {
        if (p.t - prev.t > step) ctx.lineTo(x, map(prev.v));
        ctx.lineTo(x, y);
        joined = true;
      } else {
        if (prev && !joined) lone.push(prev);
        ctx.moveTo(x, y);
        joined = false;
      }
      prev = p;
    }
    if (prev && !joined) lone.push(prev);
    // the last value holds until now (or the next sample), within the gap
    const now = Date.now();
    if (prev && now - prev.t <= gap && now > prev.t) {
      ctx.moveTo(this._xOf(prev.t), map(prev.v));
      ctx.lineTo(this._xOf(now), map(prev.v));
    }
    ctx.stroke();
    ctx.fillStyle = s.color;
    for (const p of lone) {
      ctx.beginPath(); ctx.arc(this._xOf(p.t), map(p.v), lw * 1.3, 0, Math.PI * 2); ctx.fill();
    }
    ctx.lineWidth = 1;
  }

  /** The sample shown at time t: the last one at or before t while it holds (within gapMs), else one within 12 px. */
  _nearest(s, t) {
    const gap = s.gapMs || Infinity;
    const hist = s.points;
    const tail = this.live.get(s.name) || [];
    let before = null, after = null;
    const i = bsearch(hist, t);
    if (i > 0) before = hist[i - 1];
    if (i < hist.length) after = hist[i];
    const j = bsearch(tail, t);
    if (j > 0 && (!before || tail[j - 1].t > before.t)) before = tail[j - 1];
    if (j < tail.length && (!after || tail[j].t < after.t)) after = tail[j];
    const L = this.layout;
    const tol = 12 / ((L.x1 - L.x0) / (this.to - this.from));
    if (after && after.v != null && after.t - t <= tol && (!before || after.t - t < t - before.t)) return after;
    if (before && before.v != null && t - before.t <= Math.min(gap, Math.max(tol, t <= Date.now() ? gap : tol))) return before;
    return null;
  }

  _hideReadout() { this.readout.hidden = true; }

  _updateReadout() {
    const L = this.layout;
    if (this.hoverX == null || !L || this.hoverX < L.x0 || this.hoverX > L.x1 || !this.series.length || this.drag?.mode === 'pan') {
      this._hideReadout();
      return;
    }
    const t = this._tOf(this.hoverX);
    const r = this.readout;
    r.textContent = '';
    const head = document.createElement('div');
    head.className = 'trend-readout-time';
    const p = zoneParts(t, this.timeZone);
    const pad = (n) => String(n).padStart(2, '0');
    head.textContent = (this.locale === 'en'
      ? `${p.year}-${pad(p.month)}-${pad(p.day)}`
      : `${pad(p.day)}.${pad(p.month)}.${p.year}`) + ` ${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
    r.appendChild(head);
    for (const s of this.series) {
      const n = this._nearest(s, t);
      const row = document.createElement('div');
      row.className = 'trend-readout-row';
      const sw = document.createElement('span');
      sw.className = 'trend-swatch';
      sw.style.background = s.color;
      const name = document.createElement('span');
      name.className = 'trend-readout-name';
      name.textContent = s.label || s.name;
      const val = document.createElement('span');
      val.className = 'trend-readout-value';
      if (!n) val.textContent = '—';
      else {
        let text = this.fmtValue(n.v, s.unit, true);
        if (n.lo != null && n.hi != null && n.hi !== n.lo) {
          text += ` (${this.texts.min} ${this.fmtValue(n.lo, s.unit, false)}, ${this.texts.max} ${this.fmtValue(n.hi, s.unit, false)})`;
        }
        val.textContent = text;
      }
      row.append(sw, name, val);
      r.appendChild(row);
    }
    r.hidden = false;
    // place it beside the cursor, inside the wrapper
    const wrapW = L.cssW;
    const w = r.offsetWidth;
    let x = this.hoverX + 14;
    if (x + w > wrapW - 4) x = this.hoverX - 14 - w;
    r.style.left = `${Math.max(4, x) + this.canvas.offsetLeft}px`;
    r.style.top = `${L.y0 + 6 + this.canvas.offsetTop}px`;
  }
}
