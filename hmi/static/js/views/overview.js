// Overview: one tile per building — comm state, active alarms by priority,
// key values with quality/staleness, imbalance per resource. Grey unless abnormal.

import { live } from '../live.js';
import { t, fmtNum, fmtUnit, fmtTime, fmtDateTime } from '../i18n.js';
import { el } from '../main.js';
import { alarmBuildingIndex, alarmPriorityByTag, buildingComm, markAlarmedValues, perFrame, PRIORITIES } from '../sitemodel.js';

const KEY_ORDER = ['power', 't_supply', 't_return', 'heat_flow', 'flow', 't_outdoor'];
const KEY_LABEL = {
  power: 'overview.key.power', t_supply: 'overview.key.t_supply', t_return: 'overview.key.t_return',
  heat_flow: 'overview.key.heat_flow', flow: 'overview.key.flow', t_outdoor: 'overview.key.t_outdoor',
};

export function mount(root, params) {
  const site = live.site;
  const offs = [];
  const tiles = new Map();        // building id -> {tile, comm, alarms, alarmSig, commSig}
  const valueEls = new Map();     // tag -> [value elements] (marked when the tag is in alarm)
  const addValue = (tag, e) => {
    const arr = valueEls.get(tag);
    if (arr) arr.push(e); else valueEls.set(tag, [e]);
  };

  const head = el('div', { class: 'view-head' }, el('h1', { text: t('overview.title') }));
  root.append(head);
  const grid = el('div', { class: 'tiles' });
  root.append(grid);

  const buildings = (site && site.buildings) || [];
  if (!buildings.length) {
    grid.append(el('div', { class: 'empty', text: t('overview.no_buildings') }));
  }

  for (const b of buildings) {
    const tile = el('a', {
      class: 'tile', href: `#/building/${encodeURIComponent(b.id)}`,
      dataset: { building: b.id }, 'aria-label': t('overview.open', { id: b.id }),
    });
    const comm = el('div', { class: 'tile-comm', dataset: { comm: 'unknown' } });
    tile.append(el('div', { class: 'tile-head' },
      el('div', { class: 'tile-title' },
        el('span', { class: 'tile-id', text: b.id }),
        el('span', { class: 'tile-address', text: b.address || '' })),
      comm));
    const alarms = el('div', { class: 'tile-alarms', title: t('overview.alarms_title') });
    tile.append(alarms);

    const key = b.key || {};
    const values = el('div', { class: 'tile-values' });
    for (const k of KEY_ORDER) {
      const tag = key[k];
      if (!tag) continue;
      const def = site.tags && site.tags[tag];
      const unit = def ? def.unit : '';
      const v = el('span', { class: 'v' });
      offs.push(live.bind(v, tag));
      addValue(tag, v);
      values.append(el('div', { class: 'kv', dataset: { key: k } },
        el('span', { class: 'kv-label', text: t(KEY_LABEL[k]) }),
        el('span', { class: 'kv-value' }, v, el('span', { class: 'u', text: fmtUnit(unit) }))));
    }
    if (values.childElementCount) tile.append(values);

    const imb = key.imbalance || {};
    const resources = Object.keys(imb).filter((r) => imb[r]);
    if (resources.length) {
      const line = el('div', { class: 'tile-imb' }, el('span', { class: 'l', text: `${t('overview.imbalance')}:` }));
      for (const r of resources) {
        const v = el('span', { class: 'v' });
        offs.push(live.bind(v, imb[r], { fmt: (x) => fmtNum(x, '%') }));
        addValue(imb[r], v);
        line.append(el('span', { class: 'imb', dataset: { resource: r } },
          el('span', { class: 'l', text: t(`res.${r}`) }), v, el('span', { class: 'u', text: '%' })));
      }
      tile.append(line);
    }
    grid.append(tile);
    tiles.set(b.id, { b, tile, comm, alarms, alarmSig: '', commSig: '' });
  }

  // ---- alarms per building
  function renderAlarms() {
    const index = alarmBuildingIndex(site);
    const per = new Map();
    for (const a of live.alarms.values()) {
      const bid = index(a);
      if (!bid) continue;
      let c = per.get(bid);
      if (!c) { c = { n: {}, u: {} }; per.set(bid, c); }
      c.n[a.priority] = (c.n[a.priority] || 0) + 1;
      if (a.state === 'unack_active' || a.state === 'rtn_unack') c.u[a.priority] = (c.u[a.priority] || 0) + 1;
    }
    for (const [bid, x] of tiles) {
      const c = per.get(bid) || { n: {}, u: {} };
      const sig = JSON.stringify(c);
      if (sig !== x.alarmSig) {
        x.alarmSig = sig;
        x.alarms.textContent = '';
        let top = null;
        for (const p of PRIORITIES) {
          const n = c.n[p] || 0;
          if (!n) continue;
          if (!top) top = p;
          x.alarms.append(el('span', {
            class: `ta${c.u[p] ? ' unacked' : ''}`, dataset: { priority: p, count: String(n) },
            title: t('app.alarm_count_title', { prio: t(`prio.${p}`), n, u: c.u[p] || 0 }),
          }, el('span', { class: `prio-badge prio-${p}`, text: String(PRIORITIES.indexOf(p) + 1) }),
          el('span', { class: 'n', text: String(n) })));
        }
        if (!top) x.alarms.append(el('span', { class: 'none', text: t('overview.no_alarms') }));
        if (top) x.tile.dataset.alarm = top; else delete x.tile.dataset.alarm;
      }
    }
    markAlarmedValues(valueEls, alarmPriorityByTag(live.alarms));
  }

  // ---- comm per building (from the 'channels' frame)
  function renderComm() {
    for (const [, x] of tiles) {
      const c = buildingComm(site, x.b, live.devices, live.channels);
      let text;
      let sub = '';
      if (c.state === 'ok') {
        text = t('comm.ok');
        if (c.last) sub = t('comm.last', { t: fmtTime(c.last) });
      } else if (c.state === 'some') {
        text = t('comm.some', { n: c.lost, total: c.total });
        if (c.lostLast) sub = t('comm.last', { t: fmtDateTime(c.lostLast) });
      } else if (c.state === 'lost') {
        text = t('comm.lost');
        if (c.lostLast) sub = t('comm.last', { t: fmtDateTime(c.lostLast) });
      } else if (c.state === 'none') {
        text = t('comm.none');
      } else {
        text = t('comm.unknown');
      }
      if (c.degraded && c.state !== 'lost') text += ` · ${t('comm.degraded', { n: c.degraded })}`;
      const sig = `${c.state}|${text}|${sub}`;
      if (sig === x.commSig) continue;
      x.commSig = sig;
      x.comm.dataset.comm = c.state;
      x.comm.textContent = '';
      x.comm.append(el('span', { class: 'comm-main', text: text }));
      if (sub) x.comm.append(el('span', { class: 'comm-sub', text: sub }));
      x.tile.dataset.comm = c.state;
    }
  }

  renderAlarms();
  renderComm();
  // An alarm flood is many frames a second: draw once per animation frame.
  const alarmsLater = perFrame(renderAlarms);
  offs.push(live.on('alarms', alarmsLater), alarmsLater.cancel);
  offs.push(live.on('channels', renderComm));

  return () => { for (const off of offs) off(); };
}
