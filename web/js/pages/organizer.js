// #/organizer -- an organizer's own events (GET /api/v1/events, those whose owner_id is the
// user; an administrator sees every event), with links to each dashboard and to the create form.

import {api} from '../api.js';
import {h, fill, dateTime, heading} from '../dom.js';
import {currentUser, isOrganizer} from '../auth.js';
import {requireLogin} from '../nav.js';

export function requireOrganizer(main, title) {
  if (!requireLogin(main, title)) {
    return false;
  }
  if (!isOrganizer()) {
    fill(main, heading(title), h('p', {'data-test': 'not-organizer'},
      'This part is for organizers. Your account is a customer account: ask an administrator to make you an organizer, then sign in again.'));
    return false;
  }
  return true;
}

export async function render(main, params, query, signal) {
  if (!requireOrganizer(main, 'Your events')) {
    return;
  }
  const me = currentUser();
  const mine = [];
  let after = null;
  for (let page = 0; page < 50; page++) {
    const list = await api('GET', '/api/v1/events' + (after ? `?after_id=${after}` : ''), {signal});
    for (const ev of list.events) {
      if (me.role === 'admin' || ev.owner_id === me.user_id) {
        mine.push(ev);
      }
    }
    after = list.next_after_id || null;
    if (!after) {
      break;
    }
  }
  const rows = mine.map((ev) => {
    const sold = ev.zones.reduce((n, z) => n + (z.capacity - z.available), 0);
    const cap = ev.zones.reduce((n, z) => n + z.capacity, 0);
    return h('li', {class: 'card', 'data-test': 'org-event', 'data-event-id': ev.id},
      h('h2', {}, h('a', {href: `#/organizer/events/${ev.id}`, 'data-test': 'dashboard-link'}, ev.name)),
      h('p', {class: 'meta'}, `Sale opens ${dateTime(ev.sale_opens_at)}`),
      h('p', {}, `${sold} of ${cap} seats held or sold`),
      h('p', {}, h('a', {href: `#/events/${ev.id}`}, 'Public page')));
  });
  fill(main, heading('Your events'),
    h('p', {}, h('a', {class: 'button', href: '#/organizer/new', 'data-test': 'new-event-link'}, 'Create an event')),
    mine.length ? h('ul', {class: 'cards', 'data-test': 'org-events'}, rows)
      : h('p', {'data-test': 'org-events'}, 'You have no events yet.'));
}
