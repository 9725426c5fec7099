// #/alarms — the alarm list (ISA-18.2 / ISA-101): live active list, state and building filters,
// acknowledge (one, selected, all visible), shelve/unshelve, comment, out of service.

import { api } from '../api.js';
import { fmtDateTime, fmtNum, fmtUnit, lang, t } from '../i18n.js';
import { live } from '../live.js';
import { can } from '../main.js';
import { closeDialogs, formDialog, h, toast, toastError, wbr } from '../widgets.js';

export const PRIORITIES = ['critical', 'high', 'medium', 'low'];
const PRIO_MARK = { critical: '1', high: '2', medium: '3', low: '4' };
const PRIO_SHAPE = { critical: '▲', high: '◆', medium: '■', low: '●' };
const FILTERS = ['active', 'unacked', 'shelved', 'suppressed', 'out_of_service'];
const LIVE_FILTERS = new Set(['active', 'unacked']);
const UNACKED = new Set(['unack_active', 'rtn_unack']);
const ANNUNCIATED = new Set(['unack_active', 'ack_active', 'rtn_unack']);
const SHELVE_CHOICES = [15, 60, 240, 480, 1440];

/** Priority badge: colour (for annunciated alarms) plus a number, the shape in the title. */
export function prioBadge(priority, muted = false) {
  const p = PRIO_MARK[priority] ? priority : 'low';
  return h(`span.prio-badge.prio-${p}`, {
    class: muted ? 'prio-muted' : null,
    title: `${PRIO_SHAPE[p]} ${t(`prio.${p}`)}`,
    'aria-label': t(`prio.${p}`),
  }, PRIO_MARK[p]);
}

function langParam() {
  return lang() === 'en' ? { lang: 'en' } : {};
}

function alarmPath(id, action) {
  return `/api/v1/alarms/${encodeURIComponent(id)}${action ? `/${action}` : ''}`;
}

/** The building an alarm belongs to (by its device, else its tag's device, else an id prefix). */
function buildingOf(alarm, site) {
  if (!site) return null;
  const devices = site.devices || {};
  const tags = site.tags || {};
  let dev = alarm.device;
  if (!dev && alarm.tag && tags[alarm.tag]) dev = tags[alarm.tag].device;
  if (dev && devices[dev] && devices[dev].building) return devices[dev].building;
  const names = [dev, alarm.tag, alarm.id].filter(Boolean);
  for (const b of site.buildings || []) {
    const re = new RegExp(`(^|[-:.])${b.id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[-.]`);
    if (names.some((n) => n.startsWith(`${b.id}-`) || re.test(n))) return b.id;
  }
  return null;
}

function sortAlarms(list) {
  const rank = (p) => { const i = PRIORITIES.indexOf(p); return i < 0 ? 9 : i; };
  return list.sort((a, b) => rank(a.priority) - rank(b.priority)
    || String(b.active_since || b.acked_at || '').localeCompare(String(a.active_since || a.acked_at || ''))
    || a.id.localeCompare(b.id));
}

