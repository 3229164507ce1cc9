// #/organizer/new -- create an event and its zones (POST /api/v1/events). Checked in the page first
// (required fields, numbers within the API's ranges, see EventSpec in openapi.json); the server's
// 400 message is shown next to the form.

import {api} from '../api.js';
import {h, fill, heading} from '../dom.js';
import {field, setError, intIn} from '../form.js';
import {showError, showMessage, clearMessage} from '../messages.js';
import {requireOrganizer} from './organizer.js';

const ZONES_MAX = 8;

function zoneFields(n) {
  const name = field(`Zone ${n} name`, {name: `zone-name-${n}`, maxlength: 31, 'data-test': `zone-name-${n}`});
  const capacity = field(`Zone ${n} seats`, {type: 'number', name: `zone-capacity-${n}`, min: 1, max: 1000000,
    inputmode: 'numeric', 'data-test': `zone-capacity-${n}`}, '1 to 1,000,000');
  const price = field(`Zone ${n} price per seat`, {type: 'number', name: `zone-price-${n}`, min: 0, max: 1000000, step: '0.01',
    inputmode: 'decimal', 'data-test': `zone-price-${n}`}, 'In the currency below, e.g. 79.00');
  const currency = field(`Zone ${n} currency`, {name: `zone-currency-${n}`, maxlength: 3, value: 'EUR',
    autocapitalize: 'characters', 'data-test': `zone-currency-${n}`}, 'Three letters, e.g. EUR');
  const fs = h('fieldset', {'data-test': `zone-${n}`}, h('legend', {}, `Zone ${n}`),
    name.wrap, capacity.wrap, price.wrap, currency.wrap);
  return {n, fs, name, capacity, price, currency};
}

// A datetime-local value -> RFC 3339 UTC, or undefined when empty.
function isoOf(v) {
  if (!v) {
    return undefined;
  }
  const t = new Date(v);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}

