// #/organizer/events/{id} -- the live dashboard of an on-sale, refreshed every second from
// GET /api/v1/admin/events/{id}/stats (queue, passes, zones, bookings by status), GET /metrics
// (request and error rates: the few br_http_requests_total lines) and GET /api/v1/events/{id}/queue
// (the waiting room's mode and pacing). Rates are differences between two samples over the time
// between them. The waiting-room form changes mode, max_active and admit_per_min live
// (POST /api/v1/admin/events/{id}/queue).

import {api, poll} from '../api.js';
import {h, fill, money, heading} from '../dom.js';
import {field, setError, intIn} from '../form.js';
import {showError, showMessage} from '../messages.js';
import {createLineChart} from '../chart.js';
import {parseMetrics, requestTotals} from '../metrics.js';
import {requireOrganizer} from './organizer.js';

const PERIOD_MS = 1000;
const METRICS = new Set(['br_http_requests_total', 'br_rate_limited_total']);

function stat(key, label) {
  const value = h('span', {class: 'value', 'data-test': `stat-${key}`}, '–');
  return {li: h('li', {}, h('span', {class: 'label'}, label), value), value};
}

export async function render(main, [id], query, signal) {
  if (!requireOrganizer(main, 'Dashboard')) {
    return;
  }
  const ev = await api('GET', `/api/v1/events/${id}`, {signal});
  const currency = ev.zones.length ? ev.zones[0].currency : 'EUR';
  const S = {};
  const defs = [['queue-length', 'In the queue'], ['admissions-per-s', 'Admissions per second'],
    ['admitted', 'Passes issued'], ['active-passes', 'Passes active'], ['held', 'Holds'],
    ['confirmed', 'Sales'], ['seats-sold', 'Seats sold'], ['revenue', 'Revenue'], ['expired', 'Holds expired'],
    ['cancelled', 'Cancelled'], ['refunded', 'Refunds'], ['error-rate', '5xx per second'],
    ['rate-limited', '429 per second'], ['mode', 'Waiting room']];
  const list = h('ul', {class: 'stats', 'data-test': 'stats'}, defs.map(([k, l]) => { S[k] = stat(k, l); return S[k].li; }));
  const cQueue = createLineChart({title: 'Queue length and passes active', series: ['queue', 'passes active'], test: 'chart-queue'});
  const cAdm = createLineChart({title: 'Admissions per second', series: ['admissions'], unit: '/s', test: 'chart-admissions'});
  const cSales = createLineChart({title: 'Seats held and sold', series: ['held', 'sold'], test: 'chart-sales'});
  const cErr = createLineChart({title: 'Requests and errors per second', series: ['requests', '4xx', '5xx', '429'], unit: '/s', test: 'chart-errors'});
  const zoneBody = h('tbody', {});
  const zoneTable = h('div', {class: 'table-wrap'}, h('table', {class: 'stack-sm', 'data-test': 'zone-stats'},
    h('caption', {class: 'hint'}, 'Per zone, now'),
    h('thead', {}, h('tr', {}, ['Zone', 'Capacity', 'Available', 'Held', 'Sold', 'Revenue']
      .map((t, i) => h('th', {scope: 'col', class: i ? 'num' : null}, t)))), zoneBody));
  const asOf = h('p', {class: 'hint', 'data-test': 'dashboard-updated', 'aria-live': 'off'});

  // The waiting-room form
  const mode = field('Mode', {tag: 'select', name: 'mode', 'data-test': 'queue-mode',
    options: [['open', 'Open: admitting'], ['paused', 'Paused: joins kept, no admissions'],
      ['closed', 'Closed: no new joins'], ['passthrough', 'Passthrough: no queue']]});
  const maxActive = field('Passes at once (max_active)', {type: 'number', name: 'max_active', min: 1, max: ev.queue && ev.queue.max_active ? ev.queue.max_active : 1000000,
    'data-test': 'queue-max-active'}, `1 to ${ev.queue && ev.queue.max_active ? ev.queue.max_active : 1000000} (the event's own limit)`);
  const perMin = field('Admissions per minute (admit_per_min)', {type: 'number', name: 'admit_per_min', min: 0, max: 600000,
    'data-test': 'queue-admit-per-min'}, '0 = no pacing');
  const apply = h('button', {type: 'submit', 'data-test': 'queue-apply'}, 'Apply');
  const qForm = h('form', {class: 'stack', novalidate: true, 'data-test': 'queue-form'}, mode.wrap, maxActive.wrap, perMin.wrap,
    h('div', {class: 'actions'}, apply));
  let formLoaded = false;
  const loadForm = (room) => {
    mode.input.value = room.mode;
    maxActive.input.value = String(room.max_active);
    perMin.input.value = String(room.admit_per_min);
    formLoaded = true;
  };
  qForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const ma = intIn(maxActive, 'Passes at once', 1, Number(maxActive.input.max));
    const pm = intIn(perMin, 'Admissions per minute', 0, 600000);
    if (ma === null || pm === null) {
      (ma === null ? maxActive : perMin).input.focus();
      return;
    }
    apply.disabled = true;
    try {
      const room = await api('POST', `/api/v1/admin/events/${id}/queue`, {auth: true, idempotent: true,
        body: {mode: mode.input.value, max_active: ma, admit_per_min: pm}});
      loadForm(room);
      showMessage(`Waiting room is now ${room.mode}: ${room.max_active} passes at once, ${room.admit_per_min ? room.admit_per_min + ' admissions per minute' : 'no pacing'}.`, 'ok');
    } catch (err) {
      if (err.code === 'INVALID_REQUEST' && err.details) {
        setError(maxActive, err.details);
      }
      showError(err);
    }
    apply.disabled = false;
  });

  fill(main, h('div', {'data-test': 'dashboard'},
    heading(`Dashboard: ${ev.name}`),
    h('p', {}, h('a', {href: `#/events/${ev.id}`}, 'Public event page'), ' · ', h('a', {href: '#/organizer'}, 'All your events')),
    asOf, list,
    h('h2', {}, 'Charts'), h('div', {class: 'charts'}, cQueue.el, cAdm.el, cSales.el, cErr.el),
    h('h2', {}, 'Zones'), zoneTable,
    h('h2', {}, 'Waiting room'), qForm));

  let prev = null;
  poll(async (sig) => {
    const now = performance.now();
    const [stats, metricsText, room] = await Promise.all([
      api('GET', `/api/v1/admin/events/${id}/stats`, {auth: true, signal: sig, tries: 1}),
      api('GET', '/metrics', {signal: sig, tries: 1, raw: true}).then((r) => r.text()).catch(() => ''),
      api('GET', `/api/v1/events/${id}/queue`, {signal: sig, tries: 1}).catch(() => null),
    ]);
    const req = requestTotals(parseMetrics(metricsText, METRICS));
    const held = stats.zones.reduce((n, z) => n + (z.held || 0), 0);
    const sold = stats.zones.reduce((n, z) => n + (z.sold || 0), 0);
    let revenue = 0;
    const rows = stats.zones.map((z) => {
      const spec = ev.zones.find((x) => x.id === z.id);
      const r = spec ? spec.price_minor * (z.sold || 0) : 0;
      revenue += r;
      return h('tr', {'data-test': 'zone-stats-row', 'data-zone-id': z.id},
        h('td', {'data-label': 'Zone'}, spec ? spec.name : `Zone ${z.id}`),
        h('td', {'data-label': 'Capacity', class: 'num'}, String(z.capacity)),
        h('td', {'data-label': 'Available', class: 'num'}, String(z.available)),
        h('td', {'data-label': 'Held', class: 'num'}, String(z.held)),
        h('td', {'data-label': 'Sold', class: 'num'}, String(z.sold)),
        h('td', {'data-label': 'Revenue', class: 'num'}, money(r, spec ? spec.currency : currency)));
    });
    fill(zoneBody, rows);
    const dt = prev ? (now - prev.t) / 1000 : 0;
    const rate = (a, b) => (prev && dt > 0 ? Math.max(0, (a - b) / dt) : 0);
    const admPerS = rate(stats.admitted, prev ? prev.admitted : 0);
    const rq = rate(req.requests, prev ? prev.req.requests : 0);
    const r4 = rate(req.client, prev ? prev.req.client : 0);
    const r5 = rate(req.server, prev ? prev.req.server : 0);
    const r429 = rate(req.limited, prev ? prev.req.limited : 0);
    const b = stats.bookings || {};
    const set = (k, v) => { S[k].value.textContent = v; };
    set('queue-length', String(stats.queue_length));
    set('admissions-per-s', admPerS.toFixed(1));
    set('admitted', String(stats.admitted));
    set('active-passes', String(stats.active_passes));
    set('held', String(b.held || 0));
    set('confirmed', String(b.confirmed || 0));
    set('seats-sold', String(sold));
    set('revenue', money(revenue, currency));
    set('expired', String(b.expired || 0));
    set('cancelled', String(b.cancelled || 0));
    set('refunded', String(b.refunded || 0));
    set('error-rate', metricsText ? r5.toFixed(1) : 'n/a');
    set('rate-limited', metricsText ? r429.toFixed(1) : 'n/a');
    set('mode', room ? room.mode : 'n/a');
    if (room && !formLoaded) {
      loadForm(room);
    }
    if (prev) {
      cQueue.push([stats.queue_length, stats.active_passes]);
      cAdm.push([admPerS]);
      cSales.push([held, sold]);
      cErr.push([rq, r4, r5, r429]);
    }
    prev = {t: now, admitted: stats.admitted, req};
    asOf.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }, PERIOD_MS, signal);
}
