// #/channels — one card per communication channel (bus segment, modem, LoRaWAN, hand-read):
// link state, bus utilisation, transactions/s, errors, termination, modem/LoRaWAN contact,
// and a collapsible table of its devices.  Data: the WS 'channels' frame (live.channels/devices).

import { api } from '../api.js';
import { fmtAge, fmtDateTime, fmtNum, fmtTime, t } from '../i18n.js';
import { live } from '../live.js';
import { h } from '../widgets.js';

const RATE_WINDOW_MS = 60e3;
const HIGH_ERROR_PCT = 5;
const HIGH_UTIL_PCT = 90;
const BAD_DEVICE = new Set(['comm_loss', 'failing', 'decode_failed']);
const WARN_DEVICE = new Set(['degraded']);

function sum(list, key) {
  let n = 0;
  for (const d of list) if (typeof d[key] === 'number') n += d[key];
  return n;
}

function errorsOf(d) {
  return (d.timeouts || 0) + (d.crc_errors || 0) + (d.exceptions || 0) + (d.decode_errors || 0);
}

function tOr(key, fallback) {
  const s = t(key);
  return s === key ? fallback : s;
}

/** A time as HH:MM:SS when within the last day, else with its date (the full time in the title). */
function when(iso) {
  const ms = Date.parse(iso || '');
  if (Number.isNaN(ms)) return '—';
  return Math.abs(Date.now() - ms) < 20 * 3600e3 ? fmtTime(ms) : fmtDateTime(ms);
}

function parseMs(iso) {
  const v = Date.parse(iso || '');
  return Number.isNaN(v) ? null : v;
}

