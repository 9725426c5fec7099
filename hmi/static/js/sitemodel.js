// Site model helpers shared by the views: which building an alarm or device
// belongs to, a building's comm state, meter lookups, priorities.

export const PRIORITIES = ['critical', 'high', 'medium', 'low'];
export const ACTIVE_STATES = new Set(['unack_active', 'ack_active', 'rtn_unack']);
export const UNACKED_STATES = new Set(['unack_active', 'rtn_unack']);
export const RESOURCES = ['heat', 'cold_water', 'hot_water', 'electricity', 'gas'];

export function priorityRank(p) {
  const i = PRIORITIES.indexOf(p);
  return i < 0 ? PRIORITIES.length : i;
}

const indexCache = new WeakMap();

function indexes(site) {
  let x = indexCache.get(site);
  if (x) return x;
  const dev = new Map();      // device -> building id
  const tag = new Map();      // tag -> building id
  const meter = new Map();    // meter id -> meter
  for (const b of (site && site.buildings) || []) {
    for (const d of b.devices || []) dev.set(d, b.id);
    for (const m of b.meters || []) {
      meter.set(m.id, m);
      if (m.device) dev.set(m.device, b.id);
      for (const tg of m.tags || []) tag.set(tg, b.id);
      if (m.tag) tag.set(m.tag, b.id);
    }
    const key = b.key || {};
    for (const [k, v] of Object.entries(key)) {
      if (k === 'imbalance' && v) {
        for (const tg of Object.values(v)) if (tg) tag.set(tg, b.id);
      }
    }
  }
  for (const [d, info] of Object.entries((site && site.devices) || {})) {
    if (info && info.building && !dev.has(d)) dev.set(d, info.building);
  }
  x = { dev, tag, meter };
  indexCache.set(site, x);
  return x;
}

/** A function alarm -> building id (or null) for `site`. */
export function alarmBuildingIndex(site) {
  const { dev, tag } = indexes(site);
  const tagDevice = (name) => {
    const def = site && site.tags && site.tags[name];
    if (def && def.device) return def.device;
    const i = name.indexOf('.');
    return i > 0 ? name.slice(0, i) : name;
  };
  return (a) => {
    if (a.tag && tag.has(a.tag)) return tag.get(a.tag);
    if (a.device && dev.has(a.device)) return dev.get(a.device);
    if (a.tag) {
      const d = tagDevice(a.tag);
      if (dev.has(d)) return dev.get(d);
    }
    // verification:<meter> and similar ids name a meter or a device after the colon.
    const id = String(a.id || '');
    const parts = id.split(':');
    for (const p of parts.slice(1)) {
      if (dev.has(p)) return dev.get(p);
      const m = indexes(site).meter.get(p);
      if (m && m.building) return m.building;
    }
    return null;
  };
}

export function meterById(site, id) {
  return indexes(site).meter.get(id) || null;
}

/** Last sign of life of a device health object, in ms (or null). */
export function lastContact(d) {
  const v = d.last_good || d.last_uplink || d.last_ts || null;
  if (!v) return null;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? null : ms;
}

/** Devices (health objects of the 'channels' frame) by name. */
export function deviceMap(devices) {
  const m = new Map();
  for (const d of devices || []) m.set(d.name, d);
  return m;
}

/**
 * Comm state of a building from the devices' health:
 * {state: 'ok'|'some'|'lost'|'unknown'|'none', total, lost, degraded, last, lostLast}.
 * Hand-read devices have no link and do not count.
 */
export function buildingComm(site, b, devices) {
  if (!devices || !devices.length) return { state: 'unknown', total: 0, lost: 0, degraded: 0 };
  const byName = deviceMap(devices);
  let total = 0; let lost = 0; let degraded = 0; let unread = 0;
  let last = null; let lostLast = null;
  for (const name of b.devices || []) {
    const d = byName.get(name);
    if (!d || d.state === 'manual') continue;
    total++;
    const lc = lastContact(d);
    if (d.state === 'comm_loss') {
      lost++;
      if (lc !== null && (lostLast === null || lc > lostLast)) lostLast = lc;
    } else if (d.state === 'degraded' || d.state === 'decode_failed') {
      degraded++;
    } else if (d.state === 'not_yet_read') {
      unread++;
    }
    if (lc !== null && (last === null || lc > last)) last = lc;
  }
  let state;
  if (total === 0) state = 'none';
  else if (lost === total) state = 'lost';
  else if (lost > 0) state = 'some';
  else if (unread === total) state = 'unknown';
  else state = 'ok';
  return { state, total, lost, degraded, last, lostLast };
}

/** The point of a tag name: 'b1-heat.power_kw' -> 'power_kw'. */
export function tagPoint(name) {
  const i = name.indexOf('.');
  return i >= 0 ? name.slice(i + 1) : name;
}

/** Map tag name -> highest priority among the active alarms on that tag. */
export function alarmPriorityByTag(alarms) {
  const out = new Map();
  for (const a of alarms.values ? alarms.values() : alarms) {
    if (!a.tag || !ACTIVE_STATES.has(a.state)) continue;
    const prev = out.get(a.tag);
    if (!prev || priorityRank(a.priority) < priorityRank(prev)) out.set(a.tag, a.priority);
  }
  return out;
}

/** Mark value elements (Map tag -> element[]) whose tag is in alarm with data-alarm="<priority>". */
export function markAlarmedValues(elementsByTag, prioByTag) {
  for (const [tag, els] of elementsByTag) {
    const p = prioByTag.get(tag) || null;
    for (const e of els) {
      if ((e.dataset.alarm || null) === p) continue;
      if (p) {
        e.dataset.alarm = p;
        e.dataset.prioNo = String(priorityRank(p) + 1);
      } else {
        delete e.dataset.alarm;
        delete e.dataset.prioNo;
      }
    }
  }
}

/** Wrap `fn` so that many calls within one frame run it once, in the next animation frame. */
export function perFrame(fn) {
  let queued = false;
  let alive = true;
  const run = () => {
    queued = false;
    if (alive) fn();
  };
  const call = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(run);
  };
  call.cancel = () => { alive = false; };
  return call;
}
