// A sold-out event: an event of 3 seats bought out through the API (two buyers through the queue,
// paid), then the event page says sold out with no join button, the zone reads "Sold out", and a
// latecomer opening the waiting room is told, in a sentence, that no pass will come.

import {check, sel, email, loginInPage} from './lib/harness.mjs';
import {eventSpec} from './lib/api.mjs';

export default async function (ctx) {
  const api = ctx.api;
  const admin = await ctx.adminToken();
  const ev = await api.createEvent(admin, eventSpec('Tiny Room Session', {
    per_user_limit: 2,
    zones: [{name: 'Front row', capacity: 3, price_minor: 2500, currency: 'EUR'}],
  }));
  for (const q of [2, 1]) {
    const u = await api.user(email('early'));
    await api.join(u.token, ev.id);
    const pass = await api.waitPass(u.token, ev.id);
    const b = await api.reserve(u.token, ev.id, 1, q, pass);
    check(await api.pay(u.token, b.id) === 'succeeded', 'the early buyer pays');
    await api.waitBooking(u.token, b.id, 'confirmed');
  }
  const state = await api.must(200, 'GET', `/api/v1/events/${ev.id}`);
  check(state.zones[0].available === 0, 'the API has no seat left');

  const late = await api.user(email('late'));
  const page = await ctx.page();
  await loginInPage(ctx, page, late, `/events/${ev.id}`);
  await page.locator(sel('sold-out')).waitFor();
  check((await page.locator(sel('join-button')).count()) === 0, 'no join button on a sold-out event');
  const zone = (await page.locator(sel('zone-available')).innerText()).trim();
  check(zone === 'Sold out', `the zone reads "Sold out", not "${zone}"`);
  await page.locator(`${sel('room-status')}[data-gate="sold_out"]`).waitFor();
  await ctx.shot(page, 'event-sold-out');
  await ctx.axe(page, 'sold-out event');

  // The waiting room, reached directly (an old link): told at once, in words.
  await ctx.goto(page, `#/queue/${ev.id}`);
  await page.locator(`${sel('queue-status')}[data-status="sold_out"]`).waitFor();
  check(/sold out/i.test(await page.locator(sel('queue-status')).innerText()), 'the waiting room says sold out');
  check((await page.locator(sel('reserve-form')).count()) === 0, 'no seat form on a sold-out waiting room');
  await ctx.noRawErrors(page, 'sold-out waiting room');
  await ctx.shot(page, 'waiting-room-sold-out');
  await ctx.axe(page, 'sold-out waiting room');

  // The events list marks it too.
  await ctx.goto(page, '#/');
  const card = page.locator(`${sel('event-card')}[data-event-id="${ev.id}"]`);
  await card.waitFor();
  check(/sold out/i.test(await card.locator(sel('event-status')).innerText()), 'the events list says sold out');
}
