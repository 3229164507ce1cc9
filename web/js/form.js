// Form helpers: a labelled field with its hint and its error line (aria-describedby ties them to
// the input), and setting or clearing those errors.

import {h} from './dom.js';

let seq = 0;

// field('Email', {type: 'email', name: 'email', 'data-test': 'login-email', required: true}, 'hint')
// -> {wrap, input, error}
export function field(label, attrs, hint) {
  const id = attrs.id || `f${++seq}`;
  const errId = `${id}-err`;
  const hintId = hint ? `${id}-hint` : null;
  const tag = attrs.tag || 'input';
  const options = attrs.options || null;
  const a = Object.assign({}, attrs, {id, tag: null, options: null,
    'aria-describedby': [hintId, errId].filter(Boolean).join(' ')});
  const input = h(tag, a, options ? options.map(([v, t]) => h('option', {value: v}, t)) : null);
  const error = h('p', {class: 'field-error', id: errId, 'data-test': attrs['data-test'] ? attrs['data-test'] + '-error' : null});
  const wrap = h('div', {class: 'field'}, h('label', {for: id}, label),
    hint ? h('p', {class: 'hint', id: hintId}, hint) : null, input, error);
  return {wrap, input, error};
}

export function setError(f, text) {
  f.error.textContent = text || '';
  if (text) {
    f.input.setAttribute('aria-invalid', 'true');
  } else {
    f.input.removeAttribute('aria-invalid');
  }
}

// Checks an integer field: required, whole, within [min, max]. Returns the number or null (and
// sets the field's error).
export function intIn(f, name, min, max, required = true) {
  const raw = f.input.value.trim();
  if (raw === '') {
    if (required) {
      setError(f, `${name} is required.`);
    } else {
      setError(f, '');
    }
    return required ? null : undefined;
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    setError(f, `${name} must be a whole number from ${min} to ${max}.`);
    return null;
  }
  setError(f, '');
  return n;
}
