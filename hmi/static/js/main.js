// Bootstrap: session, shell (header), hash router with lazily imported views,
// login page, kiosk rotation, language and sound switches, connection banner.

import { api, ApiError } from './api.js';
import { initI18n, setLang, lang, t, translateDom, setTimeZone, fmtTime, fmtDate } from './i18n.js';
import { live } from './live.js';
import { closeDialogs } from './widgets.js';
import { initSound, soundEnabled, setSoundEnabled, setHorn, hornWanted, onSoundChange, unlock } from './sound.js';

const VIEWS = ['overview', 'building', 'alarms', 'journal', 'channels', 'trends'];
const PRIORITIES = ['critical', 'high', 'medium', 'low'];
const UNACKED = new Set(['unack_active', 'rtn_unack']);
const HORN_PRIORITIES = new Set(['critical', 'high']);
const SELF_TRANSLATING = new Set(['alarms', 'journal', 'channels', 'trends']);

const $ = (id) => document.getElementById(id);
const body = document.body;

const query = new URLSearchParams(location.search);
const kiosk = query.get('kiosk') === '1';

const state = {
  site: null,
  siteJson: '',
  loggedIn: false,
  current: null,        // {name, params, key, unmount, section}
  routeSeq: 0,
  wantedHash: null,     // route asked for before the login page
  siteRetry: null,
  siteBackoff: 1,
  siteFailed: false,
  forbidden: null,      // role name while signed in with a role that has no HMI access
  forbiddenKey: 'login.forbidden',  // its message: no access, or access lost (WebSocket 4403)
  sessionTtlS: null,    // api.session_ttl from /me: the session ends after this long without a request
  keepaliveTimer: null,
  kioskTimer: null,
  kioskIndex: -1,
  lastBuilding: null,
  subscribed: false,
};

// ------------------------------------------------------------------ exports

/** May the signed-in user do `action` ('ack', 'shelve', 'comment', 'out_of_service', 'journal', 'history', 'sim')? */
export function can(action) {
  const p = state.site && state.site.permissions;
  return !!(p && p[action]);
}

/** Go to a route: navigate('#/alarms') or navigate('/building/b1'). */
export function navigate(hash) {
  let h = String(hash || '');
  if (!h.startsWith('#')) h = `#${h.startsWith('/') ? '' : '/'}${h}`;
  if (location.hash === h) route();
  else location.hash = h;
}

export function isKiosk() {
  return kiosk;
}

export { live };

// ------------------------------------------------------------------ helpers

