// #/bookings -- my bookings, newest first (GET /api/v1/bookings), with Pay (held ones: #/hold/{id})
// and Cancel (POST /api/v1/bookings/{id}/cancel).

import {api} from '../api.js';
import {h, fill, money, dateTime, heading} from '../dom.js';
import {showError, showMessage} from '../messages.js';
import {requireLogin} from '../nav.js';

const STATUS = {held: 'Held: waiting for payment', confirmed: 'Confirmed', expired: 'Expired',
  cancelled: 'Cancelled', refunded: 'Refunded'};

export async function render(main, params, query, signal) {
  if (!requireLogin(main, 'My bookings')) {
    return;
  }
  const box = h('div', {});
  fill(main, heading('My bookings'), box);
  const names = new Map();
  const load = async () => {
    const list = await api('GET', '/api/v1/bookings', {auth: true, signal});
    for (const b of list.bookings) {
      if (!names.has(b.event_id)) {
        try {
          names.set(b.event_id, await api('GET', `/api/v1/events/${b.event_id}`, {signal, tries: 1}));
        } catch (e) {
          names.set(b.event_id, null);
        }
      }
    }
    if (!list.bookings.length) {
      fill(box, h('p', {'data-test': 'bookings-list'}, 'You have no bookings yet. ', h('a', {href: '#/'}, 'Find an event.')));
      return;
    }
    const rows = list.bookings.map((b) => {
      const ev = names.get(b.event_id);
      const zone = ev ? ev.zones.find((z) => z.id === b.zone_id) : null;
      const held = b.status === 'held' && Date.parse(b.expires_at) > Date.now();
      const acts = held ? [
        h('a', {class: 'button', href: `#/hold/${b.id}`, 'data-test': 'pay-link'}, 'Pay'), ' ',
        h('button', {type: 'button', class: 'danger', 'data-test': 'cancel-button',
          'aria-label': `Cancel booking ${b.id}`, onclick: (e) => cancel(b, e.currentTarget)}, 'Cancel'),
      ] : [];
      return h('tr', {'data-test': 'booking-row', 'data-booking-id': b.id, 'data-status': b.status},
        h('td', {'data-label': 'Booking'}, String(b.id)),
        h('td', {'data-label': 'Event'}, ev ? h('a', {href: `#/events/${ev.id}`}, ev.name) : `Event ${b.event_id}`),
        h('td', {'data-label': 'Zone'}, zone ? zone.name : `Zone ${b.zone_id}`),
        h('td', {'data-label': 'Tickets', class: 'num'}, String(b.quantity)),
        h('td', {'data-label': 'Total', class: 'num'}, money(b.total_minor, b.currency)),
        h('td', {'data-label': 'Status', 'data-test': 'booking-status'}, STATUS[b.status] || b.status,
          b.status === 'held' ? ` until ${dateTime(b.expires_at)}` : ''),
        h('td', {'data-label': 'Actions'}, acts));
    });
    fill(box, h('div', {class: 'table-wrap'}, h('table', {class: 'stack-sm', 'data-test': 'bookings-list'},
      h('thead', {}, h('tr', {}, ['Booking', 'Event', 'Zone', 'Tickets', 'Total', 'Status', 'Actions']
        .map((t) => h('th', {scope: 'col', class: t === 'Tickets' || t === 'Total' ? 'num' : null}, t)))),
      h('tbody', {}, rows))));
  };
  const cancel = async (b, btn) => {
    btn.disabled = true;
    try {
      await api('POST', `/api/v1/bookings/${b.id}/cancel`, {auth: true, idempotent: true});
      showMessage(`Booking ${b.id} was cancelled and its seats went back on sale.`, 'ok');
    } catch (e) {
      showError(e);
    }
    try {
      await load();
    } catch (e) {
      showError(e);
    }
  };
  await load();
}