export function mount(root, params = {}) {
  const st = {
    filter: FILTERS.includes(params.state) ? params.state : 'active',
    building: params.building || '',
    selected: new Set(),
    expanded: new Set(),
    fetched: null,          // alarms of a non-live filter, from the API
    loading: false,
    error: null,
    busy: new Set(),        // ids with an action under way
  };
  const rows = new Map();   // id -> {tr, sig, details}
  const perm = {
    ack: can('ack'), shelve: can('shelve'), comment: can('comment'), oos: can('out_of_service'),
  };
  const anyAction = perm.ack || perm.shelve || perm.comment || perm.oos;
  let fetchSeq = 0;
  let refetchTimer = 0;

  root.classList.add('view-alarms');

  // ------------------------------------------------------------ skeleton

  const flood = h('div.flood-banner', { id: 'alarms-flood', role: 'status', hidden: true });
  const filterBtns = FILTERS.map((f) => h('button.seg-btn.alarm-filter', {
    type: 'button', id: `alarms-filter-${f}`, dataset: { state: f },
    onclick: () => setFilter(f),
  }));
  const buildingSel = h('select.alarms-building', { id: 'alarms-building', onchange: () => {
    st.building = buildingSel.value;
    st.selected.clear();
    syncHash();
    render();
  } });
  const ackSelected = perm.ack ? h('button.btn.btn-ack', { type: 'button', id: 'ack-selected', onclick: ackSelectedClick }) : null;
  const ackVisible = perm.ack ? h('button.btn', { type: 'button', id: 'ack-visible', onclick: ackVisibleClick }) : null;
  const status = h('p.alarms-status', { id: 'alarms-status', role: 'status' });
  const selAll = perm.ack ? h('input.sel-all', { type: 'checkbox', id: 'alarms-sel-all', onchange: () => {
    for (const a of visible()) {
      if (selAll.checked && UNACKED.has(a.state)) st.selected.add(a.id); else st.selected.delete(a.id);
    }
    render();
  } }) : null;
  const headCells = [
    perm.ack ? h('th.col-sel.kiosk-hide', null, selAll) : null,
    h('th.col-prio', { dataset: { k: 'alarms.col.priority' } }),
    h('th.col-state', { dataset: { k: 'alarms.col.state' } }),
    h('th.col-time', { dataset: { k: 'alarms.col.time' } }),
    h('th.col-msg', { dataset: { k: 'alarms.col.message' } }),
    h('th.col-tag', { dataset: { k: 'alarms.col.tag' } }),
    h('th.col-value', { dataset: { k: 'alarms.col.value' } }),
    h('th.col-count', { dataset: { k: 'alarms.col.count' } }),
    h('th.col-acked', { dataset: { k: 'alarms.col.acked' } }),
    anyAction ? h('th.col-actions.kiosk-hide', { dataset: { k: 'alarms.col.actions' } }) : h('th.col-actions.kiosk-hide'),
  ];
  const tbody = h('tbody', { id: 'alarms-body' });
  const table = h('table.tbl.alarms-table', { id: 'alarms-table' }, h('thead', null, h('tr', null, headCells)), tbody);
  const title = h('h1.view-title');
  root.append(
    h('div.view-head', null, title),
    flood,
    h('div.alarms-toolbar.toolbar', null,
      h('div.seg', { role: 'group', id: 'alarms-filters' }, filterBtns),
      h('label.field', null, h('span.field-label', { dataset: { k: 'alarms.building' } }), buildingSel),
      h('div.spacer'),
      ackSelected, ackVisible),
    status,
    h('div.tbl-wrap', null, table),
  );

  // ------------------------------------------------------------ data

  function source() {
    if (LIVE_FILTERS.has(st.filter)) {
      const all = Array.from(live.alarms.values());
      return st.filter === 'unacked' ? all.filter((a) => UNACKED.has(a.state)) : all;
    }
    return st.fetched || [];
  }

  function visible() {
    let list = source();
    if (st.building) list = list.filter((a) => buildingOf(a, live.site) === st.building);
    return sortAlarms(list.slice());
  }

  async function fetchList() {
    if (LIVE_FILTERS.has(st.filter)) return;
    const seq = ++fetchSeq;
    st.loading = st.fetched === null;
    st.error = null;
    render();
    try {
      const res = await api('/api/v1/alarms', { params: { state: st.filter, ...langParam() } });
      if (seq !== fetchSeq) return;
      st.fetched = res.alarms || [];
    } catch (err) {
      if (seq !== fetchSeq) return;
      st.error = err;
      st.fetched = st.fetched || [];
    }
    st.loading = false;
    render();
  }

  function scheduleRefetch(delay = 400) {
    if (LIVE_FILTERS.has(st.filter)) return;
    clearTimeout(refetchTimer);
    refetchTimer = setTimeout(fetchList, delay);
  }

  function setFilter(f) {
    if (f === st.filter) return;
    st.filter = f;
    st.fetched = null;
    st.selected.clear();
    st.expanded.clear();
    syncHash();
    render();
    fetchList();
  }

  function syncHash() {
    const q = new URLSearchParams();
    if (st.filter !== 'active') q.set('state', st.filter);
    if (st.building) q.set('building', st.building);
    const s = q.toString();
    const hash = `#/alarms${s ? `?${s}` : ''}`;
    if (location.hash !== hash) history.replaceState(history.state, '', hash);
  }

  // ------------------------------------------------------------ actions

  async function act(alarm, action, body, okKey) {
    st.busy.add(alarm.id);
    render();
    try {
      await api(alarmPath(alarm.id, action), { method: 'POST', body: body || {}, params: langParam() });
      toast(t(okKey, { id: alarm.id }));
      scheduleRefetch(100);
    } catch (err) {
      toastError(t(`alarms.err.${action}`), err);
      throw err;
    } finally {
      st.busy.delete(alarm.id);
      render();
    }
  }

  function ackOne(alarm) {
    act(alarm, 'ack', {}, 'alarms.ok.ack').catch(() => {});
  }

  async function ackMany(ids) {
    if (!ids.length) return;
    ids.forEach((id) => st.busy.add(id));
    render();
    try {
      const res = await api('/api/v1/alarms/ack', { method: 'POST', body: { ids }, params: langParam() });
      const acked = res.acked || [];
      const errors = Object.entries(res.errors || {});
      if (acked.length) toast(t('alarms.ok.ack_many', { n: acked.length }));
      if (errors.length) {
        const [id, why] = errors[0];
        toast(t('alarms.err.ack_some', { n: errors.length, id, why }) , 'error');
      }
      acked.forEach((id) => st.selected.delete(id));
      scheduleRefetch(100);
    } catch (err) {
      toastError(t('alarms.err.ack'), err);
    } finally {
      ids.forEach((id) => st.busy.delete(id));
      render();
    }
  }

  function ackSelectedClick() {
    const vis = new Map(visible().map((a) => [a.id, a]));
    const ids = [...st.selected].filter((id) => vis.has(id) && UNACKED.has(vis.get(id).state));
    if (!ids.length) { toast(t('alarms.none_selected'), 'error'); return; }
    ackMany(ids);
  }

  function ackVisibleClick() {
    const ids = visible().filter((a) => UNACKED.has(a.state)).map((a) => a.id);
    if (!ids.length) { toast(t('alarms.none_unacked'), 'error'); return; }
    formDialog({
      title: t('alarms.ack_visible_title'),
      text: t('alarms.ack_visible_text', { n: ids.length }),
      fields: [],
      okId: 'ack-visible-ok',
      okLabel: t('alarms.ack_visible'),
      onSubmit: () => { ackMany(ids); },
    });
  }

  function shelveDialog(alarm) {
    formDialog({
      title: t('alarms.shelve_title'),
      text: alarm.message,
      fields: [
        { id: 'shelve-reason', label: t('alarms.shelve_reason'), type: 'text', required: true },
        { id: 'shelve-minutes', label: t('alarms.shelve_minutes'), type: 'number', value: 60, min: 1, step: 1, required: true,
          choices: SHELVE_CHOICES.map((m) => ({ value: m, label: m < 60 ? t('alarms.min', { n: m }) : t('alarms.hours', { n: m / 60 }) })) },
      ],
      okId: 'shelve-ok',
      okLabel: t('alarms.shelve'),
      onSubmit: async (v) => {
        const minutes = Number(v['shelve-minutes']);
        if (!(minutes > 0)) throw new Error(t('alarms.bad_minutes'));
        await apiOrThrow(alarm, 'shelve', { reason: v['shelve-reason'], minutes });
        toast(t('alarms.ok.shelve', { id: alarm.id }));
      },
    });
  }

  function commentDialog(alarm) {
    const canAckToo = perm.ack && UNACKED.has(alarm.state);
    formDialog({
      title: t('alarms.comment_title'),
      text: alarm.message,
      fields: [
        { id: 'comment-text', label: t('alarms.comment_text'), type: 'textarea', required: true },
        ...(canAckToo ? [{ id: 'comment-ack', label: t('alarms.comment_and_ack'), type: 'checkbox', value: false }] : []),
      ],
      okId: 'comment-ok',
      okLabel: t('alarms.comment_save'),
      onSubmit: async (v) => {
        if (v['comment-ack']) {
          await apiOrThrow(alarm, 'ack', { comment: v['comment-text'] });
          toast(t('alarms.ok.ack', { id: alarm.id }));
        } else {
          await apiOrThrow(alarm, 'comment', { comment: v['comment-text'] });
          toast(t('alarms.ok.comment', { id: alarm.id }));
        }
      },
    });
  }

  function oosDialog(alarm) {
    formDialog({
      title: t('alarms.oos_title'),
      text: alarm.message,
      fields: [{ id: 'oos-reason', label: t('alarms.oos_reason'), type: 'text', required: true }],
      okId: 'oos-ok',
      okLabel: t('alarms.oos'),
      onSubmit: async (v) => {
        await apiOrThrow(alarm, 'out_of_service', { reason: v['oos-reason'] });
        toast(t('alarms.ok.out_of_service', { id: alarm.id }));
      },
    });
  }

  // In a dialog: an error stays in the dialog (and a toast) so the user can correct and retry.
  async function apiOrThrow(alarm, action, body) {
    try {
      await api(alarmPath(alarm.id, action), { method: 'POST', body, params: langParam() });
      scheduleRefetch(100);
    } catch (err) {
      toastError(t(`alarms.err.${action}`), err);
      throw err;
    }
  }

  // ------------------------------------------------------------ rendering

  function labelled(cls, key, ...content) {
    return h(`td.${cls}`, { dataset: { label: t(key) } }, ...content);
  }

  function actionButtons(a) {
    const busy = st.busy.has(a.id);
    const out = [];
    if (perm.ack && UNACKED.has(a.state)) {
      out.push(h('button.btn.btn-ack.ack', { type: 'button', disabled: busy, onclick: () => ackOne(a) }, t('alarms.ack')));
    } else if (perm.ack) {
      out.push(h('span.act-gap', { 'aria-hidden': 'true' }));   // keeps the button grid aligned
    }
    if (perm.shelve && a.state === 'shelved') {
      out.push(h('button.btn.unshelve', { type: 'button', disabled: busy,
        onclick: () => act(a, 'unshelve', {}, 'alarms.ok.unshelve').catch(() => {}) }, t('alarms.unshelve')));
    } else if (perm.shelve && a.state !== 'out_of_service') {
      out.push(h('button.btn.shelve', { type: 'button', disabled: busy, onclick: () => shelveDialog(a) }, t('alarms.shelve')));
    }
    if (perm.comment) {
      out.push(h('button.btn.comment', { type: 'button', disabled: busy, onclick: () => commentDialog(a) }, t('alarms.comment')));
    }
    if (perm.oos) {
      if (a.state === 'out_of_service' || a.out_of_service) {
        out.push(h('button.btn.btn-ins.in-service-btn', { type: 'button', disabled: busy,
          onclick: () => act(a, 'in_service', {}, 'alarms.ok.in_service').catch(() => {}) }, t('alarms.in_service')));
      } else {
        out.push(h('button.btn.btn-oos.oos', { type: 'button', disabled: busy, onclick: () => oosDialog(a) }, t('alarms.oos')));
      }
    }
    return out;
  }

  function stateText(a) {
    const parts = [t(`state.${a.state}`)];
    if (a.state === 'shelved' && a.shelved_until) parts.push(t('alarms.until', { time: fmtDateTime(a.shelved_until) }));
    return parts.join(' ');
  }

  function buildRow(a) {
    const unit = a.tag && live.site && live.site.tags && live.site.tags[a.tag] ? live.site.tags[a.tag].unit : null;
    const u = unit ? `\u00a0${fmtUnit(unit)}` : '';
    const unacked = UNACKED.has(a.state);
    const muted = !ANNUNCIATED.has(a.state);
    const value = a.value === null || a.value === undefined ? '—' : `${fmtNum(a.value, unit)}${typeof a.value === 'number' ? u : ''}`;
    const limit = a.limit === null || a.limit === undefined ? '' : ` / ${fmtNum(a.limit, unit)}${typeof a.limit === 'number' ? u : ''}`;
    const expanded = st.expanded.has(a.id);
    const sel = perm.ack ? h('td.col-sel.kiosk-hide', null, h('input.sel', {
      type: 'checkbox', checked: st.selected.has(a.id), 'aria-label': t('alarms.select'), disabled: !unacked,
      onchange: (e) => { if (e.target.checked) st.selected.add(a.id); else st.selected.delete(a.id); render(); },
    })) : null;
    const comments = (a.comments || []).length;
    const toggle = () => {
      if (st.expanded.has(a.id)) st.expanded.delete(a.id); else st.expanded.add(a.id);
      render();
    };
    // a span, not a button: the wall (kiosk) mode hides buttons but must show the message
    const msg = h('span.linklike.alarm-msg', { role: 'button', tabindex: 0, 'aria-expanded': expanded ? 'true' : 'false',
      title: t('alarms.details'), onclick: toggle,
      onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); } } }, a.message, comments ? h('span.alarm-comments', { title: t('alarms.comments_n', { n: comments }) }, ` ✎${comments}`) : null);
    const tr = h('tr.alarm-row', {
      class: [unacked ? 'unacked' : '', muted ? 'muted' : '', `prio-row-${a.priority}`].filter(Boolean).join(' '),
      dataset: { alarmId: a.id, state: a.state, priority: a.priority },
    },
    sel,
    labelled('col-prio', 'alarms.col.priority', prioBadge(a.priority, muted)),
    labelled('col-state', 'alarms.col.state', h('span.state-badge', { dataset: { state: a.state } }, stateText(a))),
    labelled('col-time', 'alarms.col.time', a.active_since ? fmtDateTime(a.active_since) : '—'),
    labelled('col-msg', 'alarms.col.message', msg),
    labelled('col-tag', 'alarms.col.tag', a.tag
      ? h('a.alarm-tag', { href: `#/trends?tags=${encodeURIComponent(a.tag)}`, title: t('alarms.open_trend') }, wbr(a.tag))
      : h('span.alarm-tag', null, a.device || '—')),
    labelled('col-value', 'alarms.col.value', value + limit),
    labelled('col-count', 'alarms.col.count', String(a.count ?? '')),
    labelled('col-acked', 'alarms.col.acked', a.acked_by ? `${a.acked_by} ${a.acked_at ? fmtDateTime(a.acked_at) : ''}` : '—'),
    h('td.col-actions.kiosk-hide', null, h('div.actions', null, actionButtons(a))));
    // every blinking row in the same phase, whenever it was (re)built
    const phase = document.timeline && document.timeline.currentTime ? document.timeline.currentTime % 2000 : 0;
    tr.style.setProperty('--blink-phase', `-${Math.round(phase)}ms`);
    let details = null;
    if (expanded) details = buildDetails(a);
    return { tr, details };
  }

  function buildDetails(a) {
    const cols = (perm.ack ? 1 : 0) + 9;
    const items = [];
    items.push(h('div.det-line', null, h('span.det-k', null, t('alarms.det.id')), h('code', null, a.id)));
    if (a.device) items.push(h('div.det-line', null, h('span.det-k', null, t('alarms.det.device')), a.device));
    if (a.shelved_by) {
      items.push(h('div.det-line', null, h('span.det-k', null, t('alarms.det.shelved')),
        `${a.shelved_by}: ${a.shelve_reason || ''}${a.shelved_until ? ` (${t('alarms.until', { time: fmtDateTime(a.shelved_until) })})` : ''}`));
    }
    if (a.suppressed_by) items.push(h('div.det-line', null, h('span.det-k', null, t('alarms.det.suppressed')), a.suppressed_by));
    if (a.out_of_service_by) {
      items.push(h('div.det-line', null, h('span.det-k', null, t('alarms.det.oos')),
        `${a.out_of_service_by}: ${a.out_of_service_reason || ''}`));
    }
    const comments = a.comments || [];
    items.push(h('div.det-line', null, h('span.det-k', null, t('alarms.det.comments')),
      comments.length ? h('ul.det-comments', null, comments.map((c) => h('li', null,
        h('span.det-when', null, `${fmtDateTime(c.ts)} ${c.user}: `), c.text))) : t('alarms.det.no_comments')));
    items.push(h('div.det-links', null,
      h('a.btn.btn-small', { href: `#/journal?alarm=${encodeURIComponent(a.id)}` }, t('alarms.open_journal')),
      a.tag ? h('a.btn.btn-small', { href: `#/trends?tags=${encodeURIComponent(a.tag)}` }, t('alarms.open_trend')) : null));
    return h('tr.alarm-details', { dataset: { alarmId: a.id } }, h('td', { colspan: cols }, h('div.det', null, items)));
  }

  function renderStatic() {
    title.textContent = t('alarms.title');
    for (const th of table.querySelectorAll('th[data-k]')) th.textContent = t(th.dataset.k);
    for (const span of root.querySelectorAll('.field-label[data-k]')) span.textContent = t(span.dataset.k);
    const cur = buildingSel.value || st.building;
    buildingSel.textContent = '';
    buildingSel.append(h('option', { value: '' }, t('alarms.all_buildings')));
    for (const b of (live.site && live.site.buildings) || []) {
      buildingSel.append(h('option', { value: b.id }, b.address ? `${b.id} — ${b.address}` : b.id));
    }
    buildingSel.value = cur;
    if (selAll) selAll.setAttribute('aria-label', t('alarms.select_all'));
  }

  function render() {
    // filter buttons with counts for the live filters
    const all = Array.from(live.alarms.values());
    const inB = (a) => !st.building || buildingOf(a, live.site) === st.building;
    const counts = { active: all.filter(inB).length, unacked: all.filter((a) => UNACKED.has(a.state) && inB(a)).length };
    for (const b of filterBtns) {
      const f = b.dataset.state;
      b.setAttribute('aria-pressed', f === st.filter ? 'true' : 'false');
      b.classList.toggle('on', f === st.filter);
      b.textContent = t(`alarms.filter.${f}`);
      if (f in counts) b.append(h('span.seg-count', { class: f === 'unacked' && counts.unacked ? 'has-unacked' : null }, String(counts[f])));
    }
    // flood
    // The engine's flood: {active_since, count, first_out} while a flood is on, else null.
    const fl = live.flood;
    if (fl) {
      flood.hidden = false;
      flood.textContent = `${PRIO_SHAPE.high} ${typeof fl.count === 'number' ? t('alarms.flood_n', { n: fl.count }) : t('alarms.flood')}`
        + (fl.first_out ? ` — ${t('alarms.first_out', { id: fl.first_out })}` : '');
    } else flood.hidden = true;

    const list = visible();
    const ids = new Set(list.map((a) => a.id));
    for (const id of [...st.selected]) if (!ids.has(id)) st.selected.delete(id);
    const nSel = st.selected.size;
    if (ackSelected) {
      ackSelected.textContent = t('alarms.ack_selected', { n: nSel });
      ackSelected.disabled = nSel === 0;
    }
    if (ackVisible) {
      const nUnacked = list.filter((a) => UNACKED.has(a.state)).length;
      ackVisible.textContent = t('alarms.ack_visible_n', { n: nUnacked });
      ackVisible.disabled = nUnacked === 0;
    }
    if (selAll) {
      const nSelectable = list.filter((a) => UNACKED.has(a.state)).length;
      selAll.checked = nSelectable > 0 && nSel === nSelectable;
      selAll.indeterminate = nSel > 0 && nSel < nSelectable;
      selAll.disabled = nSelectable === 0;
    }
    // status line
    status.classList.toggle('error', !!st.error);
    if (st.error) status.textContent = t('alarms.load_error', { error: st.error.message });
    else if (st.loading) status.textContent = t('alarms.loading');
    else if (!live.connected && LIVE_FILTERS.has(st.filter)) status.textContent = t('alarms.offline');
    else status.textContent = t('alarms.count', { n: list.length });

    // rows, reusing the ones that did not change (keeps the blink in step)
    const want = [];
    const cur = lang();
    for (const a of list) {
      const sig = `${cur}|${JSON.stringify(a)}|${st.selected.has(a.id)}|${st.expanded.has(a.id)}|${st.busy.has(a.id)}`;
      let r = rows.get(a.id);
      if (!r || r.sig !== sig) {
        const built = buildRow(a);
        if (r) { r.tr.replaceWith(built.tr); if (r.details) r.details.remove(); }
        r = { ...built, sig };
        rows.set(a.id, r);
      }
      want.push(r.tr);
      if (r.details) want.push(r.details);
    }
    for (const [id, r] of rows) {
      if (!ids.has(id)) { r.tr.remove(); if (r.details) r.details.remove(); rows.delete(id); }
    }
    if (!list.length) {
      tbody.textContent = '';
      const cols = (perm.ack ? 1 : 0) + 9;
      const empty = st.loading ? t('alarms.loading') : t(`alarms.empty.${st.filter}`);
      tbody.append(h('tr.alarms-empty', null, h('td', { colspan: cols }, empty)));
      return;
    }
    const empty = tbody.querySelector('.alarms-empty');
    if (empty) empty.remove();
    const children = Array.from(tbody.children);
    const same = children.length === want.length && children.every((c, i) => c === want[i]);
    if (!same) {
      // move only the rows that are out of place
      let ref = tbody.firstChild;
      for (const el of want) {
        if (el === ref) { ref = ref.nextSibling; continue; }
        tbody.insertBefore(el, ref);
      }
      while (ref) { const next = ref.nextSibling; ref.remove(); ref = next; }
    }
  }

  // ------------------------------------------------------------ live

  let renderQueued = false;
  const queueRender = () => {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; render(); });
  };
  const offAlarms = live.on('alarms', () => { queueRender(); scheduleRefetch(); });
  const offConn = live.on('conn', () => queueRender());
  const offHello = live.on('hello', () => { renderStatic(); scheduleRefetch(0); });
  const periodic = setInterval(() => scheduleRefetch(0), 30000);
  const onLang = () => {
    rows.forEach((r) => { r.tr.remove(); if (r.details) r.details.remove(); });
    rows.clear();
    renderStatic();
    render();
    scheduleRefetch(0);
  };
  window.addEventListener('hmi:lang', onLang);

  renderStatic();
  buildingSel.value = st.building;
  render();
  fetchList();

  return () => {
    closeDialogs();
    clearInterval(periodic);
    clearTimeout(refetchTimer);
    offAlarms();
    offConn();
    offHello();
    window.removeEventListener('hmi:lang', onLang);
    fetchSeq++;
    root.classList.remove('view-alarms');
  };
}
