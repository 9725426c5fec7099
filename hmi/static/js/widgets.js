// Small DOM helpers shared by the alarms, journal, channels and trends views:
// an element builder, toasts for action results and errors, a modal form dialog.

import { t } from './i18n.js';

/**
 * h('button.ack.big', {type: 'button', onclick}, 'text', child...) → element.
 * Attributes: 'class', 'dataset' (object), 'style' (string), on* (listeners), 'hidden',
 * anything else via setAttribute (false/null/undefined skipped, true → '').
 */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = [el.className, v].filter(Boolean).join(' ');
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'hidden' || k === 'checked' || k === 'disabled' || k === 'value' || k === 'selected') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Text with <wbr> after ':' '.' '-' so long ids (alarm ids, tag names) wrap at their joints. */
export function wbr(text) {
  const frag = document.createDocumentFragment();
  String(text ?? '').split(/(?<=[:.-])/).forEach((part, i) => {
    if (i) frag.append(document.createElement('wbr'));
    frag.append(part);
  });
  return frag;
}

// ---------------------------------------------------------------- toasts

function toastBox() {
  let box = document.getElementById('f2-toasts');
  if (!box) {
    box = h('div.toasts', {id: 'f2-toasts', 'aria-live': 'polite'});
    document.body.appendChild(box);
  }
  return box;
}

/** Show a message: kind 'ok' (fades after 4 s) or 'error' (stays 15 s, or until closed). */
export function toast(message, kind = 'ok') {
  const box = toastBox();
  const close = h('button.toast-close', {type: 'button', 'aria-label': t('alarms.close'), title: t('alarms.close')}, '×');
  const el = h(`div.toast.toast-${kind}`, {role: kind === 'error' ? 'alert' : 'status'},
    h('span.toast-text', null, message), close);
  const remove = () => el.remove();
  close.addEventListener('click', remove);
  box.appendChild(el);
  setTimeout(remove, kind === 'error' ? 15000 : 4000);
  while (box.children.length > 5) box.firstChild.remove();
  return el;
}

/** Show an error (ApiError or anything thrown) with a context line. */
export function toastError(context, err) {
  const msg = err && err.message ? err.message : String(err);
  console.warn(context, err);
  return toast(context ? `${context}: ${msg}` : msg, 'error');
}

// ---------------------------------------------------------------- dialog

const openDialogs = new Set();           // cancel functions of the open dialogs

/** Cancel every open dialog (they resolve to null): a view that goes away takes its dialogs along. */
export function closeDialogs() {
  for (const cancel of Array.from(openDialogs)) cancel();
}

/**
 * A modal form. `fields`: [{id, label, type: 'text'|'textarea'|'number'|'checkbox', value, required,
 * min, max, step, choices: [values] (quick buttons filling the field), hint}].
 * `onSubmit(values)` may throw / reject: the message is shown in the dialog and it stays open.
 * Returns a promise resolving to the onSubmit result, or null when cancelled.
 */
export function formDialog({title, text, fields, okId, okLabel, cancelLabel, onSubmit}) {
  return new Promise((resolve) => {
    const inputs = {};
    const err = h('p.dlg-error', {role: 'alert', hidden: true});
    const rows = fields.map((f) => {
      let input;
      if (f.type === 'textarea') {
        input = h('textarea.dlg-input', {id: f.id, rows: 3, maxlength: 2000, required: f.required});
        input.value = f.value || '';
      } else if (f.type === 'checkbox') {
        input = h('input', {id: f.id, type: 'checkbox', checked: !!f.value});
        return h('label.dlg-check', {for: f.id}, input, h('span', null, f.label));
      } else {
        input = h('input.dlg-input', {id: f.id, type: f.type || 'text', required: f.required, min: f.min, max: f.max,
          step: f.step, maxlength: f.type === 'number' ? null : 2000, inputmode: f.type === 'number' ? 'numeric' : null,
          autocomplete: 'off'});
        if (f.value !== undefined && f.value !== null) input.value = String(f.value);
      }
      inputs[f.id] = input;
      const quick = f.choices ? h('div.dlg-quick', null, f.choices.map((c) => h('button.btn.btn-small', {
        type: 'button', onclick: () => { input.value = String(c.value ?? c); input.focus(); },
      }, c.label ?? String(c)))) : null;
      return h('div.dlg-row', null, h('label.dlg-label', {for: f.id}, f.label), input, quick,
        f.hint ? h('p.dlg-hint', null, f.hint) : null);
    });
    const ok = h('button.btn.btn-primary', {id: okId, type: 'submit'}, okLabel || t('alarms.ok'));
    const cancel = h('button.btn', {type: 'button', class: 'dlg-cancel', value: 'cancel'}, cancelLabel || t('alarms.cancel'));
    const form = h('form.dlg-form', {method: 'dialog', novalidate: true},
      h('h2.dlg-title', null, title),
      h('div.dlg-body', null, text ? h('p.dlg-text', null, text) : null, rows, err),
      h('div.dlg-actions', null, cancel, ok));
    const dlg = h('dialog.dlg', {'aria-label': title}, form);
    document.body.appendChild(dlg);
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      openDialogs.delete(cancelDialog);
      try { dlg.close(); } catch (_) { /* closed */ }
      dlg.remove();
      resolve(value);
    };
    const cancelDialog = () => finish(null);
    openDialogs.add(cancelDialog);
    cancel.addEventListener('click', () => finish(null));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); finish(null); });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const values = {};
      for (const f of fields) {
        const el = document.getElementById(f.id);
        values[f.id] = f.type === 'checkbox' ? el.checked : el.value.trim();
        if (f.required && !values[f.id]) {
          err.textContent = t('alarms.required', {field: f.label});
          err.hidden = false;
          el.focus();
          return;
        }
      }
      ok.disabled = true;
      err.hidden = true;
      try {
        const result = await onSubmit(values);
        finish(result === undefined ? true : result);
      } catch (ex) {
        err.textContent = ex && ex.message ? ex.message : String(ex);
        err.hidden = false;
        ok.disabled = false;
      }
    });
    dlg.showModal();
    const first = dlg.querySelector('.dlg-input');
    if (first) first.focus();
  });
}