/** Create an element: el('div', {class: 'x', text: '...', dataset: {...}}, children...). */
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else if (v === true) e.setAttribute(k, '');
      else e.setAttribute(k, v);
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function parseHash(hash) {
  let h = (hash || '').replace(/^#\/?/, '');
  let qs = '';
  const qi = h.indexOf('?');
  if (qi >= 0) { qs = h.slice(qi + 1); h = h.slice(0, qi); }
  const parts = h.split('/').filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  const params = Object.fromEntries(new URLSearchParams(qs));
  let name = parts[0] || 'overview';
  if (!VIEWS.includes(name)) name = 'overview';
  if (name === 'building') {
    if (parts[1]) params.id = parts[1];
  } else if (parts[1] && params.id === undefined) {
    params.id = parts[1];
  }
  params.view = name;
  return { name, params };
}

function setConnUi(up) {
  body.dataset.conn = up ? 'up' : 'down';
  body.classList.toggle('disconnected', !up);
  $('conn-banner').hidden = up;
  const cs = $('conn-state');
  cs.dataset.state = up ? 'up' : 'down';
  cs.textContent = up ? t('conn.up') : t('conn.down');
  cs.title = up ? t('conn.up_title') : t('conn.lost');
}

function connUp() {
  return live.connected && !state.siteFailed;
}

// ------------------------------------------------------------------ header

function renderHeader() {
  const site = state.site;
  $('site-name').textContent = site && site.site ? site.site.name : t('app.title');
  document.title = site && site.site ? `${site.site.name} — ${t('app.title')}` : t('app.title');
  const u = site && site.user;
  const info = $('user-info');
  if (u && u.user) {
    info.textContent = `${u.user} · ${t(`app.role.${u.role}`)}`;
    info.hidden = false;
  } else {
    info.textContent = '';
    info.hidden = true;
  }
  const ls = $('lang-switch');
  ls.textContent = t('app.lang_other');
  ls.setAttribute('aria-label', t('app.lang_title'));
  renderSound();
  // Logout only for a session (a token or an open site has nothing to end).
  $('logout').hidden = !(site && site.auth && u && u.via === 'session');
  $('nav-journal').hidden = !!site && !can('journal');
  $('nav-trends').hidden = !!site && !can('history');
  const nb = $('nav-building');
  const bid = state.lastBuilding || (site && site.buildings && site.buildings[0] && site.buildings[0].id);
  nb.hidden = !bid;
  if (bid) nb.href = `#/building/${encodeURIComponent(bid)}`;
  setConnUi(connUp());
  tickClock();
}

function renderSound() {
  const b = $('sound-toggle');
  const on = soundEnabled();
  b.setAttribute('aria-pressed', on ? 'true' : 'false');
  b.dataset.on = on ? '1' : '0';
  b.textContent = '';
  b.append(el('span', { class: 'snd-ico', 'aria-hidden': 'true', text: '♪' }),
    el('span', { class: 'snd-lbl', text: on ? t('app.sound_on') : t('app.sound_off') }));
  b.setAttribute('aria-label', on ? t('app.sound_on') : t('app.sound_off'));
}

function markNav(name) {
  for (const v of VIEWS) {
    const a = $(`nav-${v}`);
    if (a) {
      if (v === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }
}

let countsQueued = false;

function queueCounts() {
  if (countsQueued) return;
  countsQueued = true;
  requestAnimationFrame(renderCounts);
}

function renderCounts() {
  countsQueued = false;
  const n = { critical: 0, high: 0, medium: 0, low: 0 };
  const unacked = { critical: 0, high: 0, medium: 0, low: 0 };
  for (const a of live.alarms.values()) {
    if (!(a.priority in n)) continue;
    n[a.priority]++;
    if (UNACKED.has(a.state)) unacked[a.priority]++;
  }
  for (const p of PRIORITIES) {
    const e = $(`alarm-count-${p}`);
    const s = String(n[p]);
    if (e.textContent !== s) e.textContent = s;
    const box = e.parentElement;
    box.classList.toggle('has', n[p] > 0);
    box.classList.toggle('unacked', unacked[p] > 0);
    box.title = t('app.alarm_count_title', { prio: t(`prio.${p}`), n: n[p], u: unacked[p] });
  }
}

// The horn is decided here, synchronously on every alarm change (requestAnimationFrame
// does not run in a hidden tab); only the counters wait for the next frame.

function hornAlarm(a) {
  return !!a && HORN_PRIORITIES.has(a.priority) && UNACKED.has(a.state);
}

/** The horn stops once every high/critical alarm is acknowledged. */
function hornOffIfAllAcked() {
  if (!hornWanted()) return;
  for (const a of live.alarms.values()) if (hornAlarm(a)) return;
  setHorn(false);
}

function onAlarmEvent(ev) {
  queueCounts();
  if (ev && ev.alarm) {
    const a = ev.alarm;
    const from = ev.entry ? ev.entry.state_from : null;
    if (HORN_PRIORITIES.has(a.priority) && a.state === 'unack_active' && from !== 'unack_active') {
      setHorn(true);
    }
  }
  hornOffIfAllAcked();
}

/**
 * A full active list (page load, login, reconnect): `known` maps the ids known before to
 * their alarms (null for the first list since the page was loaded). An unacked high or
 * critical alarm that is new, or raised again since, starts the horn; on the first list
 * any unacked one does (a wall screen must sound again after a reload).
 */
function onAlarmList({ known }) {
  for (const a of live.alarms.values()) {
    if (!hornAlarm(a)) continue;
    const old = known ? known.get(a.id) : null;
    if (!known || !old || !UNACKED.has(old.state) || (Number(a.count) || 0) > (Number(old.count) || 0)) {
      setHorn(true);
      return;
    }
  }
}

function tickClock() {
  const now = live.serverNow();
  const c = $('clock');
  const s = fmtTime(now);
  if (c.textContent !== s) c.textContent = s;
  const d = fmtDate(now);
  const cd = $('clock-date');
  if (cd.textContent !== d) cd.textContent = d;
}

// ------------------------------------------------------------------ site / session

async function loadSite() {
  const site = await api('/api/v1/hmi/site');
  state.site = site;
  live.site = site;
  setTimeZone(site.site && site.site.timezone);
  // server_time changes on every answer; the rest decides whether the screens need building again.
  const json = JSON.stringify({ ...site, server_time: null });
  const changed = json !== state.siteJson;
  state.siteJson = json;
  state.siteFailed = false;
  state.siteBackoff = 1;
  return changed;
}

function scheduleSiteRetry(then) {
  clearTimeout(state.siteRetry);
  const delay = state.siteBackoff;
  state.siteBackoff = Math.min(state.siteBackoff * 2, 10);
  state.siteRetry = setTimeout(async () => {
    state.siteRetry = null;
    await then();
  }, delay * 1000);
}

function storedLang() {
  try { return localStorage.getItem('hmi.lang'); } catch { return null; }
}

/** The site's configured language (hmi.lang) unless ?lang= or the user's own choice says otherwise. */
async function applySiteLang() {
  const siteLang = state.site && state.site.hmi && state.site.hmi.lang;
  if (!siteLang || siteLang === lang() || query.get('lang') || storedLang()) return;
  // Not stored: a later change of the configured language still applies.
  await initI18n(siteLang);
  translateDom(document);
  live.refreshAll();
}

/**
 * The role of the signed-in user (for the "no access" message), from /me or the 403 text;
 * null when /me says the session has ended (its 401 has shown the login page).
 */
async function currentRole(err) {
  try {
    const me = await api('/api/v1/me');
    if (me && me.role) return me.role;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    /* else fall back to the error text */
  }
  const m = /role '([^']+)'/.exec((err && err.message) || '');
  return m ? m[1] : '?';
}

/**
 * Signed in with a role that may not use the HMI (billing, integration): say so, offer another login.
 * `key` is the message: 'login.forbidden' (no access), 'login.role_lost' (the role changed while a
 * screen was open: the server closed the live feed with 4403).
 */
async function showForbidden(err, key = 'login.forbidden') {
  const role = await currentRole(err);
  if (role === null) return;
  state.forbidden = role;
  state.forbiddenKey = key;
  state.loggedIn = false;
  clearTimeout(state.siteRetry);
  state.siteRetry = null;
  state.siteFailed = false;
  stopKeepalive();
  live.stop();
  setHorn(false);
  stopKiosk();
  showLogin(forbiddenText());
}

function forbiddenText() {
  const role = state.forbidden;
  const name = t(`app.role.${role}`);
  return t(state.forbiddenKey || 'login.forbidden', { role: name === `app.role.${role}` ? role : name });
}

// ------------------------------------------------------------------ session keep-alive

const KEEPALIVE_MAX_MS = 10 * 60 * 1000;
const KEEPALIVE_MIN_MS = 5 * 1000;

/**
 * A login session ends after api.session_ttl without a request (the server slides it on use).
 * A wall screen that only listens on the WebSocket sends none, so while the HMI is entered it
 * calls GET /api/v1/me every min(10 min, ttl / 4); a 401 brings the login page (api.js).
 */
function keepaliveDelay() {
  const ttl = Number(state.sessionTtlS);
  if (!Number.isFinite(ttl) || ttl <= 0) return KEEPALIVE_MAX_MS;
  return Math.max(KEEPALIVE_MIN_MS, Math.min(KEEPALIVE_MAX_MS, (ttl * 1000) / 4));
}

function noteMe(me) {
  if (me && typeof me.session_ttl_s === 'number') state.sessionTtlS = me.session_ttl_s;
}

function scheduleKeepalive() {
  clearTimeout(state.keepaliveTimer);
  state.keepaliveTimer = setTimeout(async () => {
    state.keepaliveTimer = null;
    if (!state.loggedIn) return;
    try {
      noteMe(await api('/api/v1/me'));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;  // the login page is shown
      /* server away: the next call tries again */
    }
    if (state.loggedIn) scheduleKeepalive();
  }, keepaliveDelay());
}

async function startKeepalive() {
  if (state.sessionTtlS === null) {
    // Just logged in: learn the TTL (the login answer has only the end).
    try { noteMe(await api('/api/v1/me')); } catch { /* the default delay */ }
  }
  if (state.loggedIn) scheduleKeepalive();
}

function stopKeepalive() {
  clearTimeout(state.keepaliveTimer);
  state.keepaliveTimer = null;
}

/**
 * Load the site and start everything; on a network/server error keep retrying (→ false).
 * A role without HMI access (403) shows the login page with a message (→ 'forbidden').
 */
async function enter() {
  try {
    await loadSite();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return false; // the login page is shown
    if (err instanceof ApiError && err.status === 403) {
      await showForbidden(err);
      return 'forbidden';
    }
    console.warn('site:', err.message || err);
    state.siteFailed = true;
    setConnUi(false);
    scheduleSiteRetry(enter);
    return false;
  }
  state.loggedIn = true;
  state.forbidden = null;
  try { await applySiteLang(); } catch (err) { console.warn('lang:', err); }
  initSound(state.site.hmi ? state.site.hmi.sound : true);
  if (!state.subscribed) {
    // Every tag: one prefix, the tag store is cheap enough for thousands of tags.
    live.subscribe(['']);
    state.subscribed = true;
  }
  live.start();
  startKeepalive();
  renderHeader();
  body.classList.remove('booting');
  const target = state.wantedHash;
  state.wantedHash = null;
  if (target && target !== location.hash) {
    location.hash = target;   // hashchange routes
  } else {
    route(true);
  }
  if (kiosk) startKiosk();
  return true;
}

/** After a reconnect: fetch the site again, re-render the view if it changed. */
async function refreshSite() {
  if (!state.loggedIn) return;
  try {
    const changed = await loadSite();
    renderHeader();
    if (changed) route(true);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    if (err instanceof ApiError && err.status === 403) { await showForbidden(err); return; }
    state.siteFailed = true;
    setConnUi(false);
    scheduleSiteRetry(refreshSite);
  }
}

let unauthorizedHandled = false;

/**
 * 'hmi:unauthorized': a 401 from the API, or the live feed closed with 4401 (the session ended:
 * logout elsewhere, password change, expiry) or 4403 (the role may no longer read the screens).
 */
function onUnauthorized(ev) {
  const code = ev && ev.detail ? ev.detail.ws : undefined;
  if (code === 4403) {
    if (!state.loggedIn) return;
    if (!state.wantedHash) state.wantedHash = location.hash && location.hash !== '#/login' ? location.hash : null;
    showForbidden(null, 'login.role_lost').catch((err) => console.error('forbidden', err));
    return;
  }
  if (body.dataset.view === 'login' && !state.loggedIn) return;
  if (unauthorizedHandled) return;
  unauthorizedHandled = true;
  const wasIn = state.loggedIn;
  state.loggedIn = false;
  stopKeepalive();
  live.stop();
  setHorn(false);
  stopKiosk();
  if (!state.wantedHash) state.wantedHash = location.hash && location.hash !== '#/login' ? location.hash : null;
  // Thrown out of open screens: say why (at start-up the login page needs no reason).
  showLogin(wasIn ? t('login.expired') : '');
}

async function logout() {
  try { await api('/api/v1/logout', { method: 'POST' }); } catch { /* the session may be gone already */ }
  state.loggedIn = false;
  stopKeepalive();
  live.stop();
  setHorn(false);
  stopKiosk();
  state.wantedHash = null;
  showLogin();
}

// ------------------------------------------------------------------ login page

function unmountCurrent() {
  const cur = state.current;
  state.current = null;
  closeDialogs();
  if (cur && cur.unmount) {
    try { cur.unmount(); } catch (err) { console.error('unmount', err); }
  }
}

function showLogin(message) {
  unmountCurrent();
  state.routeSeq++;
  body.dataset.view = 'login';
  body.classList.remove('booting');
  markNav(null);
  renderHeader();
  const main = $('main');
  main.textContent = '';
  const err = el('div', { id: 'login-error', class: 'login-error', role: 'alert', 'aria-live': 'polite' });
  if (message) err.textContent = message;
  const user = el('input', { id: 'login-user', name: 'username', type: 'text', autocomplete: 'username',
    autocapitalize: 'none', spellcheck: 'false', required: true });
  const pass = el('input', { id: 'login-password', name: 'password', type: 'password',
    autocomplete: 'current-password', required: true });
  const submit = el('button', { id: 'login-submit', class: 'btn btn-primary', type: 'submit', text: t('login.submit') });
  const form = el('form', { class: 'login-form', novalidate: true },
    el('h1', { class: 'login-title', text: t('login.title') }),
    el('div', { class: 'login-site', text: state.site && state.site.site ? state.site.site.name : '' }),
    el('label', { class: 'field', for: 'login-user' }, el('span', { class: 'field-label', text: t('login.user') }), user),
    el('label', { class: 'field', for: 'login-password' }, el('span', { class: 'field-label', text: t('login.password') }), pass),
    err, submit,
    kiosk ? el('div', { class: 'login-hint', text: t('login.kiosk_hint') }) : null,
    // Signed in with a role that has no HMI access: end that session (or just log in as another user).
    state.forbidden ? el('button', { id: 'login-logout', class: 'btn', type: 'button', text: t('app.logout'),
      onclick: async () => {
        state.forbidden = null;
        try { await api('/api/v1/logout', { method: 'POST' }); } catch { /* gone already */ }
        showLogin();
      } }) : null);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    unlock();
    const username = user.value.trim();
    if (!username || !pass.value) {
      err.textContent = t('login.empty');
      (username ? pass : user).focus();
      return;
    }
    submit.disabled = true;
    err.textContent = '';
    try {
      await api('/api/v1/login', { method: 'POST', body: { username, password: pass.value } });
    } catch (e) {
      submit.disabled = false;
      pass.value = '';
      if (e instanceof ApiError && e.status === 401) err.textContent = t('login.bad');
      else if (e instanceof ApiError && e.status === 429) {
        const m = /(\d+)\s*s\b/.exec(e.message || '');
        err.textContent = m ? t('login.wait_s', { s: m[1] }) : t('login.wait');
      } else if (e instanceof ApiError && e.status === 0) err.textContent = t('login.network');
      else err.textContent = t('login.failed', { error: e.message || String(e) });
      pass.focus();
      return;
    }
    unauthorizedHandled = false;
    // The site loads next; enter() keeps retrying if the server does not answer it now.
    const entered = await enter();
    if (!entered && body.dataset.view === 'login') {
      submit.disabled = false;
      err.textContent = t('login.network');
    }
  });
  main.append(el('section', { class: 'view view-login' }, form));
  setTimeout(() => user.focus(), 0);
}

