// #/ -- the list of events (GET /api/v1/events, 100 per page, "More events" for the next page).

import {api} from '../api.js';
import {h, fill, money, dateTime, heading} from '../dom.js';
import {showError} from '../messages.js';

function card(ev) {
  const zones = ev.zones || [];
  const available = zones.reduce((n, z) => n + z.available, 0);
  const cheapest = zones.length ? zones.reduce((a, z) => (z.price_minor < a.price_minor ? z : a)) : null;
  const opens = Date.parse(ev.sale_opens_at);
  const status = available === 0 ? 'Sold out'
    : opens > Date.now() ? `Sale opens ${dateTime(ev.sale_opens_at)}` : 'On sale now';
  return h('li', {class: 'card', 'data-test': 'event-card', 'data-event-id': ev.id},
    h('h2', {'data-test': 'event-title'}, h('a', {href: `#/events/${ev.id}`}, ev.name)),
    h('p', {class: 'meta'}, [ev.venue ? ev.venue + ' · ' : '', dateTime(ev.starts_at)]),
    h('p', {}, cheapest ? `From ${money(cheapest.price_minor, cheapest.currency)}` : ''),
    h('p', {class: available === 0 ? 'status soldout' : 'status', 'data-test': 'event-status'}, status,
      available > 0 ? ` · ${available} seats left` : ''));
}

export async function render(main, params, query, signal) {
  const list = h('ul', {class: 'cards', 'data-test': 'events-list'});
  const more = h('p', {});
  fill(main, heading('Events'), list, more);
  let after = null;
  const load = async () => {
    const path = '/api/v1/events' + (after ? `?after_id=${after}` : '');
    const page = await api('GET', path, {signal});
    if (signal.aborted) {
      return;
    }
    for (const ev of page.events) {
      list.appendChild(card(ev));
    }
    if (!list.children.length) {
      fill(more, 'No events are on sale yet.');
      return;
    }
    after = page.next_after_id || null;
    fill(more, after ? h('button', {type: 'button', 'data-test': 'more-events', onclick: () => load().catch(showError)}, 'More events') : '');
  };
  await load();
}
