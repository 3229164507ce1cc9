// The organizer creates an event with the form (the page's own checks first), lands on the live
// dashboard, and watches it move while a crowd of 36 API buyers goes through the waiting room
// (5 passes at once, so a queue forms): the queue length, seats sold and revenue change while the
// crowd buys, the charts draw, and at the end the figures are the crowd's own.

import {check, sel, email, loginInPage} from './lib/harness.mjs';
import {sleep} from './lib/api.mjs';
import {runCrowd} from './lib/crowd.mjs';

const PEOPLE = 36;

export default async function (ctx) {
  const api = ctx.api;
  const admin = await ctx.adminToken();
  const org = await api.user(email('org'), 'organizer-pw-1', 'Olga Organizer');
  await api.setRole(admin, org.id, 'organizer');

  const page = await ctx.page({width: 1280, height: 1000});
  await loginInPage(ctx, page, org, '/organizer');
  await page.locator(sel('new-event-link')).waitFor();
  check((await page.locator(sel('not-organizer')).count()) === 0, 'an organizer is not told they are not one');
  await ctx.axe(page, 'organizer events');
  await page.click(sel('new-event-link'));
  await page.locator(sel('org-create-form')).waitFor();
  await ctx.axe(page, 'create-event form');

  // The page checks the form before sending it.
  await page.click(sel('create-button'));
  await page.locator(sel('event-name-error')).filter({hasText: /\S/}).waitFor();
  await page.locator(sel('zone-name-1-error')).filter({hasText: /\S/}).waitFor();
  check(/\S/.test(await page.locator(sel('form-error')).innerText()), 'the form says what to correct');
  await ctx.shot(page, 'create-form-errors');
  await ctx.axe(page, 'create-event form with errors');

  await page.fill(sel('event-name'), 'Crowd Night Live');
  await page.fill(sel('event-venue'), 'Riverside Arena');
  await page.fill(sel('event-limit'), '2');
  await page.fill(sel('queue-max-active-new'), '5');
  await page.fill(sel('zone-name-1'), 'Floor');
  await page.fill(sel('zone-capacity-1'), '40');
  await page.fill(sel('zone-price-1'), '59.00');
  await page.click(sel('add-zone'));
  await page.fill(sel('zone-name-2'), 'Balcony');
  await page.fill(sel('zone-capacity-2'), '40');
  await page.fill(sel('zone-price-2'), '29.50');
  await ctx.shot(page, 'create-form-filled');
  await page.click(sel('create-button'));
  await page.waitForURL(/#\/organizer\/events\/\d+$/);
  const eventId = Number(page.url().match(/(\d+)$/)[1]);
  const ev = await api.must(200, 'GET', `/api/v1/events/${eventId}`);
  check(ev.name === 'Crowd Night Live' && ev.venue === 'Riverside Arena', 'the event has the typed name and venue');
  check(ev.owner_id === org.id, `the organizer owns the event (owner ${ev.owner_id}, organizer ${org.id})`);
  check(ev.per_user_limit === 2 && ev.queue.max_active === 5, 'the limit and max_active are the typed ones');
  check(ev.zones.length === 2 && ev.zones[0].price_minor === 5900 && ev.zones[1].price_minor === 2950 &&
    ev.zones[1].capacity === 40, `the zones are the typed ones: ${JSON.stringify(ev.zones)}`);

  const stat = async (k) => (await page.locator(sel(`stat-${k}`)).innerText()).trim();
  await page.locator(sel('dashboard')).waitFor();
  await page.locator(sel('stat-mode')).filter({hasText: 'open'}).waitFor();
  check(await stat('seats-sold') === '0', 'no seat sold before the crowd');
  check((await page.locator(sel('zone-stats-row')).count()) === 2, 'the dashboard has a row per zone');
  await ctx.shot(page, 'dashboard-before');
  await ctx.axe(page, 'dashboard');

  // The crowd, while the dashboard is watched.
  let crowdDone = false;
  const crowd = runCrowd({base: ctx.base, eventId, people: PEOPLE}).finally(() => { crowdDone = true; });
  const seen = {queue: [], sold: [], updated: new Set()};
  let midShot = false;
  while (!crowdDone) {
    const q = Number(await stat('queue-length'));
    const sold = Number(await stat('seats-sold'));
    seen.queue.push(q);
    seen.sold.push(sold);
    seen.updated.add(await page.locator(sel('dashboard-updated')).innerText());
    if (!midShot && sold >= 12) {
      midShot = true;
      await ctx.shot(page, 'dashboard-during-rush');
    }
    await sleep(400);
  }
  const r = await crowd;
  check(r.failures.length === 0, `the crowd bought without errors: ${r.failures.slice(0, 3).join('; ')}`);
  check(r.seats > 0, 'the crowd bought seats');

  // The dashboard catches up with what the crowd bought.
  const sold = page.locator(sel('stat-seats-sold'));
  await page.waitForFunction(([s, n]) => document.querySelector(s)?.textContent.trim() === String(n),
    [sel('stat-seats-sold'), r.seats], {timeout: 5000}).catch(async () => {
    check(false, `the dashboard shows ${await sold.innerText()} seats sold, the crowd bought ${r.seats}`);
  });
  check(await stat('confirmed') === String(r.bookings), `sales: the dashboard ${await stat('confirmed')}, the crowd ${r.bookings}`);
  check(await stat('cancelled') === String(r.cancelled), `cancelled: the dashboard ${await stat('cancelled')}, the crowd ${r.cancelled}`);
  const revenue = (await stat('revenue')).replace(/[^\d]/g, '');
  check(revenue === String(r.revenueMinor), `revenue: the dashboard ${await stat('revenue')}, the crowd ${r.revenueMinor / 100}`);
  check(await stat('admitted') !== '0', 'passes were issued');
  check(Math.max(...seen.queue) > 0, `a queue formed on the dashboard (max ${Math.max(...seen.queue)})`);
  const between = seen.sold.filter((s) => s > 0 && s < r.seats);
  check(between.length > 0, `seats sold moved during the rush, not only at the end: ${seen.sold.join(',')}`);
  check(seen.updated.size >= 3, `the dashboard refreshed during the rush (${seen.updated.size} distinct times)`);
  const points = await page.locator(`${sel('chart-sales')} polyline`).evaluateAll((ls) => ls.map((l) => l.getAttribute('points').trim().split(/\s+/).filter(Boolean).length));
  check(points.length === 2 && points.every((n) => n >= 5), `the sales chart drew its two lines (${points})`);
  const flat = await page.locator(`${sel('chart-sales')} polyline`).nth(1).evaluate((l) => new Set(l.getAttribute('points').trim().split(/\s+/).map((p) => p.split(',')[1])).size === 1);
  check(!flat, 'the sold line of the sales chart rises');
  await sleep(1200);
  await ctx.shot(page, 'dashboard-after');
  await ctx.axe(page, 'dashboard after the rush');

  // The public page of the event agrees.
  const after = await api.must(200, 'GET', `/api/v1/events/${eventId}`);
  const left = after.zones.reduce((n, z) => n + z.available, 0);
  check(left === 80 - r.seats, `${80 - r.seats} seats left after the crowd, the server has ${left}`);
}