// ------------------------------------------------------------------ router

const moduleCache = new Map();

function importView(file) {
  let p = moduleCache.get(file);
  if (!p) {
    p = import(`./views/${file}.js`);
    moduleCache.set(file, p);
    p.catch(() => moduleCache.delete(file));
  }
  return p;
}

/** The mount function of a route: journal may live in its own module or in alarms.js. */
async function mountFor(name) {
  if (name === 'journal') {
    try {
      const m = await importView('journal');
      if (typeof m.mount === 'function') return m.mount;
    } catch { /* not a module of its own */ }
    const m = await importView('alarms');
    if (typeof m.mountJournal === 'function') return m.mountJournal;
    return m.mount;
  }
  const m = await importView(name);
  return m.mount;
}

async function route(force) {
  if (!state.loggedIn) return;
  const { name, params } = parseHash(location.hash);
  if (!location.hash || location.hash === '#' || location.hash === '#/') {
    history.replaceState(null, '', `${location.pathname}${location.search}#/overview`);
  }
  const key = `${name}?${JSON.stringify(params)}`;
  if (!force && state.current && state.current.key === key) return;
  if (name === 'building') {
    if (!params.id && state.site && state.site.buildings && state.site.buildings.length) {
      params.id = state.lastBuilding || state.site.buildings[0].id;
    }
    if (params.id) {
      state.lastBuilding = params.id;
      const nb = $('nav-building');
      nb.href = `#/building/${encodeURIComponent(params.id)}`;
    }
  }
  const seq = ++state.routeSeq;
  unmountCurrent();
  body.dataset.view = name;
  markNav(name);
  const main = $('main');
  let mount;
  try {
    mount = await mountFor(name);
  } catch (err) {
    if (seq !== state.routeSeq) return;
    console.error(`view ${name}:`, err);
    main.textContent = '';
    main.append(el('section', { class: `view view-${name}` },
      el('div', { class: 'view-error', text: t('app.view_unavailable') })));
    return;
  }
  if (seq !== state.routeSeq) return;
  main.textContent = '';
  const section = el('section', { class: `view view-${name}`, dataset: { view: name } });
  main.append(section);
  let unmount = null;
  try {
    unmount = mount(section, params) || null;
  } catch (err) {
    console.error(`mount ${name}:`, err);
    section.textContent = '';
    section.append(el('div', { class: 'view-error', text: t('app.view_failed') }));
  }
  state.current = { name, params, key, unmount, section };
  main.scrollTop = 0;
}