export function mount(root) {
  const open = new Set();                   // channels whose device table is open
  const history = new Map();                // channel -> [{t, err, req}]
  let lastFrame = 0;
  let data = { channels: live.channels || [], devices: live.devices || [] };
  let fallbackTimer = 0;
  root.classList.add('view-channels');

  const title = h('h1.view-title');
  const summary = h('p.channels-summary', { id: 'channels-summary', role: 'status' });
  const grid = h('div.channel-grid', { id: 'channel-grid' });
  root.append(h('div.view-head', null, title), summary, grid);

  // "12 s ago" cells refresh every second without rebuilding the cards
  function age(iso) {
    const ms = parseMs(iso);
    if (ms === null) return h('span.age', null, '—');
    return h('span.age', { dataset: { since: String(ms) } }, ageText(ms));
  }
  function ageText(ms) {
    const s = (live.serverNow() - ms) / 1000;
    return s >= 0 ? t('channels.ago', { age: fmtAge(s) }) : t('channels.in', { age: fmtAge(-s) });
  }
  function refreshAges() {
    for (const el of grid.querySelectorAll('.age[data-since]')) el.textContent = ageText(Number(el.dataset.since));
  }

  function errorRate(name, devs) {
    const now = Date.now();
    const err = devs.reduce((n, d) => n + errorsOf(d), 0);
    const req = sum(devs, 'requests');
    let hist = history.get(name);
    if (!hist) { hist = []; history.set(name, hist); }
    const last = hist[hist.length - 1];
    if (!last || now - last.t > 1000) hist.push({ t: now, err, req });
    while (hist.length > 2 && now - hist[1].t > RATE_WINDOW_MS) hist.shift();
    const first = hist[0];
    const dReq = req - first.req, dErr = err - first.err;
    if (dReq < 0 || dErr < 0) { history.set(name, [{ t: now, err, req }]); return null; }   // counters restarted
    return dReq >= 5 ? (dErr / dReq) * 100 : null;
  }

  function kv(cls, key, value, extra) {
    return h(`div.ch-kv.${cls}`, extra || null, h('span.ch-k', null, t(key)), h('span.ch-v', null, value));
  }

  function linkInfo(ch) {
    if (ch.type === 'lorawan') return { state: 'up', text: t('channels.link.lorawan') };
    if (ch.type === 'manual') return { state: 'up', text: t('channels.link.manual') };
    if (ch.sleeping) return { state: 'sleeping', text: t('channels.link.sleeping') };
    if (ch.link_up === false) {
      return { state: 'down', text: ch.link_down_reason ? t('channels.link.down_reason', { reason: ch.link_down_reason }) : t('channels.link.down') };
    }
    return { state: 'up', text: t('channels.link.up') };
  }

  function endpointText(link) {
    if (!link) return null;
    const s = link.settings;
    const serial = s ? ` · ${s.baudrate} ${s.bytesize}${s.parity}${s.stopbits}` : '';
    return `${link.endpoint || link.transport || ''}${serial}`;
  }

  function termination(ch) {
    const term = ch.termination;
    if (!term) return null;
    const port = term.port;
    const lines = [];
    lines.push(h('div.term-port', { dataset: { port } }, tOr(`channels.term.port.${port}`, port)));
    if (term.devices && term.devices.length) {
      lines.push(h('div.term-devices', null, t('channels.term.devices', { list: term.devices.join(', ') })));
    } else {
      lines.push(h('div.term-devices', null, t('channels.term.no_devices')));
    }
    const serialBus = ch.link && ch.link.transport === 'serial';
    const wrong = serialBus && term.nodes !== 2;
    lines.push(h('div.term-nodes', { class: wrong ? 'warn' : null },
      `${wrong ? '⚠ ' : ''}${t('channels.term.nodes', { n: term.nodes })}`));
    const explain = [];
    explain.push(t('channels.term.explain'));
    if (port === 'unsupported') explain.push(t('channels.term.explain_unsupported'));
    if (term.detail) explain.push(term.detail);
    lines.push(h('p.term-explain', null, explain.join(' ')));
    return h('div.ch-term', { dataset: { port } }, h('div.ch-sub', null, t('channels.termination')), lines);
  }

  function contact(ch, devs) {
    const link = ch.link || {};
    const out = [];
    if (link.transport !== 'modem' && ch.type !== 'lorawan') {
      // a bus: its last contact is the newest good answer of any of its devices
      let last = null;
      for (const d of devs) {
        const ms = parseMs(d.last_good);
        if (ms !== null && (last === null || ms > last)) last = ms;
      }
      out.push(kv('ch-last-contact', 'channels.last_good_any', last !== null
        ? h('span', null, `${when(new Date(last).toISOString())} · `, age(new Date(last).toISOString())) : t('channels.never')));
    }
    if (link.transport === 'modem') {
      out.push(kv('ch-last-contact', 'channels.last_contact', link.last_seen
        ? h('span', null, `${when(link.last_seen)} · `, age(link.last_seen)) : t('channels.never')));
      if (link.peer) out.push(kv('ch-peer', 'channels.peer', link.peer));
      out.push(kv('ch-connects', 'channels.connects', fmtNum(link.connects ?? 0)));
      if (link.timeouts_in_row) out.push(kv('ch-tir abn', 'channels.timeouts_in_row', fmtNum(link.timeouts_in_row)));
    }
    if (link.next_window !== undefined || link.window_end !== undefined) {
      if (link.window) out.push(kv('ch-window', 'channels.window', String(link.window)));
      if (link.window_end) out.push(kv('ch-window-end', 'channels.window_end', h('span', null, `${when(link.window_end)} · `, age(link.window_end))));
      if (link.next_window) out.push(kv('ch-next-window', 'channels.next_window', h('span', null, `${when(link.next_window)} · `, age(link.next_window))));
    }
    if (ch.type === 'lorawan') {
      out.push(kv('ch-last-contact ch-last-uplink', 'channels.last_uplink', ch.last_uplink
        ? h('span', null, `${when(ch.last_uplink)} · `, age(ch.last_uplink)) : t('channels.never')));
      out.push(kv('ch-uplinks', 'channels.uplinks', fmtNum(ch.uplinks ?? 0)));
      if (ch.duplicates) out.push(kv('ch-dups', 'channels.duplicates', fmtNum(ch.duplicates)));
      if (ch.fcnt_resets) out.push(kv('ch-fcnt', 'channels.fcnt_resets', fmtNum(ch.fcnt_resets)));
    }
    if (link.last_error) out.push(kv('ch-last-error', 'channels.last_error', link.last_error));
    return out;
  }

  function deviceTable(ch, devs) {
    const lora = ch.type === 'lorawan';
    const manual = ch.type === 'manual';
    const cols = lora
      ? ['name', 'address', 'state', 'last_good', 'rssi', 'battery', 'errors', 'poll']
      : manual ? ['name', 'state', 'last_good', 'poll']
        : ['name', 'address', 'state', 'last_good', 'failures', 'errors', 'poll'];
    const rows = devs.map((d) => {
      const bad = BAD_DEVICE.has(d.state), warn = WARN_DEVICE.has(d.state) || (d.consecutive_failures > 0);
      const lastGood = d.last_good || d.last_uplink || null;
      const cell = {
        name: h('span.dev-name', { title: d.last_error || d.last_exception || '' }, d.name),
        address: String(d.dev_eui ?? d.address ?? ''),
        state: h('span.dev-state', { dataset: { state: d.state } }, tOr(`comm.state.${d.state}`, tOr(`channels.dev.${d.state}`, d.state))),
        last_good: lastGood ? h('span', null, `${when(lastGood)} · `, age(lastGood)) : t('channels.never'),
        failures: d.consecutive_failures
          ? t('channels.failures_n', { n: d.consecutive_failures, failed: d.failed_polls ?? 0, polls: d.polls ?? 0 })
          : t('channels.failed_polls', { failed: d.failed_polls ?? 0, polls: d.polls ?? 0 }),
        errors: lora
          ? t('channels.lora_errors', { dec: d.decode_errors ?? 0, loss: d.comm_losses ?? 0, dup: d.duplicates ?? 0 })
          : t('channels.dev_errors', { to: d.timeouts ?? 0, crc: d.crc_errors ?? 0, exc: d.exceptions ?? 0 }),
        rssi: d.rssi == null ? '—' : t('channels.rssi_snr', { rssi: fmtNum(d.rssi, 'dBm'), snr: fmtNum(d.snr, 'dB') }),
        battery: d.battery == null ? '—' : fmtNum(d.battery),
        poll: d.poll_s != null ? t('channels.poll_s', { s: fmtNum(d.poll_s) }) : d.period ? String(d.period) : '—',
      };
      return h('tr.dev-row', { dataset: { device: d.name, state: d.state }, class: bad ? 'abn' : warn ? 'warn' : null },
        cols.map((c) => h(`td.dcol-${c}`, { dataset: { label: t(`channels.col.${c}`) } }, cell[c])));
    });
    const det = h('details.ch-devices', { open: open.has(ch.name) },
      h('summary', null, t('channels.devices_n', { n: devs.length })),
      h('div.tbl-wrap', null, h('table.tbl.dev-table', null,
        h('thead', null, h('tr', null, cols.map((c) => h('th', null, t(`channels.col.${c}`))))),
        h('tbody', null, rows))));
    if (open.has(ch.name)) det.open = true;
    det.addEventListener('toggle', () => { if (det.open) open.add(ch.name); else open.delete(ch.name); });
    return det;
  }

  function card(ch, devs) {
    const link = linkInfo(ch);
    const commLoss = ch.devices_comm_loss || 0;
    const degraded = ch.devices_degraded || 0;
    const decodeFailed = ch.devices_decode_failed || 0;
    const errTotal = devs.reduce((n, d) => n + errorsOf(d), 0);
    const rate = errorRate(ch.name, devs);
    const highErr = rate !== null && rate > HIGH_ERROR_PCT;
    const util = typeof ch.utilisation_pct === 'number' ? ch.utilisation_pct : null;
    const highUtil = util !== null && util > HIGH_UTIL_PCT;
    const abnormal = link.state === 'down' || commLoss > 0 || highErr || decodeFailed > 0;
    const warn = !abnormal && (degraded > 0 || highUtil);
    const reasons = [];
    if (link.state === 'down') reasons.push(t('channels.why.link_down'));
    if (commLoss) reasons.push(t('channels.why.comm_loss', { n: commLoss }));
    if (highErr) reasons.push(t('channels.why.errors', { pct: fmtNum(rate, '%') }));
    if (degraded) reasons.push(t('channels.why.degraded', { n: degraded }));
    if (highUtil) reasons.push(t('channels.why.util'));

    const parts = [];
    parts.push(h('header.ch-head', null,
      h('h2.ch-name', null, ch.name),
      h('span.ch-type', null, tOr(`channels.type.${ch.type}`, ch.type)),
      h('span.ch-link', { dataset: { link: link.state }, class: link.state === 'down' ? 'abn' : null }, link.text)));
    const ep = endpointText(ch.link);
    if (ep) parts.push(h('div.ch-endpoint', null, ep));
    if (reasons.length) parts.push(h('div.ch-why', { class: abnormal ? 'abn' : 'warn' }, `⚠ ${reasons.join('; ')}`));

    const metrics = [];
    if (util !== null) {
      const wire = typeof ch.wire_utilisation_pct === 'number' ? ch.wire_utilisation_pct : null;
      metrics.push(h('div.ch-kv.ch-util', { title: t('channels.util_title'), dataset: { util: String(util) } },
        h('span.ch-k', null, t('channels.utilisation')),
        h('span.ch-v', null, h('span.meter-bar', { class: highUtil ? 'warn' : null, role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100,
          'aria-valuenow': util }, h('span.meter-fill', { style: `width:${Math.max(0, Math.min(100, util))}%` })),
        h('span.bar-text', null, `${fmtNum(util, '%')} %${wire !== null ? ` (${t('channels.wire', { pct: fmtNum(wire, '%') })})` : ''}`))));
    }
    if (ch.unit_loads) {
      metrics.push(kv('ch-unit-loads', 'channels.unit_loads', `${ch.unit_loads.used} / ${ch.unit_loads.capacity}`));
    }
    if (typeof ch.tx_per_s === 'number') metrics.push(kv('ch-tx', 'channels.tx_per_s', fmtNum(ch.tx_per_s, null, 1)));
    const devText = [t('channels.dev_ok', { n: ch.devices_ok ?? 0 })];
    if (degraded) devText.push(t('channels.dev_degraded', { n: degraded }));
    if (commLoss) devText.push(t('channels.dev_comm_loss', { n: commLoss }));
    if (decodeFailed) devText.push(t('channels.dev_decode_failed', { n: decodeFailed }));
    if (ch.devices_not_yet_read) devText.push(t('channels.dev_not_yet_read', { n: ch.devices_not_yet_read }));
    metrics.push(kv('ch-devs', 'channels.devices', h('span', { class: commLoss ? 'abn' : null },
      `${ch.devices ?? devs.length}: ${devText.join(', ')}`)));
    const errParts = ch.type === 'manual' ? null : ch.type === 'lorawan'
      ? t('channels.lora_errors', { dec: sum(devs, 'decode_errors'), loss: sum(devs, 'comm_losses'), dup: ch.duplicates ?? 0 })
      : t('channels.errors_sum', { to: sum(devs, 'timeouts'), crc: sum(devs, 'crc_errors'), exc: sum(devs, 'exceptions') });
    if (errParts !== null) metrics.push(h('div.ch-kv.ch-errors', { class: highErr ? 'abn' : null, dataset: { errors: String(errTotal) } },
      h('span.ch-k', null, t('channels.errors')),
      h('span.ch-v', null, errParts, rate !== null ? h('span.ch-rate', null, ` · ${t('channels.rate', { pct: fmtNum(rate, '%') })}`) : null)));
    if (ch.stray_bytes) metrics.push(kv('ch-stray', 'channels.stray_bytes', fmtNum(ch.stray_bytes)));
    metrics.push(...contact(ch, devs));
    parts.push(h('div.ch-metrics', null, metrics));
    const term = termination(ch);
    if (term) parts.push(term);
    if (devs.length) parts.push(deviceTable(ch, devs));

    return h('article.channel.panel', {
      dataset: { channel: ch.name, state: abnormal ? 'abnormal' : warn ? 'warn' : 'ok', link: link.state },
      class: [abnormal ? 'abn' : warn ? 'warn' : '', link.state === 'down' ? 'link-down' : ''].filter(Boolean).join(' ') || null,
    }, parts);
  }

  function render() {
    title.textContent = t('channels.title');
    const chans = data.channels || [];
    const devs = data.devices || [];
    const byChannel = new Map();
    for (const d of devs) {
      if (!byChannel.has(d.channel)) byChannel.set(d.channel, []);
      byChannel.get(d.channel).push(d);
    }
    const keepScroll = window.scrollY;
    grid.textContent = '';
    if (!chans.length) {
      summary.textContent = lastFrame ? t('channels.none') : t('channels.loading');
      return;
    }
    let nAbn = 0;
    for (const ch of chans) {
      const c = card(ch, byChannel.get(ch.name) || []);
      if (c.dataset.state === 'abnormal') nAbn++;
      grid.append(c);
    }
    summary.textContent = t('channels.summary', { n: chans.length, abn: nAbn, dev: devs.length })
      + (lastFrame ? ` · ${t('channels.updated', { time: fmtDateTime(lastFrame) })}` : '');
    summary.classList.toggle('abn', nAbn > 0);
    if (window.scrollY !== keepScroll) window.scrollTo(0, keepScroll);
  }

  // Data from the WS; if none arrives (an older server, or before the first push), ask the API.
  async function fetchOnce() {
    try {
      const [ch, dev] = await Promise.all([api('/api/v1/channels'), api('/api/v1/devices')]);
      if (Date.now() - lastFrame < 4000) return;
      data = { channels: ch.channels || [], devices: dev.devices || [] };
      lastFrame = Date.now();
      render();
    } catch (err) {
      summary.textContent = t('channels.load_error', { error: err.message });
      summary.classList.add('error');
    }
  }
  const offCh = live.on('channels', (arg) => {
    data = { channels: (arg && arg.channels) || live.channels || [], devices: (arg && arg.devices) || live.devices || [] };
    lastFrame = Date.now(); summary.classList.remove('error');
    render();
  });
  const offLang = () => render();
  window.addEventListener('hmi:lang', offLang);
  const ticker = setInterval(() => {
    refreshAges();
    if (Date.now() - lastFrame > 12000 && !fallbackTimer) {
      fallbackTimer = setTimeout(() => { fallbackTimer = 0; fetchOnce(); }, 0);
    }
  }, 1000);

  if (data.channels.length) { lastFrame = Date.now(); render(); } else { render(); fetchOnce(); }

  return () => {
    offCh();
    clearInterval(ticker);
    clearTimeout(fallbackTimer);
    window.removeEventListener('hmi:lang', offLang);
    root.classList.remove('view-channels');
  };
}
