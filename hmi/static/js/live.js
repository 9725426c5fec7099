// One WebSocket to /api/v1/live: tag store, alarm list, channel/device stats,
// element bindings updated in one requestAnimationFrame batch, staleness.

import { api } from './api.js';
import { fmtNum, lang, t } from './i18n.js';

const USABLE = new Set(['good', 'manual', 'calculated', 'backfilled']);
const SPECIAL = { manual: 'q-manual', calculated: 'q-calculated', backfilled: 'q-backfilled' };
const ACTIVE_STATES = new Set(['unack_active', 'ack_active', 'rtn_unack']);
const BACKOFF_MAX_S = 10;
const HEARTBEAT_MS = 15000;              // no frame at all for this long: the connection is dead

const listeners = new Map();             // event -> Set(cb)
const bindings = new Map();              // tag name -> Set(binding)
const dirty = new Set();                 // tag names with bound elements to refresh
const prefixCount = new Map();           // prefix -> reference count

let ws = null;
let wsGen = 0;
let started = false;
let gotHello = false;
let backoff = 1;
let reconnectTimer = null;
let rafPending = false;
let skewMs = 0;
let channelsPoll = null;                 // interval id when the server has no channel pushes
let staleTimer = null;
let lastFrameAt = 0;                     // Date.now() of the last frame of the current socket
let heartbeatTimer = null;
let floodFetchSeq = 0;

/** Is a quality one whose value can be trusted? */
export function usable(quality) {
  return USABLE.has(quality);
}

export function isActiveState(state) {
  return ACTIVE_STATES.has(state);
}

function emit(event, arg) {
  const set = listeners.get(event);
  if (!set) return;
  for (const cb of Array.from(set)) {
    try { cb(arg); } catch (err) { console.error(`live '${event}' listener:`, err); }
  }
}

function hasListeners(event) {
  const set = listeners.get(event);
  return !!set && set.size > 0;
}

function parseTs(ts) {
  if (ts === null || ts === undefined) return null;
  const ms = Date.parse(ts);
  return Number.isNaN(ms) ? null : ms;
}

function schedule() {
  if (rafPending) return;
  rafPending = true;
  requestAnimationFrame(flush);
}

function staleLimitMs(name) {
  const site = live.site;
  if (!site || !site.tags) return null;
  const def = site.tags[name];
  const poll = def ? def.poll_s : null;
  if (poll === null || poll === undefined || !(poll > 0)) return null;
  const polls = (site.hmi && site.hmi.stale_polls) || 2;
  return polls * poll * 1000;
}

/** True when the tag's value is older than hmi.stale_polls poll periods (never for hand-read tags). */
function isStale(name) {
  const st = live.tags.get(name);
  if (!st || st.ts === null) return false;
  const limit = staleLimitMs(name);
  if (limit === null) return false;
  return serverNow() - st.ts > limit;
}

function serverNow() {
  return Date.now() + skewMs;
}

function setClass(el, cls, on) {
  if (on) el.classList.add(cls); else el.classList.remove(cls);
}

function qualityLabel(q) {
  const key = `q.${q}`;
  const s = t(key);
  return s === key ? q : s;
}

/** Write one binding if anything shown changed; return true when the text was written. */
function apply(b, st, now) {
  const probe = window.__hmiProbe;
  const value = st ? st.value : null;
  let text;
  try {
    if (b.fmt) text = b.fmt(value, st);
    else text = fmtNum(value === null && st && !USABLE.has(st.quality) ? st.last : value, st ? st.unit : undefined);
  } catch (err) {
    console.error('bind fmt', b.name, err);
    text = '—';
  }
  if (text !== b.text) {
    const node = b.el.firstChild;
    if (node && node.nodeType === 3 && !node.nextSibling) node.nodeValue = text;
    else b.el.textContent = text;
    b.text = text;
  }
  if (st && st.ts !== null && Array.isArray(probe)) probe.push(Date.now() - st.ts);
  if (b.quality) {
    const q = st ? st.quality : 'not_yet_read';
    const bad = !!st && !USABLE.has(q);
    if (bad !== b.bad) { setClass(b.el, 'q-bad', bad); b.bad = bad; }
    const special = SPECIAL[q] || null;
    if (special !== b.special) {
      if (b.special) b.el.classList.remove(b.special);
      if (special) b.el.classList.add(special);
      b.special = special;
    }
    if (q !== b.q) {
      b.q = q;
      if (bad || special) {
        b.el.dataset.q = qualityLabel(q);
        b.el.title = t('app.quality_title', { q: qualityLabel(q) });
      } else {
        delete b.el.dataset.q;
        b.el.removeAttribute('title');
      }
    }
    const stale = st ? isStaleAt(b.name, st, now) : false;
    if (stale !== b.stale) { setClass(b.el, 'stale', stale); b.stale = stale; }
  }
}