export async function render(main) {
  if (!requireOrganizer(main, 'Create an event')) {
    return;
  }
  const name = field('Event name', {name: 'name', maxlength: 63, 'data-test': 'event-name'});
  const venue = field('Venue', {name: 'venue', maxlength: 63, 'data-test': 'event-venue'}, 'Optional');
  const opens = field('Sale opens', {type: 'datetime-local', name: 'sale_opens_at', 'data-test': 'event-sale-opens'}, 'Optional: empty means now (your local time)');
  const starts = field('Event starts', {type: 'datetime-local', name: 'starts_at', 'data-test': 'event-starts'}, 'Optional: empty means when the sale opens');
  const limit = field('Tickets per person', {type: 'number', name: 'per_user_limit', min: 1, max: 64, value: '4', 'data-test': 'event-limit'}, '1 to 64');
  const holdMin = field('Hold time in minutes', {type: 'number', name: 'hold_min', min: 1, max: 1440, value: '10', 'data-test': 'event-hold-minutes'}, 'How long seats stay held while the buyer pays: 1 to 1440');
  const requiresPass = h('input', {type: 'checkbox', id: 'requires-pass', checked: true, 'data-test': 'event-requires-pass'});
  const maxActive = field('Passes at once', {type: 'number', name: 'max_active', min: 1, max: 1000000, value: '100', 'data-test': 'queue-max-active-new'}, 'Buyers choosing seats at the same time: 1 to 1,000,000');
  const perMin = field('Admissions per minute', {type: 'number', name: 'admit_per_min', min: 0, max: 600000, value: '0', 'data-test': 'queue-admit-per-min-new'}, '0 means no pacing');
  const powBits = field('Proof of work (bits)', {type: 'number', name: 'pow_bits', min: 0, max: 28, value: '0', 'data-test': 'queue-pow-bits-new'}, '0 = off; 16 to 20 slows bots, 28 at most');
  const zonesBox = h('div', {class: 'stack'});
  const zones = [];
  const addZone = h('button', {type: 'button', class: 'secondary', 'data-test': 'add-zone'}, 'Add a zone');
  const removeZone = h('button', {type: 'button', class: 'secondary', 'data-test': 'remove-zone'}, 'Remove the last zone');
  const formError = h('div', {class: 'form-error', 'data-test': 'form-error', role: 'status'});
  const create = h('button', {type: 'submit', 'data-test': 'create-button'}, 'Create the event');
  const syncZoneButtons = () => {
    addZone.disabled = zones.length >= ZONES_MAX;
    removeZone.hidden = zones.length <= 1;
  };
  const add = () => {
    const z = zoneFields(zones.length + 1);
    zones.push(z);
    zonesBox.appendChild(z.fs);
    syncZoneButtons();
    return z;
  };
  addZone.addEventListener('click', () => add().name.input.focus());
  removeZone.addEventListener('click', () => {
    zones.pop().fs.remove();
    syncZoneButtons();
    addZone.focus();
  });
  add();

  const form = h('form', {class: 'stack', novalidate: true, 'data-test': 'org-create-form'},
    formError, name.wrap, venue.wrap, opens.wrap, starts.wrap, limit.wrap, holdMin.wrap,
    h('fieldset', {}, h('legend', {}, 'Waiting room'),
      h('div', {class: 'check'}, requiresPass, h('label', {for: 'requires-pass'}, 'Buyers go through the waiting room')),
      maxActive.wrap, perMin.wrap, powBits.wrap),
    h('h2', {}, 'Zones'), zonesBox, h('div', {class: 'actions'}, addZone, removeZone),
    h('div', {class: 'actions'}, create));

  const validate = () => {
    const spec = {};
    const nm = name.input.value.trim();
    setError(name, nm ? '' : 'The event needs a name.');
    spec.name = nm;
    spec.venue = venue.input.value.trim();
    const o = isoOf(opens.input.value);
    setError(opens, o === null ? 'Enter a date and time.' : '');
    const s = isoOf(starts.input.value);
    setError(starts, s === null ? 'Enter a date and time.' : '');
    if (o) {
      spec.sale_opens_at = o;
    }
    if (s) {
      spec.starts_at = s;
    }
    if (o && s && Date.parse(s) < Date.parse(o)) {
      setError(starts, 'The event cannot start before its sale opens.');
    }
    spec.per_user_limit = intIn(limit, 'Tickets per person', 1, 64);
    const hm = intIn(holdMin, 'The hold time', 1, 1440);
    spec.hold_ttl_s = hm === null ? null : hm * 60;
    spec.requires_pass = requiresPass.checked;
    spec.queue = {
      max_active: intIn(maxActive, 'Passes at once', 1, 1000000),
      admit_per_min: intIn(perMin, 'Admissions per minute', 0, 600000),
      pow_bits: intIn(powBits, 'Proof of work', 0, 28),
    };
    spec.zones = zones.map((z) => {
      const zn = z.name.input.value.trim();
      setError(z.name, zn ? '' : `Zone ${z.n} needs a name.`);
      const cap = intIn(z.capacity, `Zone ${z.n} seats`, 1, 1000000);
      const pr = z.price.input.value.trim();
      let priceMinor = null;
      if (pr === '') {
        setError(z.price, `Zone ${z.n} needs a price (0 for free).`);
      } else if (!/^\d+(\.\d{1,2})?$/.test(pr) || Number(pr) > 1000000) {
        setError(z.price, 'Enter a price from 0 to 1,000,000 with at most two decimals, e.g. 79.00.');
      } else {
        priceMinor = Math.round(Number(pr) * 100);
        setError(z.price, '');
      }
      const cur = z.currency.input.value.trim().toUpperCase();
      setError(z.currency, /^[A-Z]{3}$/.test(cur) ? '' : 'Three letters, such as EUR or USD.');
      return {name: zn, capacity: cap, price_minor: priceMinor, currency: cur};
    });
    const bad = form.querySelector('[aria-invalid="true"]');
    return bad ? {bad} : {spec};
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formError.textContent = '';
    const {spec, bad} = validate();
    if (bad) {
      formError.textContent = 'Please correct the fields marked below.';
      bad.focus();
      return;
    }
    create.disabled = true;
    clearMessage();
    try {
      const ev = await api('POST', '/api/v1/events', {auth: true, body: spec});
      showMessage(`"${ev.name}" was created.`, 'ok', true);
      location.hash = `#/organizer/events/${ev.id}`;
    } catch (err) {
      create.disabled = false;
      if (err.code === 'INVALID_REQUEST') {
        formError.textContent = `The server did not accept the event: ${err.details || 'please check the fields.'}`;
        formError.focus();
      } else {
        showError(err);
      }
    }
  });
  formError.setAttribute('tabindex', '-1');
  fill(main, heading('Create an event'), form);
}