// ------------------------------------------------------------------ kiosk

function kioskViews() {
  const fromUrl = query.get('views');
  const cfg = state.site && state.site.hmi && state.site.hmi.kiosk;
  let list = fromUrl ? fromUrl.split(',') : (cfg && cfg.views) || ['overview', 'alarms', 'channels'];
  list = list.map((s) => s.trim()).filter(Boolean);
  const hashes = [];
  for (const v of list) {
    const [name, arg] = v.split(':');
    if (!VIEWS.includes(name)) continue;
    hashes.push(arg ? `#/${name}/${encodeURIComponent(arg)}` : `#/${name}`);
  }
  return hashes.length ? hashes : ['#/overview'];
}

function kioskEvery() {
  const fromUrl = Number(query.get('every'));
  const cfg = state.site && state.site.hmi && state.site.hmi.kiosk;
  const s = fromUrl > 0 ? fromUrl : (cfg && cfg.every_s) || 20;
  return Math.max(3, s);
}

function startKiosk() {
  stopKiosk();
  const views = kioskViews();
  const cur = views.indexOf(location.hash);
  state.kioskIndex = cur >= 0 ? cur : 0;
  if (cur < 0) navigate(views[0]);
  state.kioskTimer = setInterval(() => {
    // Without the server, keep showing the last screen (its data stays, greyed) instead of empty ones.
    if (!state.loggedIn || !connUp()) return;
    const list = kioskViews();
    state.kioskIndex = (state.kioskIndex + 1) % list.length;
    navigate(list[state.kioskIndex]);
  }, kioskEvery() * 1000);
}

