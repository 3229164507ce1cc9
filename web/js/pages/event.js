// #/events/{id} -- the event, its zones with prices and live availability (GET /api/v1/events/{id}
// every 3 s) and the waiting room's public status (GET /api/v1/events/{id}/queue). The join button
// leads to the waiting room (#/queue/{id}), which also books directly when no queue is needed.

import {api, poll} from '../api.js';
import {h, fill, money, dateTime, heading, roughDuration} from '../dom.js';
import {signedIn} from '../auth.js';
import {loginHref} from '../nav.js';

const POLL_MS = 3000;

const GATE_TEXT = {
  open: 'The waiting room is letting people in.',
  not_open: 'The sale has not opened yet: join now and you get a random place when it opens.',
  paused: 'The organizer has paused admissions for now. You can still join and keep your place.',
  seats_held: 'Every seat is currently held in someone\'s cart; some may come back.',
  sold_out: 'Sold out: every seat has been sold.',
  closed: 'The waiting room is closed to new people.',
  passthrough: 'No waiting: you can book straight away.',
};

export function zoneTable(zones) {
  return h('div', {class: 'table-wrap'}, h('table', {class: 'stack-sm', 'data-test': 'zones'},
    h('caption', {class: 'hint'}, 'Seats available right now'),
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Zone'), h('th', {scope: 'col', class: 'num'}, 'Price per seat'),
      h('th', {scope: 'col', class: 'num'}, 'Available'))),
    h('tbody', {}, zones.map((z) => h('tr', {'data-test': 'zone-row', 'data-zone-id': z.id},
      h('td', {'data-label': 'Zone', 'data-test': 'zone-name'}, z.name),
      h('td', {'data-label': 'Price per seat', class: 'num', 'data-test': 'zone-price'}, money(z.price_minor, z.currency)),
      h('td', {'data-label': 'Available', class: 'num', 'data-test': 'zone-available'},
        z.available > 0 ? `${z.available} of ${z.capacity}` : 'Sold out'))))));
}

export async function render(main, [id], query, signal) {
  const ev = await api('GET', `/api/v1/events/${id}`, {signal});
  const zonesBox = h('div', {}, zoneTable(ev.zones));
  const roomBox = h('p', {'data-test': 'room-status', 'aria-live': 'polite'});
  const action = h('p', {class: 'actions'});
  fill(main,
    heading(ev.name),
    h('p', {class: 'meta', 'data-test': 'event-meta'}, [ev.venue ? ev.venue + ' · ' : '', 'Starts ', dateTime(ev.starts_at)]),
    h('p', {}, `Sale opens ${dateTime(ev.sale_opens_at)} · up to ${ev.per_user_limit} tickets per person · `,
      `a hold lasts ${roughDuration(ev.hold_ttl_s).replace(/^about /, '')}`),
    h('h2', {}, 'Zones'), zonesBox,
    h('h2', {}, ev.requires_pass ? 'Waiting room' : 'Booking'), roomBox, action);

  const drawAction = (soldOut, closed) => {
    if (soldOut) {
      fill(action, h('span', {class: 'status soldout', 'data-test': 'sold-out'}, 'Sold out'));
    } else if (!signedIn()) {
      fill(action, h('a', {class: 'button', href: loginHref(), 'data-test': 'join-button'}, 'Sign in to buy tickets'));
    } else {
      fill(action, h('a', {class: 'button', href: `#/queue/${ev.id}`, 'data-test': 'join-button',
        'aria-disabled': closed ? 'true' : null}, ev.requires_pass ? 'Join the waiting room' : 'Choose seats'));
    }
  };
  drawAction(ev.zones.every((z) => z.available === 0), false);

  let first = true;
  poll(async (sig) => {
    const fresh = first ? ev : await api('GET', `/api/v1/events/${id}`, {signal: sig, tries: 1});
    first = false;
    fill(zonesBox, zoneTable(fresh.zones));
    let room = null;
    if (fresh.requires_pass) {
      try {
        room = await api('GET', `/api/v1/events/${id}/queue`, {signal: sig, tries: 1});
      } catch (e) {
        if (e.status !== 501) {
          throw e;
        }
      }
    }
    const soldOut = fresh.zones.every((z) => z.available === 0) && (!room || room.sold_out || room.gate === 'sold_out');
    if (room) {
      const wait = room.estimated_wait_s !== null && room.gate !== 'passthrough'
        ? ` ${room.queue_length} waiting; estimated wait for someone joining now: ${roughDuration(room.estimated_wait_s)}.` : '';
      fill(roomBox, GATE_TEXT[room.gate] || '', wait);
      roomBox.dataset.gate = room.gate;
    } else {
      fill(roomBox, fresh.requires_pass ? '' : 'No waiting room for this event: choose your seats directly.');
    }
    drawAction(soldOut, room && room.gate === 'closed');
  }, POLL_MS, signal);
}
