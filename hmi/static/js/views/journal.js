// #/journal — the alarm journal: time range, alarm and event filters, newest first, paged,
// with CSV/XLSX export links to the API (the same range, alarm and event filters).

import { api, apiUrl } from '../api.js';
import { fmtDateTime, fmtNum, getTimeZone, lang, t } from '../i18n.js';
import { live } from '../live.js';
import { fromLocalInput, toLocalInput } from '../chart.js';
import { h, wbr } from '../widgets.js';
import { prioBadge } from './alarms.js';

const EVENTS = ['raise', 'clear', 'ack', 'shelve', 'unshelve', 'comment', 'suppress', 'unsuppress',
  'out_of_service', 'in_service', 'flood_on', 'flood_off', 'denied'];
const PAGE = 200;
const DAY = 86400e3;

function tz() {
  return getTimeZone() || (live.site && live.site.site && live.site.site.timezone) || undefined;
}

export function mount(root, params = {}) {
  const now = Date.now();
  const st = {
    from: Date.parse(params.from || '') || now - DAY,
    to: Date.parse(params.to || '') || null,         // null: "now" at each apply
    alarm: params.alarm || '',
    event: EVENTS.includes(params.event) ? params.event : '',
    entries: null,
    shown: PAGE,
    loading: false,
    error: null,
    range: null,
    follow: !params.to,       // "to" tracks now: new journal entries are added as they happen
  };
  let seq = 0;
  root.classList.add('view-journal');

  const title = h('h1.view-title');
  const fromIn = h('input.inp', { id: 'journal-from', type: 'datetime-local', step: 60 });
  const toIn = h('input.inp', { id: 'journal-to', type: 'datetime-local', step: 60 });
  const alarmIn = h('input.inp', { id: 'journal-alarm', type: 'text', list: 'journal-alarm-list', autocomplete: 'off',
    spellcheck: 'false' });
  const alarmList = h('datalist', { id: 'journal-alarm-list' });
  const eventSel = h('select.inp', { id: 'journal-event' });
  const apply = h('button.btn.btn-primary', { type: 'submit', id: 'journal-apply' });
  const quick = [1, 24, 168].map((hours) => h('button.btn.btn-small.journal-quick', { type: 'button', dataset: { hours },
    onclick: () => {
      const end = Date.now();
      fromIn.value = toLocalInput(end - hours * 3600e3, tz());
      toIn.value = toLocalInput(end, tz());
      st.follow = true;
      load();
    } }));
  const csv = h('a.btn.btn-small.journal-export', { id: 'journal-csv', download: '' });
  const xlsx = h('a.btn.btn-small.journal-export', { id: 'journal-xlsx', download: '' });
  const status = h('p.journal-status', { id: 'journal-status', role: 'status' });
  const tbody = h('tbody', { id: 'journal-body' });
  const cols = ['time', 'priority', 'alarm', 'event', 'user', 'comment', 'state', 'value', 'message'];
  const ths = cols.map((c) => h(`th.jcol-${c}`, { dataset: { k: `journal.col.${c}` } }));
  const more = h('button.btn', { type: 'button', id: 'journal-more', hidden: true, onclick: () => { st.shown += PAGE; render(); } });
  const all = h('button.btn', { type: 'button', id: 'journal-all', hidden: true, onclick: () => { st.shown = Infinity; render(); } });
  const form = h('form.toolbar.journal-toolbar', { onsubmit: (e) => { e.preventDefault(); load(); } },
    field('journal.from', fromIn), field('journal.to', toIn), field('journal.alarm', alarmIn), alarmList,
    field('journal.event', eventSel), apply, h('div.seg', null, quick), h('div.spacer'), csv, xlsx);
  root.append(h('div.view-head', null, title), form, status,
    h('div.tbl-wrap', null, h('table.tbl.journal-table', { id: 'journal-table' }, h('thead', null, h('tr', null, ths)), tbody)),
    h('div.journal-more', null, more, all));

  function field(key, input) {
    return h('label.field', null, h('span.field-label', { dataset: { k: key } }), input);
  }

  function renderStatic() {
    title.textContent = t('journal.title');
    for (const el of root.querySelectorAll('[data-k]')) el.textContent = t(el.dataset.k);
    const ev = eventSel.value || st.event;
    eventSel.textContent = '';
    eventSel.append(h('option', { value: '' }, t('journal.all_events')));
    for (const e of EVENTS) eventSel.append(h('option', { value: e }, t(`journal.event.${e}`)));
    eventSel.value = ev;
    apply.textContent = t('journal.apply');
    quick.forEach((b) => { b.textContent = t(`journal.last_${b.dataset.hours}h`); });
    csv.textContent = t('journal.export_csv');
    xlsx.textContent = t('journal.export_xlsx');
    alarmIn.placeholder = t('journal.alarm_placeholder');
    all.textContent = t('journal.show_all');
    alarmList.textContent = '';
    for (const id of live.alarms.keys()) alarmList.append(h('option', { value: id }));
  }

  function query() {
    if (st.follow) toIn.value = toLocalInput(Date.now(), tz());
    const from = fromLocalInput(fromIn.value, tz());
    const toRaw = fromLocalInput(toIn.value, tz());
    // a "to" shown to the minute covers that whole minute
    const to = st.follow || !Number.isFinite(toRaw) ? Date.now() : toRaw + 60e3 - 1;
    const q = { from: new Date(Number.isFinite(from) ? from : to - DAY).toISOString(), to: new Date(to).toISOString() };
    const alarm = alarmIn.value.trim();
    if (alarm) q.alarm = alarm;
    return q;
  }

  /** The export links carry the table's filters: range, alarm and event kind (applied by the server). */
  function exportLinks(q) {
    const params = { ...q, event: eventSel.value || null, ...(lang() === 'en' ? { lang: 'en' } : {}) };
    // While "to" follows now, the table takes new entries as they come: so does the export (the
    // server's "to" is then the moment of the click).
    if (st.follow) delete params.to;
    csv.href = apiUrl('/api/v1/alarms/journal', { ...params, format: 'csv' });
    xlsx.href = apiUrl('/api/v1/alarms/journal', { ...params, format: 'xlsx' });
  }

  function syncHash(q) {
    const p = new URLSearchParams();
    p.set('from', q.from);
    if (!st.follow) p.set('to', q.to);
    if (q.alarm) p.set('alarm', q.alarm);
    if (eventSel.value) p.set('event', eventSel.value);
    const hash = `#/journal?${p}`;
    if (location.hash !== hash) history.replaceState(history.state, '', hash);
  }

  async function load() {
    const q = query();
    const mySeq = ++seq;
    st.loading = true;
    st.error = null;
    st.range = q;
    exportLinks(q);
    syncHash(q);
    render();
    try {
      const res = await api('/api/v1/alarms/journal', { params: { ...q, ...(lang() === 'en' ? { lang: 'en' } : {}) } });
      if (mySeq !== seq) return;
      st.entries = (res.entries || []).slice().reverse();   // newest first
      st.shown = PAGE;
    } catch (err) {
      if (mySeq !== seq) return;
      st.error = err;
      st.entries = null;
    }
    st.loading = false;
    render();
  }

  function row(e) {
    const stateCell = e.state_from || e.state_to
      ? `${e.state_from ? t(`state.${e.state_from}`) : '—'} → ${e.state_to ? t(`state.${e.state_to}`) : '—'}` : '';
    const unit = e.tag && live.site && live.site.tags && live.site.tags[e.tag] ? live.site.tags[e.tag].unit : null;
    const alarmLink = e.alarm_id
      ? h('span.linklike', { role: 'button', tabindex: 0, title: t('journal.filter_alarm'),
        onclick: () => { alarmIn.value = e.alarm_id; load(); },
        onkeydown: (ev) => { if (ev.key === 'Enter') { alarmIn.value = e.alarm_id; load(); } } }, wbr(e.alarm_id))
      : '—';
    const cells = {
      time: fmtDateTime(e.ts),
      priority: e.priority ? prioBadge(e.priority, true) : '',
      alarm: alarmLink,
      event: h('span.jevent', { dataset: { event: e.event } }, t(`journal.event.${e.event}`) === `journal.event.${e.event}` ? e.event : t(`journal.event.${e.event}`)),
      user: e.user || '',
      comment: e.comment || '',
      state: stateCell,
      value: e.value === null || e.value === undefined || e.value === '' ? '' : fmtNum(e.value, unit),
      message: e.message || '',
    };
    return h('tr.journal-row', { dataset: { event: e.event, alarmId: e.alarm_id || '', entryId: e.id } },
      cols.map((c) => h(`td.jcol-${c}`, { dataset: { label: t(`journal.col.${c}`) } }, cells[c])));
  }

  function render() {
    status.classList.toggle('error', !!st.error);
    tbody.textContent = '';
    more.hidden = true;
    all.hidden = true;
    if (st.error) {
      status.textContent = t('journal.load_error', { error: st.error.message });
      return;
    }
    if (st.loading && !st.entries) {
      status.textContent = t('journal.loading');
      return;
    }
    let list = st.entries || [];
    const ev = eventSel.value;
    if (ev) list = list.filter((e) => e.event === ev);
    const shown = list.slice(0, st.shown);
    const frag = document.createDocumentFragment();
    for (const e of shown) frag.append(row(e));
    tbody.append(frag);
    if (!list.length) {
      tbody.append(h('tr.journal-empty', null, h('td', { colspan: cols.length }, t('journal.empty'))));
    }
    status.textContent = (st.loading ? `${t('journal.loading')} ` : '')
      + t('journal.count', { shown: shown.length, n: list.length, total: (st.entries || []).length });
    if (shown.length < list.length) {
      more.hidden = false;
      more.textContent = t('journal.more', { n: Math.min(PAGE, list.length - shown.length) });
      all.hidden = list.length - shown.length <= PAGE;
    }
  }

  eventSel.addEventListener('change', () => {
    st.shown = PAGE;
    if (st.range) { exportLinks(st.range); syncHash(st.range); }
    render();
  });
  toIn.addEventListener('input', () => { st.follow = false; });
  // New entries while "to" follows now: on top, if they pass the filters.
  const offAlarm = live.on('alarms', (arg) => {
    const e = arg && arg.entry;
    if (!e || !st.follow || !st.entries || st.loading) return;
    const alarm = alarmIn.value.trim();
    if (alarm && e.alarm_id !== alarm) return;
    if (st.entries.some((x) => x.id === e.id && e.id !== undefined)) return;
    st.entries.unshift(e);
    toIn.value = toLocalInput(Date.now(), tz());
    if (st.shown !== Infinity) st.shown += 1;
    render();
  });
  const onLang = () => { renderStatic(); load(); };
  window.addEventListener('hmi:lang', onLang);

  renderStatic();
  fromIn.value = toLocalInput(st.from, tz());
  toIn.value = toLocalInput(st.to || Date.now(), tz());
  alarmIn.value = st.alarm;
  eventSel.value = st.event;
  load();

  return () => {
    seq++;
    offAlarm();
    window.removeEventListener('hmi:lang', onLang);
    root.classList.remove('view-journal');
  };
}
