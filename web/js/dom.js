// Small DOM helpers: build elements without innerHTML (no markup from data ever reaches the
// parser, so a name like "<b>" shows as typed), format money and times.

// h('p', {class: 'x', 'data-test': 'y', onclick: fn}, 'text', child, [more]) -> element.
// Attributes whose value is false, null or undefined are left out; true gives an empty attribute.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) {
      continue;
    }
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) {
      continue;
    }
    if (Array.isArray(c)) {
      append(el, c);
    } else if (c instanceof Node) {
      el.appendChild(c);
    } else {
      el.appendChild(document.createTextNode(String(c)));
    }
  }
}

// Replaces el's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// 7900, 'EUR' -> '€79.00' in the browser's locale.
export function money(minor, currency) {
  const cur = currency || 'EUR';
  try {
    return new Intl.NumberFormat(undefined, {style: 'currency', currency: cur}).format(minor / 100);
  } catch (e) {
    return (minor / 100).toFixed(2) + ' ' + cur;
  }
}

export function dateTime(iso) {
  if (!iso) {
    return '';
  }
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) {
    return iso;
  }
  return d.toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'short'});
}

// Seconds -> 'm:ss' (or 'h:mm:ss').
export function clock(totalS) {
  const s = Math.max(0, Math.floor(totalS));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh > 0 ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

// Seconds -> 'about 4 minutes' for wait estimates.
export function roughDuration(s) {
  if (s === null || s === undefined) {
    return 'unknown';
  }
  if (s < 60) {
    return s <= 1 ? 'less than a minute' : `about ${Math.round(s)} seconds`;
  }
  if (s < 3600) {
    const m = Math.round(s / 60);
    return `about ${m} minute${m === 1 ? '' : 's'}`;
  }
  const hrs = (s / 3600).toFixed(1);
  return `about ${hrs} hours`;
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) {
      signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, {once: true});
    }
  });
}

// A fresh Idempotency-Key.
export function newKey() {
  if (crypto.randomUUID) {
    return crypto.randomUUID();
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// The page's heading: focusable so the router can move focus to it after a navigation.
export function heading(text, level = 1) {
  return h('h' + level, {tabindex: level === 1 ? '-1' : null, 'data-test': level === 1 ? 'page-title' : null}, text);
}
