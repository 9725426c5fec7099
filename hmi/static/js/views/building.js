// Building view: ОДПУ (building meters) with live values and 24 h sparklines,
// the apartments grid (value, today's consumption, quality, verification),
// and the channels/devices behind the building with their link state.

import { api } from '../api.js';
import { live } from '../live.js';
import { t, fmtNum, fmtUnit, fmtTime, fmtDate, fmtDateTime } from '../i18n.js';
import { el, can, navigate } from '../main.js';
import { alarmPriorityByTag, deviceMap, lastContact, markAlarmedValues, perFrame, tagPoint } from '../sitemodel.js';

const SPARK_CONCURRENCY = 4;
const SPARK_REFRESH_MS = 10 * 60 * 1000;
const SKIP_SPARK = new Set(['error_code', 'error_flags', 'status']);

function pointLabel(site, tag) {
  const def = site.tags && site.tags[tag];
  const point = tagPoint(tag);
  const key = `building.point.${point}`;
  const s = t(key);
  if (s !== key) return s;
  return (def && def.description) || point;
}

function premisesLabel(p) {
  const kind = p.kind === 'apartment' || p.kind === 'nonresidential' ? p.kind : 'other';
  return t(`building.premises.${kind}`, { n: p.number });
}

function trendHref(tags) {
  return `#/trends?tags=${tags.map(encodeURIComponent).join(',')}`;
}

/** A tiny SVG sparkline (mean line over a min..max band) of hourly points. */
function drawSpark(svg, points) {
  svg.textContent = '';
  const pts = points.filter((p) => typeof p.mean === 'number' && Number.isFinite(p.mean));
  if (pts.length < 2) {
    svg.classList.add('none');
    return;
  }
  svg.classList.remove('none');
  const W = 100; const H = 24; const pad = 2;
  const t0 = Date.parse(pts[0].ts); const t1 = Date.parse(pts[pts.length - 1].ts);
  let lo = Infinity; let hi = -Infinity;
  for (const p of pts) {
    const a = typeof p.min === 'number' ? p.min : p.mean;
    const b = typeof p.max === 'number' ? p.max : p.mean;
    if (a < lo) lo = a;
    if (b > hi) hi = b;
  }
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (ts) => (t1 === t0 ? W / 2 : ((Date.parse(ts) - t0) / (t1 - t0)) * W);
  const y = (v) => pad + (1 - (v - lo) / (hi - lo)) * (H - 2 * pad);
  let line = '';
  let top = '';
  let bottom = '';
  pts.forEach((p, i) => {
    const px = x(p.ts).toFixed(2);
    line += `${i ? 'L' : 'M'}${px},${y(p.mean).toFixed(2)}`;
    top += `${i ? 'L' : 'M'}${px},${y(typeof p.max === 'number' ? p.max : p.mean).toFixed(2)}`;
  });
  for (let i = pts.length - 1; i >= 0; i--) {
    const p = pts[i];
    bottom += `L${x(p.ts).toFixed(2)},${y(typeof p.min === 'number' ? p.min : p.mean).toFixed(2)}`;
  }
  const ns = 'http://www.w3.org/2000/svg';
  const band = document.createElementNS(ns, 'path');
  band.setAttribute('class', 'band');
  band.setAttribute('d', `${top}${bottom}Z`);
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('class', 'line');
  path.setAttribute('d', line);
  svg.append(band, path);
}

