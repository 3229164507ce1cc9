// A declined card, then a successful one: the decline is told in words (the card was declined,
// nothing charged), the hold stays payable, and the second card confirms the booking.
// The event needs no pass (requires_pass false): the seat form shows at once.

import {check, sel, email, loginInPage, waitMessageCode} from './lib/harness.mjs';
import {eventSpec} from './lib/api.mjs';

export default async function (ctx) {
  const api = ctx.api;
  const admin = await ctx.adminToken();
  const ev = await api.createEvent(admin, eventSpec('Open Air Matinee', {
    requires_pass: false,
    zones: [{name: 'Lawn', capacity: 50, price_minor: 3000, currency: 'EUR'}],
  }));
  const u = await api.user(email('dee'));
  const page = await ctx.page();
  await loginInPage(ctx, page, u, `/queue/${ev.id}`);
  await page.locator(sel('reserve-form')).waitFor();
  await page.fill(sel('quantity-input'), '1');
  await page.click(sel('reserve-button'));
  await page.waitForURL(/#\/hold\/\d+$/);
  const bookingId = Number(page.url().match(/#\/hold\/(\d+)$/)[1]);

  // A number that is no test card is refused in the page, before any request.
  await page.fill(sel('card-number'), '1234 5678 9012 3456');
  await page.click(sel('pay-button'));
  await page.locator(sel('card-number-error')).filter({hasText: /test card/i}).waitFor();

  await page.fill(sel('card-number'), '4000 0000 0000 0002');
  await page.click(sel('pay-button'));
  await page.locator(`${sel('payment-message')}[data-result="declined"]`).waitFor();
  const said = await page.locator(sel('payment-message')).innerText();
  check(/declined/i.test(said) && /nothing was charged/i.test(said), `the decline is explained: "${said}"`);
  const msg = await waitMessageCode(page, 'PAYMENT_DECLINED');
  check(/declined/i.test(msg), `the message area says declined: "${msg}"`);
  check(await page.locator(sel('pay-button')).isEnabled(), 'the pay button works again after a decline');
  await ctx.noRawErrors(page, 'hold page after a decline');
  await ctx.shot(page, 'card-declined');
  await ctx.axe(page, 'hold page after a decline');
  const held = await api.must(200, 'GET', `/api/v1/bookings/${bookingId}`, {token: u.token});
  check(held.status === 'held', `the booking is still held after the decline, not ${held.status}`);

  await page.fill(sel('card-number'), '5555555555554444');
  await page.click(sel('pay-button'));
  await page.locator(sel('confirmation')).waitFor();
  check(Number(await page.locator(sel('booking-id')).innerText()) === bookingId, 'the confirmation names the booking');
  await ctx.shot(page, 'second-card-confirmed');
  const done = await api.must(200, 'GET', `/api/v1/bookings/${bookingId}`, {token: u.token});
  check(done.status === 'confirmed', `the booking is confirmed, not ${done.status}`);
}
