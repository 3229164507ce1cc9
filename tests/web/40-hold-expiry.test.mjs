// A hold that expires on screen: an event whose holds last 6 s; the countdown runs down to 0:00,
// the page says the hold expired (payment message and the message area), paying is no longer
// offered, the server frees the seats, and the hold page opened again says it expired.

import {check, sel, email, loginInPage, waitMessageCode} from './lib/harness.mjs';
import {eventSpec, sleep} from './lib/api.mjs';

const HOLD_S = 6;

export default async function (ctx) {
  const api = ctx.api;
  const admin = await ctx.adminToken();
  const ev = await api.createEvent(admin, eventSpec('Flash Sale Quartet', {
    requires_pass: false,
    hold_ttl_s: HOLD_S,
    zones: [{name: 'Circle', capacity: 10, price_minor: 1500, currency: 'EUR'}],
  }));
  const u = await api.user(email('slow'));
  const page = await ctx.page();
  await loginInPage(ctx, page, u, `/queue/${ev.id}`);
  await page.locator(sel('reserve-form')).waitFor();
  await page.fill(sel('quantity-input'), '3');
  await page.click(sel('reserve-button'));
  await page.waitForURL(/#\/hold\/\d+$/);
  const bookingId = Number(page.url().match(/#\/hold\/(\d+)$/)[1]);
  const countdown = page.locator(sel('hold-countdown'));
  await countdown.waitFor();
  const secs = (t) => { const m = t.trim().match(/^(\d+):(\d\d)$/); return m ? Number(m[1]) * 60 + Number(m[2]) : NaN; };
  const first = secs(await countdown.innerText());
  check(first > 0 && first <= HOLD_S, `the countdown starts at most ${HOLD_S} s, not "${first}"`);
  await ctx.shot(page, 'hold-counting-down');
  const held = await api.must(200, 'GET', `/api/v1/events/${ev.id}`);
  check(held.zones[0].available === 7, `3 of 10 seats are held, ${held.zones[0].available} available`);

  await sleep(2100);
  const later = secs(await countdown.innerText());
  check(later < first, `the countdown moves (${first} s, then ${later} s)`);

  await page.waitForFunction((s) => document.querySelector(s)?.textContent.trim() === '0:00', sel('hold-countdown'),
    {timeout: (HOLD_S + 4) * 1000});
  await page.locator(sel('payment-message')).filter({hasText: /expired/i}).waitFor();
  const msg = await waitMessageCode(page, 'HOLD_EXPIRED');
  check(/expired/i.test(msg), `the message area says the hold expired: "${msg}"`);
  check(await page.locator(sel('pay-button')).isDisabled(), 'the pay button is disabled once the hold expired');
  check(await page.locator(sel('card-number')).isDisabled(), 'the card field is disabled once the hold expired');
  await ctx.noRawErrors(page, 'expired hold');
  await ctx.shot(page, 'hold-expired');
  await ctx.axe(page, 'expired hold');

  // The server releases the seats; the page opened again says so.
  const end = Date.now() + 10000;
  let b = null;
  while (Date.now() < end) {
    b = await api.must(200, 'GET', `/api/v1/bookings/${bookingId}`, {token: u.token});
    if (b.status === 'expired') {
      break;
    }
    await sleep(200);
  }
  check(b.status === 'expired', `the server expires the hold, status ${b.status}`);
  const free = await api.must(200, 'GET', `/api/v1/events/${ev.id}`);
  check(free.zones[0].available === 10, `the seats are back on sale, ${free.zones[0].available} of 10`);
  await page.reload();
  await page.locator(`${sel('hold-status')}[data-status="expired"]`).waitFor();
  check((await page.locator(sel('pay-button')).count()) === 0, 'no pay button on an expired hold');
  await ctx.shot(page, 'hold-expired-reopened');
}