function stopKiosk() {
  clearInterval(state.kioskTimer);
  state.kioskTimer = null;
}

// ------------------------------------------------------------------ boot

async function boot() {
  if (kiosk) body.dataset.kiosk = '1';
  await initI18n();
  translateDom(document);
  setConnUi(false);
  renderHeader();

  window.addEventListener('hmi:unauthorized', onUnauthorized);
  window.addEventListener('hashchange', () => route(false));
  window.addEventListener('hmi:lang', () => {
    renderHeader();
    setConnUi(connUp());
    queueCounts();
    if (body.dataset.view === 'login') {
      showLogin(state.forbidden ? forbiddenText() : ($('login-error') ? $('login-error').textContent : ''));
      return;
    }
    // Alarm messages come localized per connection: reconnect with ?lang=.
    live.reconnect();
    // The alarms, journal, channels and trends views follow 'hmi:lang' themselves (keeping
    // their filters and zoom); the others are built again.
    if (state.loggedIn && state.current && SELF_TRANSLATING.has(state.current.name)) return;
    if (state.loggedIn) route(true);
  });

  $('lang-switch').addEventListener('click', async () => {
    try { await setLang(lang() === 'ru' ? 'en' : 'ru'); } catch (err) { console.error(err); }
  });
  $('sound-toggle').addEventListener('click', () => setSoundEnabled(!soundEnabled()));
  onSoundChange(({ sounding }) => {
    renderSound();
    body.classList.toggle('horn', sounding);
  });
  $('logout').addEventListener('click', logout);

  // Every connection after the first is a reconnect: the server may have restarted with another site.
  let connectedBefore = false;
  live.on('conn', (up) => {
    setConnUi(connUp());
    if (up) {
      if (connectedBefore && state.loggedIn) refreshSite();
      connectedBefore = true;
    }
  });
  live.on('alarmlist', onAlarmList);
  live.on('alarms', onAlarmEvent);
  setInterval(tickClock, 1000);

  // The session decides: the site answers, or 401 brings the login page.
  try {
    noteMe(await api('/api/v1/me'));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;   // login shown by the event
    // Server down or starting: enter() retries.
  }
  await enter();
}

boot().catch((err) => {
  console.error('boot', err);
});
