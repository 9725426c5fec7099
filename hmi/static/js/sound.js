// Alarm horn: WebAudio oscillator beeps (no sound file), repeating while a
// high or critical alarm waits for acknowledgement. Must never throw.

const KEY = 'hmi.sound';
let ctx = null;
let enabled = true;
let sounding = false;
let timer = null;
const listeners = new Set();

function stored() {
  try { return localStorage.getItem(KEY); } catch { return null; }
}

/** Set the default (site hmi.sound) unless the user chose already. */
export function initSound(siteDefault) {
  const s = stored();
  enabled = s === null ? siteDefault !== false : s === '1';
  notify();
}

export function soundEnabled() {
  return enabled;
}

export function setSoundEnabled(on) {
  enabled = !!on;
  try { localStorage.setItem(KEY, enabled ? '1' : '0'); } catch { /* private mode */ }
  if (enabled) unlock();
  update();
  notify();
}

export function onSoundChange(cb) {
  listeners.add(cb);
  return () => listeners.delete(cb);
}

function notify() {
  for (const cb of listeners) {
    try { cb({ enabled, sounding }); } catch (err) { console.error(err); }
  }
}

/** Create/resume the audio context; call from a user gesture so later beeps may play. */
export function unlock() {
  try {
    if (!ctx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return;
      ctx = new AC();
    }
    if (ctx.state === 'suspended') {
      const p = ctx.resume();
      if (p && p.catch) p.catch(() => {});
    }
  } catch { /* audio not available */ }
}

function beep() {
  try {
    if (!ctx) unlock();
    if (!ctx || ctx.state !== 'running') return;
    const t0 = ctx.currentTime;
    const gain = ctx.createGain();
    gain.connect(ctx.destination);
    gain.gain.setValueAtTime(0.0001, t0);
    // Two-tone horn: 880 Hz then 660 Hz, 0.25 s each.
    [[880, 0], [660, 0.3]].forEach(([f, dt]) => {
      const o = ctx.createOscillator();
      o.type = 'square';
      o.frequency.setValueAtTime(f, t0 + dt);
      o.connect(gain);
      o.start(t0 + dt);
      o.stop(t0 + dt + 0.25);
    });
    gain.gain.exponentialRampToValueAtTime(0.15, t0 + 0.02);
    gain.gain.setValueAtTime(0.15, t0 + 0.5);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.56);
  } catch { /* never throw from the horn */ }
}

let want = false;

function update() {
  const on = want && enabled;
  if (on && !timer) {
    beep();
    timer = setInterval(beep, 2000);
  } else if (!on && timer) {
    clearInterval(timer);
    timer = null;
  }
  if (sounding !== on) {
    sounding = on;
    notify();
  }
}

/** Start (true) or stop (false) the repeating horn. */
export function setHorn(on) {
  want = !!on;
  update();
}

export function hornWanted() {
  return want;
}

// Any click or key unlocks audio (autoplay policy).
for (const ev of ['pointerdown', 'keydown']) {
  window.addEventListener(ev, () => { if (enabled) unlock(); }, { capture: true, passive: true });
}