function isStaleAt(name, st, now) {
  if (st.ts === null) return false;
  const limit = staleLimitMs(name);
  return limit !== null && now - st.ts > limit;
}

function flush() {
  rafPending = false;
  if (dirty.size === 0) return;
  const t0 = performance.now();
  const now = serverNow();
  for (const name of dirty) {
    const set = bindings.get(name);
    if (!set) continue;
    const st = live.tags.get(name);
    for (const b of set) apply(b, st, now);
  }
  dirty.clear();
  live.stats.flushMs = performance.now() - t0;
}

// Once a second: staleness of bound elements (and forget bindings whose element left the page).
function staleLoop() {
  const now = serverNow();
  for (const [name, set] of bindings) {
    const st = live.tags.get(name);
    const limit = staleLimitMs(name);
    for (const b of set) {
      if (!b.el.isConnected) {
        if (b.gone) set.delete(b); else b.gone = true;
        continue;
      }
      b.gone = false;
      if (!b.quality) continue;
      const stale = !!st && st.ts !== null && limit !== null && now - st.ts > limit;
      if (stale !== b.stale) { setClass(b.el, 'stale', stale); b.stale = stale; }
    }
    if (set.size === 0) bindings.delete(name);
  }
  emit('tick', now);
}

function storeTags(list, isWs) {
  const t0 = performance.now();
  const probe = isWs ? window.__hmiProbeWs : null;
  const wantNames = hasListeners('tags');
  const names = wantNames ? [] : null;
  const now = Date.now();
  for (const item of list) {
    const name = item.name;
    const ts = parseTs(item.ts);
    let st = live.tags.get(name);
    if (st) {
      // Keep the last known value: shown greyed in the bad-quality box while the meter is silent.
      if (item.value !== null && item.value !== undefined) st.last = item.value;
      st.value = item.value;
      st.quality = item.quality;
      st.ts = ts;
      if (item.unit !== undefined) st.unit = item.unit;
    } else {
      st = { value: item.value, quality: item.quality, ts, unit: item.unit, last: item.value ?? null };
      live.tags.set(name, st);
    }
    if (probe && ts !== null && Array.isArray(probe)) probe.push(now - ts);
    if (bindings.has(name)) dirty.add(name);
    if (names) names.push(name);
  }
  if (dirty.size) schedule();
  live.stats.ingestMs = performance.now() - t0;
  if (names && names.length) emit('tags', names);
}

function setAlarms(list) {
  // 'alarmlist' listeners get the ids known before this list (null for the first list since
  // page load), so they can tell which alarms are new (e.g. raised while the connection was down).
  const known = live.alarmsLoaded ? new Map(live.alarms) : null;
  live.alarms.clear();
  for (const a of list || []) if (ACTIVE_STATES.has(a.state)) live.alarms.set(a.id, a);
  live.alarmsLoaded = true;
  emit('alarmlist', { known });
  emit('alarms', null);
}

function setFlood(flood) {
  live.flood = flood && typeof flood === 'object' ? flood : null;
}

/** The flood state from the server's active-alarm answer (when a flood_on alarm lacks the details). */
async function fetchFlood() {
  const seq = ++floodFetchSeq;
  try {
    const res = await api('/api/v1/alarms', { params: { state: 'active' } });
    if (seq !== floodFetchSeq || !res || !('flood' in res)) return;
    setFlood(res.flood);
    emit('alarms', null);
  } catch { /* the next alarms frame brings it */ }
}

function onFloodAlarm(entry, alarm) {
  const ev = entry && entry.event;
  if (ev === 'flood_off') {
    floodFetchSeq++;
    setFlood(null);
  } else if (ev === 'flood_on') {
    // The flood alarm's value is the number of new alarms in the window.
    const count = alarm && typeof alarm.value === 'number' ? alarm.value : null;
    const firstOut = alarm ? alarm.first_out : undefined;
    if (count !== null && firstOut !== undefined) {
      floodFetchSeq++;
      setFlood({ active_since: alarm.active_since || (entry && entry.ts) || null, count, first_out: firstOut });
    } else {
      // Show the banner at once; the details follow from the server.
      setFlood({ active_since: (alarm && alarm.active_since) || (entry && entry.ts) || null,
        count, first_out: firstOut || null });
      fetchFlood();
    }
  }
}

