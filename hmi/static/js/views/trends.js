// #/trends?tags=a,b&from=ISO&to=ISO (or &range=6h) — history of one or more tags on a canvas:
// min-max band + mean per bucket (bucket ≈ one pixel), live tail, zoom/pan that re-fetch.

import { api } from '../api.js';
import { fmtNum, fmtUnit, fmtValue, getTimeZone, lang, t } from '../i18n.js';
import { live } from '../live.js';
import { PALETTE, TrendChart, fromLocalInput, toLocalInput } from '../chart.js';
import { h } from '../widgets.js';

const RANGES = { '1h': 3600e3, '6h': 6 * 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };
const EVERY_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const MAX_TAGS = 8;
// tags/historian/writer.py HistoryWriter heartbeat: a steady value is written at least this often.
const HEARTBEAT_MS = 900e3;
const USABLE = new Set(['good', 'manual', 'calculated', 'backfilled']);

function siteTz() {
  return getTimeZone() || (live.site && live.site.site && live.site.site.timezone) || undefined;
}

function tagDefs() {
  return (live.site && live.site.tags) || {};
}

/** Series colour i: the theme's --series-N (hmi.css), else the chart's palette. */
function colour(i) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(`--series-${(i % 8) + 1}`).trim();
  return /^#[0-9a-f]{6}$/i.test(v) ? v : PALETTE[i % PALETTE.length];
}

function parseTags(text) {
  return [...new Set(String(text || '').split(/[,;\s]+/).map((s) => s.trim()).filter(Boolean))];
}

/** Tags to show when the route names none: the last ones plotted here, else the first building's supply/return. */
function defaultTags() {
  const defs = tagDefs();
  try {
    const saved = parseTags(localStorage.getItem('hmi.trend.tags')).filter((n) => n in defs);
    if (saved.length) return saved.slice(0, MAX_TAGS);
  } catch { /* private mode */ }
  const b = live.site && live.site.buildings && live.site.buildings[0];
  const key = (b && b.key) || {};
  return [key.t_supply, key.t_return].filter((n) => n && n in defs);
}

function medianSpacing(points) {
  if (points.length < 3) return 0;
  const d = [];
  for (let i = 1; i < points.length; i++) d.push(points[i].t - points[i - 1].t);
  d.sort((a, b) => a - b);
  return d[d.length >> 1];
}

/** Bucket length in seconds so that the range gives about `px` buckets. */
export function chooseEvery(spanMs, px) {
  const raw = spanMs / 1000 / Math.max(50, px);
  for (const s of EVERY_STEPS) if (s >= raw) return s;
  return Math.ceil(raw / 86400) * 86400;
}

