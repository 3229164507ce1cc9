// A full purchase through the waiting room: register in the page, open the event, join the queue
// while the organizer has admissions paused (a place in line and a wait are shown), the pass
// arrives over the stream when admissions resume, choose a zone and quantity, hold, pay with the
// success card, the confirmation, and "my bookings" lists the booking as confirmed.

import {check, sel, email, registerInPage, STEP_MS} from './lib/harness.mjs';
import {eventSpec} from './lib/api.mjs';

export default async function (ctx) {
  const api = ctx.api;
  const admin = await ctx.adminToken();
  const ev = await api.createEvent(admin, eventSpec('Aurora Tour: Night One', {
    venue: 'Harbour Hall',
    zones: [
      {name: 'Floor', capacity: 200, price_minor: 7900, currency: 'EUR'},
      {name: 'Balcony', capacity: 300, price_minor: 4900, currency: 'EUR'},
    ],
    queue: {mode: 'paused'},
  }));
  // Two people in line ahead of the browser's buyer.
  const ahead = [];
  for (let i = 0; i < 2; i++) {
    const u = await api.user(email('ahead'));
    await api.join(u.token, ev.id);
    ahead.push(u);
  }

  const page = await ctx.page();
  const buyer = {name: 'Ada Buyer', email: email('ada'), password: 'ada-secret-pw'};
  await registerInPage(ctx, page, buyer, `/events/${ev.id}`);
  await page.locator(sel('zone-row')).first().waitFor();
  check(await page.locator(sel('page-title')).innerText() === ev.name, 'the event page shows the event name');
  check((await page.locator(sel('zone-row')).count()) === 2, 'the event page lists both zones');
  const avail = await page.locator(`${sel('zone-row')}[data-zone-id="1"] ${sel('zone-available')}`).innerText();
  check(avail.trim() === '200 of 200', `Floor shows 200 of 200 available, not "${avail}"`);
  await ctx.shot(page, 'event-page');
  await ctx.axe(page, 'event page');

  await page.click(sel('join-button'));
  await page.waitForURL(`**/#/queue/${ev.id}`);
  const status = page.locator(sel('queue-status'));
  await page.locator(`${sel('queue-status')}[data-status="waiting"]`).waitFor();
  await page.waitForFunction((s) => document.querySelector(s)?.textContent.trim() === '3', sel('queue-position'),
    {timeout: STEP_MS});
  check(/paused/i.test(await status.innerText()), 'the waiting room says admissions are paused');
  await ctx.shot(page, 'waiting-room');
  await ctx.axe(page, 'waiting room (waiting)');
  await ctx.noRawErrors(page, 'waiting room');

  // The organizer opens admissions: the pass comes to the open page.
  await api.setQueue(admin, ev.id, {mode: 'open'});
  await page.locator(`${sel('queue-status')}[data-status="admitted"]`).waitFor();
  await page.locator(sel('reserve-form')).waitFor();
  check(/valid for \d+:\d\d/.test(await page.locator(sel('pass-countdown')).innerText()), 'the pass countdown is shown');
  await page.selectOption(sel('zone-select'), '1');
  await page.fill(sel('quantity-input'), '2');
  await page.locator(sel('reserve-total')).filter({hasText: '158'}).waitFor();
  await ctx.shot(page, 'pass-choose-seats');
  await ctx.axe(page, 'waiting room (choose seats)');

  await page.click(sel('reserve-button'));
  await page.waitForURL(/#\/hold\/\d+$/);
  const bookingId = Number(page.url().match(/#\/hold\/(\d+)$/)[1]);
  await page.locator(sel('hold-countdown')).waitFor();
  const left = await page.locator(sel('hold-countdown')).innerText();
  check(/^(9|10):\d\d$/.test(left.trim()), `the hold countdown starts near 10 minutes, not "${left}"`);
  check(/2 tickets/.test(await page.locator(sel('hold-summary')).innerText()), 'the hold summary says 2 tickets');
  check((await page.locator(`${sel('test-cards')} li`).count()) >= 2, 'the test cards are listed');
  await ctx.shot(page, 'hold-payment');
  await ctx.axe(page, 'hold page');

  await page.fill(sel('card-number'), '4242 4242 4242 4242');
  await page.click(sel('pay-button'));
  await page.locator(sel('confirmation')).waitFor();
  check(Number(await page.locator(sel('booking-id')).innerText()) === bookingId, 'the confirmation names the booking');
  await ctx.shot(page, 'confirmation');
  await ctx.axe(page, 'confirmation');

  await page.click(sel('nav-bookings'));
  const row = page.locator(`${sel('booking-row')}[data-booking-id="${bookingId}"]`);
  await row.waitFor();
  check(await row.getAttribute('data-status') === 'confirmed', 'my bookings shows the booking as confirmed');
  check((await page.locator(sel('booking-row')).count()) === 1, 'my bookings has exactly this one booking');
  await ctx.shot(page, 'my-bookings');
  await ctx.axe(page, 'my bookings');

  // The server agrees: two Floor seats sold.
  const after = await api.must(200, 'GET', `/api/v1/events/${ev.id}`);
  check(after.zones[0].available === 198, `the server has 198 Floor seats left, not ${after.zones[0].available}`);
}