function onAlarm(entry, alarm) {
  if (entry && (entry.event === 'flood_on' || entry.event === 'flood_off')) onFloodAlarm(entry, alarm);
  if (alarm && alarm.id) {
    if (ACTIVE_STATES.has(alarm.state)) live.alarms.set(alarm.id, alarm);
    else live.alarms.delete(alarm.id);
  }
  emit('alarms', { entry, alarm });
}

function setConnected(on) {
  if (live.connected === on) return;
  live.connected = on;
  emit('conn', on);
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify(obj));
    return true;
  }
  return false;
}

async function pollChannels() {
  try {
    const [ch, dev] = await Promise.all([api('/api/v1/channels'), api('/api/v1/devices')]);
    live.channels = ch.channels || [];
    live.devices = dev.devices || [];
    emit('channels', { channels: live.channels, devices: live.devices });
  } catch { /* shown by the connection state */ }
}

function startChannelsPoll() {
  if (channelsPoll) return;
  pollChannels();
  channelsPoll = setInterval(() => { if (live.connected) pollChannels(); }, 5000);
}

function setServerTime(iso) {
  const st = parseTs(iso);
  if (st !== null) skewMs = st - Date.now();
}

function onMessage(ev) {
  let msg;
  try { msg = JSON.parse(ev.data); } catch { return; }
  switch (msg.type) {
    case 'hello': {
      gotHello = true;
      setServerTime(msg.server_time);
      backoff = 1;
      setConnected(true);
      emit('hello', msg);
      break;
    }
    case 'alarms':
      floodFetchSeq++;
      setFlood(msg.flood);
      setAlarms(msg.alarms);
      break;
    case 'alarm':
      onAlarm(msg.entry, msg.alarm);
      break;
    case 'snapshot':
    case 'tags':
      storeTags(msg.tags || [], msg.type === 'tags');
      break;
    case 'channels':
      if (msg.server_time) setServerTime(msg.server_time);
      live.channels = msg.channels || [];
      live.devices = msg.devices || [];
      emit('channels', { channels: live.channels, devices: live.devices });
      break;
    case 'error':
      // An older server does not push channel statistics: poll them instead.
      if (typeof msg.error === 'string' && msg.error.includes("'channels'")) startChannelsPoll();
      else console.warn('live:', msg.error);
      break;
    default:
      break;
  }
}

function wsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = lang() === 'en' ? '?lang=en' : '';
  return `${proto}//${location.host}/api/v1/live${q}`;
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (!started) return;
  const gen = ++wsGen;
  gotHello = false;
  let sock;
  try {
    sock = new WebSocket(wsUrl());
  } catch (err) {
    console.warn('live: cannot open', err);
    scheduleReconnect();
    return;
  }
  ws = sock;
  lastFrameAt = Date.now();
  sock.onopen = () => {
    if (gen !== wsGen) return;
    lastFrameAt = Date.now();
    const prefixes = Array.from(prefixCount.keys());
    if (prefixes.length) send({ subscribe: prefixes });
    send({ channels: true });
  };
  sock.onmessage = (ev) => {
    if (gen !== wsGen) return;
    lastFrameAt = Date.now();
    onMessage(ev);
  };
  sock.onclose = (ev) => {
    if (gen !== wsGen) return;
    ws = null;
    const hadHello = gotHello;
    setConnected(false);
    if (ev.code === 4401 || ev.code === 4403) {
      started = false;
      window.dispatchEvent(new CustomEvent('hmi:unauthorized', { detail: { ws: ev.code } }));
      return;
    }
    if (!hadHello) {
      // Refused before the hello: the session may be gone (the handshake gets a 401).
      api('/api/v1/me').catch(() => {});
    }
    scheduleReconnect();
  };
  sock.onerror = () => { /* onclose follows */ };
}

