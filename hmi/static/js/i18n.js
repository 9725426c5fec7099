// Message catalogue (ru default, en) and locale-aware formatting in the site's timezone.

const LANGS = ['ru', 'en'];
let current = 'ru';
let catalogue = {};
let timeZone;            // site timezone (IANA); undefined = browser's own
const fmtCache = new Map();

/** Look a key up; '{name}' placeholders are replaced from `vars`; a missing key gives the key. */
export function t(key, vars) {
  let s = catalogue[key];
  if (s === undefined) return key;
  if (vars) {
    s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] === undefined || vars[k] === null ? m : String(vars[k])));
  }
  return s;
}

/** True when the catalogue has `key`. */
export function has(key) {
  return Object.prototype.hasOwnProperty.call(catalogue, key);
}

export function lang() {
  return current;
}

export function langs() {
  return LANGS.slice();
}

function storedLang() {
  try { return localStorage.getItem('hmi.lang'); } catch { return null; }
}

async function load(l) {
  const res = await fetch(`/hmi/i18n/${l}.json`, { credentials: 'same-origin', cache: 'no-cache' });
  if (!res.ok) throw new Error(`catalogue ${l}: HTTP ${res.status}`);
  return res.json();
}

/**
 * Load the first language at start: ?lang= in the URL, else the stored choice,
 * else `fallback` (the site's default), else Russian. Does not dispatch 'hmi:lang'.
 */
export async function initI18n(fallback) {
  const fromUrl = new URLSearchParams(location.search).get('lang');
  let l = [fromUrl, storedLang(), fallback, 'ru'].find((x) => LANGS.includes(x));
  try {
    catalogue = await load(l);
  } catch (err) {
    console.warn('i18n:', err);
    if (l !== 'ru') {
      l = 'ru';
      try { catalogue = await load(l); } catch { catalogue = {}; }
    }
  }
  current = l;
  fmtCache.clear();
  document.documentElement.lang = l;
  return l;
}

/** Switch language: load the catalogue, remember it, re-translate the page, dispatch 'hmi:lang'. */
export async function setLang(l) {
  if (!LANGS.includes(l)) throw new Error(`unknown language ${l}`);
  const cat = await load(l);
  catalogue = cat;
  current = l;
  fmtCache.clear();
  try { localStorage.setItem('hmi.lang', l); } catch { /* private mode */ }
  document.documentElement.lang = l;
  translateDom(document);
  window.dispatchEvent(new CustomEvent('hmi:lang', { detail: { lang: l } }));
}

/**
 * Fill elements marked with data-i18n (text), data-i18n-title, data-i18n-placeholder,
 * data-i18n-aria (aria-label) below `root`.
 */
export function translateDom(root) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
}

/** Set the site timezone used by fmtTime/fmtDateTime (IANA name; invalid → browser's). */
export function setTimeZone(tz) {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz || undefined });
    timeZone = tz || undefined;
  } catch {
    timeZone = undefined;
  }
  fmtCache.clear();
}

export function getTimeZone() {
  return timeZone;
}

function locale() {
  return current === 'ru' ? 'ru-RU' : 'en-GB';
}

// Separators of the UI's locale, taken from Intl once per language; numbers are then
// formatted by hand: Intl.NumberFormat.format is too slow for thousands of values a second.
function separators() {
  let sep = fmtCache.get('sep');
  if (!sep) {
    const parts = new Intl.NumberFormat(locale(), { minimumFractionDigits: 1 }).formatToParts(-1234567.5);
    const four = new Intl.NumberFormat(locale()).format(1234);
    sep = {
      group: (parts.find((p) => p.type === 'group') || { value: '' }).value,
      decimal: (parts.find((p) => p.type === 'decimal') || { value: '.' }).value,
      minus: (parts.find((p) => p.type === 'minusSign') || { value: '-' }).value,
      minGroup: /^\d{4}$/.test(four) ? 5 : 4,   // shortest integer part that gets grouped
    };
    fmtCache.set('sep', sep);
  }
  return sep;
}

function formatFixed(value, digits) {
  const sep = separators();
  const s = Math.abs(value).toFixed(digits);
  const dot = s.indexOf('.');
  let int = dot < 0 ? s : s.slice(0, dot);
  if (int.length >= sep.minGroup && sep.group) {
    let out = '';
    let i = int.length % 3 || 3;
    out = int.slice(0, i);
    for (; i < int.length; i += 3) out += sep.group + int.slice(i, i + 3);
    int = out;
  }
  const neg = value < 0 && /[1-9]/.test(s);
  return (neg ? sep.minus : '') + int + (dot < 0 ? '' : sep.decimal + s.slice(dot + 1));
}