export function mount(root, params) {
  const site = live.site;
  const offs = [];
  const timers = [];
  let alive = true;
  const buildings = (site && site.buildings) || [];
  const b = buildings.find((x) => x.id === params.id) || null;

  // ---- head: title, address, building switcher
  const head = el('div', { class: 'bld-head' });
  root.append(head);
  const select = el('select', { class: 'bld-select kiosk-hide', 'aria-label': t('building.choose') });
  for (const x of buildings) {
    const o = el('option', { value: x.id, text: `${x.id} — ${x.address || ''}` });
    if (b && x.id === b.id) o.selected = true;
    select.append(o);
  }
  select.addEventListener('change', () => navigate(`#/building/${encodeURIComponent(select.value)}`));

  if (!b) {
    head.append(el('h1', { text: t('building.title', { id: params.id || '' }) }));
    if (buildings.length) head.append(select);
    root.append(el('div', { class: 'view-error', text: t('building.not_found', { id: params.id || '' }) }));
    return () => {};
  }
  head.append(el('h1', { text: t('building.title', { id: b.id }) }),
    el('span', { class: 'addr', text: b.address || '' }));
  if (buildings.length > 1) head.append(select);

  const meters = b.meters || [];
  const meterById = new Map(meters.map((m) => [m.id, m]));
  const odpu = meters.filter((m) => m.role === 'odpu');
  const valueEls = new Map();     // tag -> [value elements] (marked when the tag is in alarm)
  const addValue = (tag, e) => {
    const arr = valueEls.get(tag);
    if (arr) arr.push(e); else valueEls.set(tag, [e]);
  };

  if (can('history') && odpu.length) {
    const keyTags = [b.key && b.key.power, b.key && b.key.t_supply, b.key && b.key.t_return].filter(Boolean);
    if (keyTags.length) {
      head.append(el('a', { class: 'btn btn-small trend-link', href: trendHref(keyTags), text: t('building.all_trends') }));
    }
  }

  const grid = el('div', { class: 'bld-grid' });
  root.append(grid);
  const left = el('div', { class: 'bld-main' });
  const right = el('div', { class: 'bld-side' });
  grid.append(left, right);

  // ---- verification / service flags of a meter
  function meterFlags(m) {
    const out = [];
    if (m.verification_expired) {
      out.push(el('span', { class: 'verif-expired', dataset: { flag: 'verification' },
        title: m.next_verification ? t('building.verif_due', { date: fmtDate(`${m.next_verification}T12:00:00Z`) }) : '',
        text: `⚠ ${t('building.verif_expired')}` }));
    }
    if (m.in_service === false) {
      out.push(el('span', { class: 'out-of-service', text: t('building.out_of_service') }));
    }
    return out;
  }

  // ---- ОДПУ
  const sparkJobs = [];
  const odpuPanel = el('section', { class: 'panel' },
    el('div', { class: 'panel-head' }, el('h2', { text: t('building.odpu') })));
  const odpuList = el('div', { class: 'odpu-list' });
  odpuPanel.append(odpuList);
  left.append(odpuPanel);
  if (!odpu.length) odpuList.append(el('div', { class: 'empty', text: t('building.no_odpu') }));
  const meterRows = new Map();      // meter id -> [elements to mark comm-lost]
  const otherRegisters = new Set(meters.map((m) => m.tag).filter(Boolean));
  for (const m of odpu) {
    const card = el('div', { class: 'odpu', dataset: { meter: m.id } });
    const meta = [m.model, m.serial ? t('building.serial', { serial: m.serial }) : null, m.device]
      .filter(Boolean).join(' · ');
    card.append(el('div', { class: 'odpu-head' },
      el('span', { class: 'res', text: t(`res.${m.resource}`) }),
      el('span', { class: 'meta', text: meta }),
      m.next_verification && !m.verification_expired
        ? el('span', { class: 'meta', text: t('building.verif_due', { date: fmtDate(`${m.next_verification}T12:00:00Z`) }) })
        : null,
      ...meterFlags(m)));
    const rows = el('div', { class: 'odpu-tags' });
    // Meters sharing a device (one LoRa module for cold and hot water) show only their own register.
    const tags = (m.tags && m.tags.length ? m.tags : [m.tag])
      .filter((tg) => tg && (tg === m.tag || !otherRegisters.has(tg)));
    // The register first, then the rest in the site's order.
    tags.sort((a, c) => (a === m.tag ? -1 : c === m.tag ? 1 : 0));
    for (const tag of tags) {
      const def = (site.tags && site.tags[tag]) || {};
      const v = el('span', { class: 'tv' });
      offs.push(live.bind(v, tag));
      addValue(tag, v);
      const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
      svg.setAttribute('class', 'spark');
      svg.setAttribute('viewBox', '0 0 100 24');
      svg.setAttribute('preserveAspectRatio', 'none');
      svg.setAttribute('aria-hidden', 'true');
      const sparkTitle = t('building.spark_title', { tag });
      const sparkBox = el('span', { class: 'spark-box', title: sparkTitle });
      sparkBox.append(svg);
      const point = tagPoint(tag);
      if (can('history') && !SKIP_SPARK.has(point)) sparkJobs.push({ tag, svg });
      else svg.classList.add('off');
      const link = can('history')
        ? el('a', { class: 'trend-link', href: trendHref([tag]), title: t('building.trend_title', { tag }), text: '∿' })
        : el('span');
      rows.append(
        el('span', { class: 'tl', title: tag, text: pointLabel(site, tag) }),
        el('span', { class: 'tvw' }, v, ' ', el('span', { class: 'tu', text: fmtUnit(def.unit) })),
        sparkBox, link);
    }
    card.append(rows);
    odpuList.append(card);
    meterRows.set(m.id, [card]);
  }

  // ---- apartments
  const aptPanel = el('section', { class: 'panel' },
    el('div', { class: 'panel-head' }, el('h2', { text: t('building.apartments') }),
      el('span', { class: 'spacer' }),
      el('span', { class: 'muted small today-since' })));
  const aptGrid = el('div', { class: 'apt-grid' });
  aptPanel.append(aptGrid);
  left.append(aptPanel);
  const premises = b.premises || [];
  if (!premises.length) aptGrid.append(el('div', { class: 'empty', text: t('building.no_premises') }));

  const todayEls = [];    // {el, tag}
  let today = { since: null, values: {} };

  function todayFmt(tag) {
    return (value, st) => {
      const base = today.values ? today.values[tag] : undefined;
      if (typeof value !== 'number' || typeof base !== 'number') return '—';
      const unit = st && st.unit;
      const d = value - base;
      const digits = unit === 'kWh' ? 1 : unit === 'm3' ? 3 : undefined;
      // A meter replaced or reset since midnight gives a negative delta: a real minus sign, not "+-".
      if (d < -1e-9) return `\u2212${fmtNum(-d, unit, digits)}`;
      return `+${fmtNum(d < 0 ? 0 : d, unit, digits)}`;
    };
  }

  for (const p of premises) {
    const apt = el('div', { class: 'apt', dataset: { premises: p.number } });
    apt.append(el('div', { class: 'apt-head' },
      el('span', { class: 'apt-no', text: premisesLabel(p) }),
      p.account ? el('span', { class: 'apt-acc', text: t('building.account', { a: p.account }) }) : null));
    const list = el('div', { class: 'apt-meters' });
    for (const mid of p.meters || []) {
      const m = meterById.get(mid);
      const row = el('div', { class: 'apt-meter', dataset: { meter: mid } });
      const resource = m ? m.resource : '';
      row.append(el('span', { class: 'res-ico', title: resource ? t(`res.${resource}`) : '', text: resource ? t(`res.short.${resource}`) : '?' }));
      if (m && m.tag) {
        const def = (site.tags && site.tags[m.tag]) || {};
        const v = el('span', { class: 'mv' });
        offs.push(live.bind(v, m.tag));
        addValue(m.tag, v);
        row.append(el('span', { class: 'mvw' }, v, ' ', el('span', { class: 'mu', text: fmtUnit(def.unit || m.unit) })));
        const td = el('span', { class: 'tdv', dataset: { todayTag: m.tag } });
        offs.push(live.bind(td, m.tag, { fmt: todayFmt(m.tag), tagAttr: false }));
        todayEls.push({ el: td, tag: m.tag });
        row.append(el('span', { class: 'today' }, el('span', { class: 'lbl', text: `${t('building.today')} ` }), td));
      } else {
        row.append(el('span', { class: 'mv muted', text: t('building.no_meter_tag') }), el('span'));
      }
      const flags = m ? meterFlags(m) : [];
      if (flags.length) row.append(el('span', { class: 'flags' }, ...flags));
      list.append(row);
      if (m) {
        const arr = meterRows.get(m.id) || [];
        arr.push(row);
        meterRows.set(m.id, arr);
      }
    }
    apt.append(list);
    aptGrid.append(apt);
  }

  // Midnight values for today's consumption; fetched again after midnight.
  let todayDay = null;
  let todayLoading = false;
  async function loadToday() {
    if (todayLoading) return;
    todayLoading = true;
    try {
      const ans = await api(`/api/v1/hmi/buildings/${encodeURIComponent(b.id)}/today`);
      if (!alive) return;
      today = ans || { since: null, values: {} };
      todayDay = fmtDate(live.serverNow());
      const since = aptPanel.querySelector('.today-since');
      since.textContent = today.since ? t('building.today_title', { since: fmtDateTime(today.since) }) : '';
      live.refreshAll();
    } catch (err) {
      if (alive) console.warn('today:', err.message || err);
    } finally {
      todayLoading = false;
    }
  }
  loadToday();
  timers.push(setInterval(() => {
    if (todayDay && fmtDate(live.serverNow()) !== todayDay) loadToday();
  }, 60 * 1000));
  // Until the midnight values have loaded once (the first request failed), ask again.
  timers.push(setInterval(() => {
    if (alive && todayDay === null) loadToday();
  }, 30 * 1000));

  // ---- sparklines (hourly points of the last 24 h), a few requests at a time
  async function loadSparks() {
    const jobs = sparkJobs.slice();
    const from = new Date(live.serverNow() - 24 * 3600 * 1000).toISOString();
    async function worker() {
      while (alive && jobs.length) {
        const job = jobs.shift();
        try {
          const ans = await api(`/api/v1/tags/${encodeURIComponent(job.tag)}/history`, { params: { from, every: '1h' } });
          if (alive) drawSpark(job.svg, (ans && ans.points) || []);
        } catch {
          if (alive) job.svg.classList.add('none');
        }
      }
    }
    await Promise.all(Array.from({ length: SPARK_CONCURRENCY }, worker));
  }
  if (sparkJobs.length) {
    loadSparks();
    timers.push(setInterval(loadSparks, SPARK_REFRESH_MS));
  }

  // ---- channels, segments, modems behind the building
  const chanPanel = el('section', { class: 'panel' },
    el('div', { class: 'panel-head' }, el('h2', { text: t('building.channels') })));
  const chanList = el('div', { class: 'chan-list' });
  chanPanel.append(chanList);
  right.append(chanPanel);
  const chanCards = new Map();
  for (const name of b.channels || []) {
    const info = (site.channels || []).find((c) => c.name === name) || { name, type: '' };
    const card = el('div', { class: 'chan', dataset: { channel: name } });
    const state = el('span', { class: 'badge chan-state' });
    card.append(el('div', { class: 'chan-head' },
      el('span', { class: 'chan-name', text: name }),
      el('span', { class: 'chan-type', text: info.type || '' }),
      el('span', { class: 'spacer' }), state));
    const rows = el('div', { class: 'chan-rows' });
    const cells = {};
    const keys = {};
    for (const k of ['endpoint', 'utilisation', 'last_contact', 'devices']) {
      cells[k] = el('span', { class: 'v' });
      keys[k] = el('span', { class: 'k', text: t(`building.${k}`) });
      rows.append(keys[k], cells[k]);
    }
    const devs = el('ul', { class: 'dev-list' });
    card.append(rows, devs);
    chanList.append(card);
    chanCards.set(name, { card, state, cells, keys, devs, sig: '' });
  }

  function renderChannels() {
    const devices = deviceMap(live.devices);
    const bdev = new Set(b.devices || []);
    for (const [name, x] of chanCards) {
      const h = (live.channels || []).find((c) => c.name === name);
      const link = h && h.link && typeof h.link === 'object' ? h.link : null;
      const up = h ? h.link_up !== false : null;
      const sleeping = !!(h && h.sleeping);
      const stateText = !h ? t('comm.unknown') : sleeping ? t('comm.sleeping') : up ? t('comm.link_up') : t('comm.link_down');
      const endpoint = link ? [link.transport, link.endpoint].filter(Boolean).join(': ') : '';
      const util = h && typeof h.utilisation_pct === 'number' ? `${fmtNum(h.utilisation_pct, '%')} %` : '—';
      let last = link && link.last_seen ? Date.parse(link.last_seen) : h && h.last_uplink ? Date.parse(h.last_uplink) : null;
      const items = [];
      for (const d of live.devices || []) {
        if (d.channel !== name || !bdev.has(d.name)) continue;
        const lc = lastContact(d);
        if (lc !== null && (last === null || Number.isNaN(last) || lc > last)) last = lc;
        items.push(d);
      }
      const counts = h ? t('building.devices_state', {
        ok: h.devices_ok ?? 0, deg: (h.devices_degraded ?? 0) + (h.devices_decode_failed ?? 0), lost: h.devices_comm_loss ?? 0,
      }) : '—';
      const lastText = last && !Number.isNaN(last) ? fmtTime(last) : '—';
      const devSig = items.map((d) => `${d.name}:${d.state}`).join(',');
      const sig = [stateText, endpoint, util, lastText, counts, devSig, up, sleeping].join('|');
      if (sig === x.sig) continue;
      x.sig = sig;
      x.state.textContent = stateText;
      x.state.className = `badge chan-state ${!h ? '' : up || sleeping ? 'badge-ok' : 'badge-comm'}`;
      x.card.classList.toggle('link-down', !!h && !up && !sleeping);
      const texts = { endpoint: endpoint || '—', utilisation: util, last_contact: lastText, devices: counts };
      for (const [k, v] of Object.entries(texts)) {
        x.cells[k].textContent = v;
        // Rows a channel type has no data for (a LoRaWAN network has no line to load) are left out.
        const none = v === '—' && (k === 'endpoint' || k === 'utilisation');
        x.cells[k].hidden = none;
        x.keys[k].hidden = none;
      }
      x.devs.textContent = '';
      for (const d of items) {
        const cls = d.state === 'comm_loss' ? 'lost' : d.state === 'degraded' || d.state === 'decode_failed' ? 'degraded' : '';
        const lc = lastContact(d);
        x.devs.append(el('li', {
          class: cls, dataset: { device: d.name, state: d.state },
          title: `${d.name}: ${t(`comm.state.${d.state}`)}${lc ? ` · ${t('comm.last', { t: fmtDateTime(lc) })}` : ''}`,
          text: d.name,
        }));
      }
    }
    // Meter rows of devices without comms get the comm-loss outline.
    for (const [mid, elems] of meterRows) {
      const m = meterById.get(mid);
      const d = m && m.device ? devices.get(m.device) : null;
      const lost = !!d && d.state === 'comm_loss';
      for (const e of elems) {
        if (e.classList.contains('dev-lost') === lost) continue;
        e.classList.toggle('dev-lost', lost);
        let flag = e.querySelector(':scope .comm-flag');
        if (lost && !flag) {
          flag = el('span', { class: 'comm-flag', text: t('comm.lost') });
          const head = e.querySelector(':scope > .odpu-head') || e;
          head.append(flag);
        } else if (!lost && flag) {
          flag.remove();
        }
      }
    }
  }
  renderChannels();
  offs.push(live.on('channels', renderChannels));

  const renderAlarms = () => markAlarmedValues(valueEls, alarmPriorityByTag(live.alarms));
  renderAlarms();
  const alarmsLater = perFrame(renderAlarms);
  offs.push(live.on('alarms', alarmsLater), alarmsLater.cancel);

  return () => {
    alive = false;
    for (const off of offs) off();
    for (const tm of timers) clearInterval(tm);
  };
}