// While connected, the server pushes a 'channels' frame every 5 s: a silence of
// HEARTBEAT_MS means a dead connection (no close seen): drop it and reconnect. The same
// for a handshake that hangs. (An older server without channel pushes is not watched.)
function heartbeat() {
  if (!started || !ws || channelsPoll) return;
  if (ws.readyState !== WebSocket.OPEN && ws.readyState !== WebSocket.CONNECTING) return;
  if (Date.now() - lastFrameAt <= HEARTBEAT_MS) return;
  console.warn('live: no frame for', HEARTBEAT_MS / 1000, 's, reconnecting');
  const sock = ws;
  wsGen++;                               // ignore anything the old socket still does
  ws = null;
  try { sock.close(4000, 'heartbeat'); } catch { /* closed */ }
  setConnected(false);
  scheduleReconnect();
}

function scheduleReconnect() {
  if (!started || reconnectTimer) return;
  const delay = backoff;
  backoff = Math.min(backoff * 2, BACKOFF_MAX_S);
  reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay * 1000);
}

export const live = {
  site: null,
  tags: new Map(),
  alarms: new Map(),
  channels: [],
  devices: [],
  flood: null,               // {active_since, count, first_out} while an alarm flood is on
  alarmsLoaded: false,       // an 'alarms' list arrived since the page was loaded
  connected: false,
  /** Cost of the last batch (ms): reading a tags frame into the store, writing bound elements. */
  stats: { ingestMs: 0, flushMs: 0 },

  /** Open the connection (after login); idempotent. */
  start() {
    if (!staleTimer) staleTimer = setInterval(staleLoop, 1000);
    if (!heartbeatTimer) heartbeatTimer = setInterval(heartbeat, 1000);
    if (started && ws) return;
    started = true;
    backoff = 1;
    connect();
  },

  /** Close the connection and stop reconnecting (logout). */
  stop() {
    started = false;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    wsGen++;
    if (ws) { try { ws.close(1000); } catch { /* closed */ } }
    ws = null;
    if (channelsPoll) { clearInterval(channelsPoll); channelsPoll = null; }
    setConnected(false);
  },

  /** Reconnect now (e.g. after a language switch, for localized alarm messages). */
  reconnect() {
    if (!started) return;
    wsGen++;
    if (ws) { try { ws.close(1000); } catch { /* closed */ } }
    ws = null;
    backoff = 1;
    connect();
  },

  subscribe(prefixes) {
    const fresh = [];
    for (const p of prefixes) {
      const n = prefixCount.get(p) || 0;
      prefixCount.set(p, n + 1);
      if (n === 0) fresh.push(p);
    }
    if (fresh.length) send({ subscribe: fresh });
  },

  unsubscribe(prefixes) {
    const gone = [];
    for (const p of prefixes) {
      const n = prefixCount.get(p) || 0;
      if (n <= 1) {
        if (n === 1) gone.push(p);
        prefixCount.delete(p);
      } else {
        prefixCount.set(p, n - 1);
      }
    }
    if (gone.length) send({ unsubscribe: gone });
  },

  on(event, cb) {
    let set = listeners.get(event);
    if (!set) { set = new Set(); listeners.set(event, set); }
    set.add(cb);
    return () => set.delete(cb);
  },

  /**
   * Show tag `tagName` in `el`: its text follows the value (formatted by
   * opts.fmt(value, state) or fmtNum), classes q-bad / stale / q-manual... follow
   * quality and age (unless opts.quality === false). The element gets
   * data-tag="<name>" unless opts.tagAttr === false (for derived values). Returns unbind().
   */
  bind(el, tagName, opts = {}) {
    const b = {
      el, name: tagName, fmt: opts.fmt || null, quality: opts.quality !== false,
      text: undefined, bad: false, stale: false, special: null, q: undefined, gone: false,
    };
    if (opts.tagAttr !== false) el.dataset.tag = tagName;
    let set = bindings.get(tagName);
    if (!set) { set = new Set(); bindings.set(tagName, set); }
    set.add(b);
    dirty.add(tagName);
    schedule();
    return () => {
      const s = bindings.get(tagName);
      if (s) { s.delete(b); if (s.size === 0) bindings.delete(tagName); }
    };
  },

  /** Re-render every bound element (after a language switch). */
  refreshAll() {
    for (const [name, set] of bindings) {
      for (const b of set) { b.text = undefined; b.q = undefined; }
      dirty.add(name);
    }
    schedule();
  },

  /** Handle one server frame as if it came over the WebSocket (tests and benchmarks). */
  injectFrame(msg) {
    onMessage({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) });
  },

  isStale,
  serverNow,
  usable,
  get bindingCount() {
    let n = 0;
    for (const s of bindings.values()) n += s.size;
    return n;
  },
};

window.addEventListener('hmi:lang', () => live.refreshAll());