// Fraction digits per unit: what a dispatcher needs to see, stable as the value moves.
const UNIT_DIGITS = {
  '°C': 1, 'C': 1, '%': 1, 'kW': 1, 'MW': 3, 'Gcal/h': 3, 'Gcal': 3, 'bar': 2, 'MPa': 3,
  'm3/h': 2, 'm^3/h': 2, 'W': 0, 't/h': 2, 'V': 1, 'A': 2, 'Hz': 2, 'dBm': 0, 'dB': 1, 'h': 0, 's': 0,
};

/** Fraction digits for a value of `unit`. */
export function digitsFor(value, unit) {
  if (unit && unit in UNIT_DIGITS) return UNIT_DIGITS[unit];
  const a = Math.abs(value);
  if (unit === 'm3' || unit === 'm^3' || unit === 'kWh' || unit === 'MWh' || unit === 'Wh') {
    if (a >= 100000) return 0;
    if (a >= 1000) return 1;
    return unit === 'm3' || unit === 'm^3' ? 3 : 2;
  }
  if (a === 0 || Number.isInteger(value)) return 0;
  if (a >= 1000) return 0;
  if (a >= 100) return 1;
  if (a >= 1) return 2;
  return 3;
}

/** A number in the UI's locale with sensible digits for `unit` (unit not appended); null → '—'. */
export function fmtNum(value, unit, digits) {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (typeof value !== 'number') {
    const n = Number(value);
    if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(n)) value = n;
    else return String(value);
  }
  if (!Number.isFinite(value)) return '—';
  const d = digits === undefined ? digitsFor(value, unit) : digits;
  return formatFixed(value, d);
}

/** A unit as shown to people (m3 → м³, kWh → кВт·ч in Russian). */
export function fmtUnit(unit) {
  if (!unit) return '';
  const key = `app.unit.${unit}`;
  const s = catalogue[key];
  return s === undefined ? unit : s;
}

/** Value and unit: '59,8 °C'. */
export function fmtValue(value, unit) {
  const s = fmtNum(value, unit);
  const u = fmtUnit(unit);
  return u && s !== '—' ? `${s}\u00a0${u}` : s;
}

function toDate(msOrIso) {
  if (msOrIso === null || msOrIso === undefined || msOrIso === '') return null;
  const d = msOrIso instanceof Date ? msOrIso : new Date(typeof msOrIso === 'number' ? msOrIso : String(msOrIso));
  return Number.isNaN(d.getTime()) ? null : d;
}

function partsFormat() {
  let f = fmtCache.get('parts');
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', {
      timeZone, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
    });
    fmtCache.set('parts', f);
  }
  return f;
}

/** {year, month, day, hour, minute, second} strings of `d` in the site timezone. */
export function zonedParts(msOrIso) {
  const d = toDate(msOrIso);
  if (!d) return null;
  const out = {};
  for (const p of partsFormat().formatToParts(d)) out[p.type] = p.value;
  if (out.hour === '24') out.hour = '00';
  return out;
}

/** HH:MM:SS in the site timezone; null → '—'. */
export function fmtTime(msOrIso) {
  const p = zonedParts(msOrIso);
  return p ? `${p.hour}:${p.minute}:${p.second}` : '—';
}

/** HH:MM in the site timezone. */
export function fmtHm(msOrIso) {
  const p = zonedParts(msOrIso);
  return p ? `${p.hour}:${p.minute}` : '—';
}

/** DD.MM.YYYY (ru) / YYYY-MM-DD (en) in the site timezone. */
export function fmtDate(msOrIso) {
  const p = zonedParts(msOrIso);
  if (!p) return '—';
  return current === 'ru' ? `${p.day}.${p.month}.${p.year}` : `${p.year}-${p.month}-${p.day}`;
}

/** DD.MM.YYYY HH:MM:SS (ru) / YYYY-MM-DD HH:MM:SS (en) in the site timezone. */
export function fmtDateTime(msOrIso) {
  const p = zonedParts(msOrIso);
  if (!p) return '—';
  const date = current === 'ru' ? `${p.day}.${p.month}.${p.year}` : `${p.year}-${p.month}-${p.day}`;
  return `${date} ${p.hour}:${p.minute}:${p.second}`;
}

/** A duration in seconds as '45 с', '12 мин', '3 ч 5 мин', '2 д 4 ч'. */
export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t('app.age_s', { n: s });
  const m = Math.floor(s / 60);
  if (m < 60) return t('app.age_m', { n: m });
  const h = Math.floor(m / 60);
  if (h < 48) return t('app.age_hm', { h, m: m % 60 });
  return t('app.age_dh', { d: Math.floor(h / 24), h: h % 24 });
}