function everyText(s) {
  if (s % 86400 === 0) return `${s / 86400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

export function mount(root, params = {}) {
  const st = {
    tags: parseTags(params.tags).slice(0, MAX_TAGS),
    range: RANGES[params.range] ? params.range : '1h',
    follow: true,
    normalised: params.norm === '1',
    every: null,
    errors: new Map(),
    loading: false,
    counts: new Map(),
  };
  if (!st.tags.length && !params.tags) st.tags = defaultTags();
  const from0 = Date.parse(params.from || ''), to0 = Date.parse(params.to || '');
  if (Number.isFinite(from0) && Number.isFinite(to0) && from0 < to0) { st.range = 'custom'; st.follow = false; }
  else if (!params.range && !params.tags) st.range = '24h';
  let seq = 0;
  let subscribed = [];
  const unbinds = [];
  root.classList.add('view-trends');

  // ------------------------------------------------------------ skeleton

  const title = h('h1.view-title');
  const tagsIn = h('input.inp.trend-tags', { id: 'trend-tags', type: 'text', list: 'trend-taglist', autocomplete: 'off',
    spellcheck: 'false', autocapitalize: 'off' });
  const tagList = h('datalist', { id: 'trend-taglist' });
  const rangeSel = h('select.inp', { id: 'trend-range' });
  const fromIn = h('input.inp', { id: 'trend-from', type: 'datetime-local', step: 60 });
  const toIn = h('input.inp', { id: 'trend-to', type: 'datetime-local', step: 60 });
  const customBox = h('span.trend-custom', { id: 'trend-custom' });
  const apply = h('button.btn.btn-primary', { type: 'submit', id: 'trend-apply' });
  const norm = h('input', { type: 'checkbox', id: 'trend-normalise', checked: st.normalised });
  const btn = (id, key, glyph, fn) => h('button.btn.btn-icon', { type: 'button', id, dataset: { k: key }, onclick: fn }, glyph);
  const navBtns = [
    btn('trend-back', 'trends.back', '◀', () => chart.pan(-0.5)),
    btn('trend-zoom-out', 'trends.zoom_out', '−', () => chart.zoom(2)),
    btn('trend-zoom-in', 'trends.zoom_in', '+', () => chart.zoom(0.5)),
    btn('trend-fwd', 'trends.forward', '▶', () => chart.pan(0.5)),
    btn('trend-reset', 'trends.reset', '⟲', () => chart.reset()),
    btn('trend-now', 'trends.now', '⇥', () => goLive()),
  ];
  const legend = h('ul.trend-legend', { id: 'trend-legend' });
  const status = h('p.trend-status', { id: 'trend-status', role: 'status' });
  const canvas = h('canvas.trend-canvas', { id: 'trend-canvas', role: 'img' });
  const wrap = h('div.trend-wrap', null, canvas);
  const hint = h('p.trend-hint');
  const form = h('form.toolbar.trend-toolbar', { onsubmit: (e) => { e.preventDefault(); applyForm(); } },
    h('label.field.field-grow', null, h('span.field-label', { dataset: { k: 'trends.tags' } }), tagsIn), tagList,
    h('label.field', null, h('span.field-label', { dataset: { k: 'trends.range' } }), rangeSel),
    customBox,
    apply,
    h('label.check', null, norm, h('span', { dataset: { k: 'trends.normalise' } })),
    h('div.spacer'),
    h('div.seg.trend-nav', null, navBtns));
  customBox.append(h('label.field', null, h('span.field-label', { dataset: { k: 'trends.from' } }), fromIn),
    h('label.field', null, h('span.field-label', { dataset: { k: 'trends.to' } }), toIn));
  root.append(h('div.view-head', null, title), form, legend, status, wrap, hint);

  const chart = new TrendChart(canvas, {
    timeZone: siteTz(),
    locale: lang(),
    fmtValue: (v, unit, withUnit) => (withUnit ? fmtValue(v, unit) : fmtNum(v, unit)),
    texts: { min: t('trends.min'), max: t('trends.max') },
    onView: ({ from, to, reason }) => {
      const now = live.serverNow ? live.serverNow() : Date.now();
      if (reason === 'reset') st.follow = st.range !== 'custom';
      else st.follow = st.range !== 'custom' && Math.abs(to - now) < (to - from) * 0.02;
      syncHash();
      fetchAll();
    },
  });

  // ------------------------------------------------------------ form

  function renderStatic() {
    title.textContent = t('trends.title');
    for (const el of root.querySelectorAll('[data-k]')) {
      if (el.tagName === 'BUTTON') { el.title = t(el.dataset.k); el.setAttribute('aria-label', t(el.dataset.k)); } else el.textContent = t(el.dataset.k);
    }
    const cur = rangeSel.value || st.range;
    rangeSel.textContent = '';
    for (const r of [...Object.keys(RANGES), 'custom']) rangeSel.append(h('option', { value: r }, t(`trends.range.${r}`)));
    rangeSel.value = cur;
    apply.textContent = t('trends.apply');
    tagsIn.placeholder = t('trends.tags_placeholder');
    hint.textContent = t('trends.hint');
    canvas.setAttribute('aria-label', t('trends.canvas_label'));
    chart.locale = lang();
    chart.texts = { min: t('trends.min'), max: t('trends.max') };
    fillTagList('');
  }

  // The datalist holds every tag name; after a comma it offers "<what is typed>, <tag>".
  let listPrefix = null;
  function fillTagList(prefix) {
    const names = Object.keys(tagDefs()).sort();
    const typed = tagsIn.value;
    const cut = typed.lastIndexOf(',');
    const token = cut >= 0 ? typed.slice(cut + 1).trim().toLowerCase() : '';
    if (prefix === listPrefix && !prefix) return;
    listPrefix = prefix;
    tagList.textContent = '';
    const frag = document.createDocumentFragment();
    let n = 0;
    for (const name of names) {
      if (prefix) {
        if (token && !name.toLowerCase().includes(token)) continue;
        if (++n > 400) break;
      }
      const d = tagDefs()[name];
      frag.append(h('option', { value: prefix + name, label: d && d.description ? `${d.description}${d.unit ? `, ${fmtUnit(d.unit)}` : ''}` : null }));
    }
    tagList.append(frag);
  }
  tagsIn.addEventListener('input', () => {
    const v = tagsIn.value;
    const cut = v.lastIndexOf(',');
    fillTagList(cut >= 0 ? `${v.slice(0, cut + 1).trimEnd()} ` : '');
  });

  function showCustom() {
    const custom = rangeSel.value === 'custom';
    customBox.hidden = !custom;
    if (custom && !fromIn.value) {
      fromIn.value = toLocalInput(chart.from, siteTz());
      toIn.value = toLocalInput(chart.to, siteTz());
    }
  }
  rangeSel.addEventListener('change', () => {
    showCustom();
    if (rangeSel.value !== 'custom') applyForm();
  });
  norm.addEventListener('change', () => { st.normalised = norm.checked; chart.setNormalised(st.normalised); syncHash(); });

  function applyForm() {
    const tags = parseTags(tagsIn.value);
    const defs = tagDefs();
    const unknown = Object.keys(defs).length ? tags.filter((n) => !(n in defs)) : [];
    st.errors = new Map(unknown.map((n) => [n, t('trends.unknown_tag')]));
    st.tags = tags.filter((n) => !unknown.includes(n)).slice(0, MAX_TAGS);
    if (tags.length - unknown.length > MAX_TAGS) st.errors.set('', t('trends.too_many', { n: MAX_TAGS }));
    st.range = rangeSel.value;
    if (st.range === 'custom') {
      const a = fromLocalInput(fromIn.value, siteTz()), b = fromLocalInput(toIn.value, siteTz());
      if (!Number.isFinite(a) || !Number.isFinite(b) || a >= b) {
        st.errors.set('', t('trends.bad_range'));
        renderStatus();
        return;
      }
      st.follow = false;
      chart.setView(a, b, { home: true });
    } else {
      st.follow = true;
      const now = live.serverNow();
      chart.setView(now - RANGES[st.range], now, { home: true });
    }
    tagsIn.value = st.tags.join(', ');
    try { localStorage.setItem('hmi.trend.tags', st.tags.join(',')); } catch { /* private mode */ }
    setupSeries();
    syncHash();
    fetchAll();
  }

  function goLive() {
    if (st.range === 'custom') { st.range = '1h'; rangeSel.value = '1h'; showCustom(); }
    st.follow = true;
    const now = live.serverNow();
    chart.setView(now - RANGES[st.range], now, { home: true });
    syncHash();
    fetchAll();
  }

  function syncHash() {
    const q = new URLSearchParams();
    if (st.tags.length) q.set('tags', st.tags.join(','));
    if (st.follow && st.range !== 'custom') q.set('range', st.range);
    else { q.set('from', new Date(chart.from).toISOString()); q.set('to', new Date(chart.to).toISOString()); }
    if (st.normalised) q.set('norm', '1');
    const hash = `#/trends?${q.toString().replace(/%2C/g, ',')}`;
    if (location.hash !== hash) history.replaceState(history.state, '', hash);
  }

  // ------------------------------------------------------------ series, legend, live

  function setupSeries() {
    const defs = tagDefs();
    chart.setSeries(st.tags.map((name, i) => {
      const d = defs[name] || {};
      return { name, label: name, unit: d.unit || '', unitLabel: fmtUnit(d.unit || ''), color: colour(i), points: [] };
    }));
    // live values
    if (subscribed.length) live.unsubscribe(subscribed);
    subscribed = st.tags.slice();
    if (subscribed.length) live.subscribe(subscribed);
    renderLegend();
  }

  function renderLegend() {
    unbinds.splice(0).forEach((u) => u());
    legend.textContent = '';
    const defs = tagDefs();
    st.tags.forEach((name, i) => {
      const d = defs[name] || {};
      const val = h('span.trend-live');
      unbinds.push(live.bind(val, name, { fmt: (v, s) => fmtValue(v, s ? s.unit ?? d.unit : d.unit) }));
      legend.append(h('li.legend-item', { dataset: { series: name } },
        h('span.legend-swatch', { style: `background:${colour(i)}` }),
        h('span.trend-name', null, name),
        d.description ? h('span.trend-desc', null, d.description) : null,
        val,
        h('span.trend-count', null, st.counts.has(name) ? t('trends.points', { n: st.counts.get(name) }) : ''),
        h('button.btn.btn-icon.trend-remove', { type: 'button', title: t('trends.remove'), 'aria-label': t('trends.remove'),
          onclick: () => { tagsIn.value = st.tags.filter((x) => x !== name).join(', '); applyForm(); } }, '×')));
    });
  }

  const offTags = live.on('tags', (names) => {
    if (!st.tags.length) return;
    for (const name of names) {
      if (!st.tags.includes(name)) continue;
      const s = live.tags.get(name);
      if (!s || s.ts == null || !USABLE.has(s.quality)) continue;
      const v = typeof s.value === 'boolean' ? (s.value ? 1 : 0) : s.value;
      chart.append(name, s.ts, v);
    }
  });

  // While following, the window slides with the clock.
  const slider = setInterval(() => {
    if (!st.follow || chart.drag) return;
    const span = chart.to - chart.from;
    const now = live.serverNow();
    if (now - chart.to > Math.max(1000, span / 2000)) {
      chart.setView(now - span, now, { home: chart.home[1] >= now - span });
    }
  }, 1000);
  // ...and the history is re-read now and then, so buckets sealed meanwhile get their min/max.
  const refetch = setInterval(() => { if (st.follow && !chart.drag) fetchAll(true); }, 5 * 60e3);

  // ------------------------------------------------------------ history

  async function fetchAll(quiet = false) {
    if (!st.tags.length) {
      chart.setMessage(t('trends.no_tags'));
      st.loading = false;
      renderStatus();
      return;
    }
    const mySeq = ++seq;
    const from = chart.from, to = chart.to;
    const plotPx = chart.layout ? chart.layout.x1 - chart.layout.x0 : (canvas.clientWidth || 800) - 100;
    const every = chooseEvery(to - from, plotPx);
    const pad = every * 1000;
    st.every = every;
    st.loading = !quiet;
    for (const k of [...st.errors.keys()]) if (st.tags.includes(k)) st.errors.delete(k);
    renderStatus();
    const defs = tagDefs();
    const results = await Promise.all(st.tags.map(async (name) => {
      try {
        const res = await api(`/api/v1/tags/${encodeURIComponent(name)}/history`, { params: {
          from: new Date(Math.max(0, from - pad)).toISOString(),
          to: new Date(Math.min(to + pad, Date.now() + 60e3)).toISOString(),
          every: everyText(every),
        } });
        return { name, res };
      } catch (err) {
        return { name, err };
      }
    }));
    if (mySeq !== seq) return;
    st.loading = false;
    let total = 0;
    for (const r of results) {
      if (r.err) {
        st.errors.set(r.name, r.err.message);
        chart.updateSeries(r.name, []);
        st.counts.delete(r.name);
        continue;
      }
      const ev = (r.res.every || every) * 1000;
      const poll = defs[r.name] && defs[r.name].poll_s ? defs[r.name].poll_s * 1000 : null;
      const points = [];
      for (const p of r.res.points || []) {
        const ts = Date.parse(p.ts);
        if (r.res.every) {
          if (typeof p.mean !== 'number') continue;
          points.push({ t: ts + ev / 2, lo: p.min, hi: p.max, v: p.mean });
        } else if (typeof p.value === 'number') {
          points.push({ t: ts, v: p.value });
        }
      }
      total += points.length;
      st.counts.set(r.name, points.length);
      // The historian writes a sample on change (deadband) or every HEARTBEAT_MS: between two stored
      // samples up to that far apart the value held; farther apart, data is missing.
      // Sparser stored data (an hourly meter archive read back after an outage) is joined at its own spacing.
      const spacing = 1.6 * medianSpacing(points);
      chart.updateSeries(r.name, points, {
        stepMs: Math.max(ev * 2.5, (poll || 0) * 2.5, spacing),
        gapMs: poll === null ? Infinity : Math.max(HEARTBEAT_MS * 1.1 + 2 * poll + ev, spacing),
      });
    }
    const failed = results.filter((r) => r.err).length;
    if (failed === results.length) chart.setMessage(t('trends.error_short'));
    else if (!total && !hasLive()) chart.setMessage(t('trends.no_data'));
    else chart.setMessage(null);
    renderLegend();
    renderStatus(total);
  }

  function hasLive() {
    return st.tags.some((n) => (chart.live.get(n) || []).some((p) => p.t >= chart.from && p.t <= chart.to));
  }

  function renderStatus(total) {
    const parts = [];
    let isError = false;
    for (const [name, msg] of st.errors) { parts.push(name ? `${name}: ${msg}` : msg); isError = true; }
    if (!st.tags.length && !isError) parts.push(t('trends.no_tags'));
    else if (st.loading) parts.push(t('trends.loading'));
    else if (st.tags.length && total === 0 && !isError) parts.push(t('trends.no_data'));
    else if (st.every && st.tags.length) parts.push(t('trends.every', { every: everyLabel(st.every) }));
    status.textContent = parts.join(' · ');
    status.classList.toggle('error', isError);
  }

  function everyLabel(s) {
    if (s % 86400 === 0) return t('trends.unit_d', { n: s / 86400 });
    if (s % 3600 === 0) return t('trends.unit_h', { n: s / 3600 });
    if (s % 60 === 0) return t('trends.unit_m', { n: s / 60 });
    return t('trends.unit_s', { n: s });
  }

  const onLang = () => { renderStatic(); chart.redraw(); renderLegend(); renderStatus(); };
  window.addEventListener('hmi:lang', onLang);

  // ------------------------------------------------------------ start

  renderStatic();
  rangeSel.value = st.range;
  tagsIn.value = st.tags.join(', ');
  if (st.range === 'custom') {
    chart.setView(from0, to0, { home: true });
    fromIn.value = toLocalInput(from0, siteTz());
    toIn.value = toLocalInput(to0, siteTz());
  } else {
    const now = live.serverNow();
    chart.setView(now - RANGES[st.range], now, { home: true });
  }
  showCustom();
  chart.setNormalised(st.normalised);
  setupSeries();
  // the first fetch once the canvas has its size (bucket ≈ pixel)
  let firstRaf = requestAnimationFrame(() => {
    firstRaf = requestAnimationFrame(() => { firstRaf = 0; fetchAll(); });
  });

  return () => {
    if (firstRaf) cancelAnimationFrame(firstRaf);
    firstRaf = 0;
    seq++;
    offTags();
    clearInterval(slider);
    clearInterval(refetch);
    unbinds.splice(0).forEach((u) => u());
    if (subscribed.length) live.unsubscribe(subscribed);
    window.removeEventListener('hmi:lang', onLang);
    chart.destroy();
    root.classList.remove('view-trends');
  };
}
