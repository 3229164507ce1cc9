// axe-core on every page not already checked by the flows above (those check the event page, the
// waiting room, the hold page before and after a decline and after expiry, the confirmation, my
// bookings, the organizer's pages and the dashboard): the events list, sign in, register, pages
// that need a session when signed out, my bookings empty, the organizer area as a customer, an
// unknown address, and the buyer's pages on a phone-sized screen (no sideways scrolling either).
// Also: the page is served with a Content-Security-Policy allowing only 'self', the skip link is
// the first stop of the keyboard, and a sign-in error is a sentence, not JSON.

import {check, sel, email, loginInPage} from './lib/harness.mjs';
import {eventSpec} from './lib/api.mjs';

export default async function (ctx) {
  const api = ctx.api;
  const res = await fetch(`${ctx.base}/`);
  const csp = res.headers.get('content-security-policy') || '';
  check(/default-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), `GET / sends a strict CSP, got "${csp}"`);

  const page = await ctx.page();
  await ctx.goto(page, '#/');
  await page.locator(sel('event-card')).first().waitFor();
  await ctx.shot(page, 'events-list');
  await ctx.axe(page, 'events list');
  // The skip link is the first stop of the keyboard (the page moves focus to its h1 after each
  // navigation, so it is checked in document order) and moves focus to the main content.
  const first = await page.evaluate(() => document.querySelector(
    'a[href], button:not([disabled]), input, select, textarea, [tabindex]:not([tabindex="-1"])')?.getAttribute('data-test'));
  check(first === 'skip-link', `the first focusable element is the skip link, not ${first}`);
  await page.focus(sel('skip-link'));
  check(await page.locator(sel('skip-link')).isVisible(), 'the skip link shows when focused');
  await page.keyboard.press('Enter');
  check(await page.evaluate(() => document.activeElement?.id) === 'main', 'the skip link moves focus to the main content');
  // Tab from the main content reaches the first event's link.
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => !!document.activeElement?.closest('[data-test="event-card"]')), 'Tab goes on to the first event');

  await ctx.goto(page, '#/login');
  await page.locator(sel('login-form')).waitFor();
  await ctx.axe(page, 'sign in');
  await page.fill(sel('login-email'), 'nobody@web.test');
  await page.fill(sel('login-password'), 'wrong-password');
  await page.click(sel('login-button'));
  await page.locator(sel('message')).filter({hasText: /\S/}).waitFor();
  await ctx.noRawErrors(page, 'sign in with a wrong password');
  await ctx.shot(page, 'sign-in-refused');
  await ctx.axe(page, 'sign in refused');

  await ctx.goto(page, '#/register');
  await page.locator(sel('register-form')).waitFor();
  await page.click(sel('register-button'));
  await page.locator(sel('register-email-error')).filter({hasText: /\S/}).waitFor();
  await ctx.axe(page, 'register with field errors');

  for (const hash of ['#/bookings', '#/organizer', '#/queue/1']) {
    await ctx.goto(page, hash);
    await page.locator(sel('login-required')).waitFor();
    await ctx.axe(page, `${hash} signed out`);
  }
  await ctx.goto(page, '#/no/such/page');
  await page.locator('h1').filter({hasText: /not found/i}).waitFor();
  await ctx.axe(page, 'unknown address');

  const u = await api.user(email('acc'));
  await loginInPage(ctx, page, u, '/bookings');
  await page.locator(sel('bookings-list')).waitFor();
  check((await page.locator(sel('booking-row')).count()) === 0, 'a new customer has no bookings');
  await ctx.axe(page, 'my bookings, empty');
  await ctx.goto(page, '#/organizer');
  await page.locator(sel('not-organizer')).waitFor();
  await ctx.axe(page, 'organizer area as a customer');

  // A phone: 360 px wide, touch. The events list, an event, the seat form and the hold page.
  const admin = await ctx.adminToken();
  const ev = await api.createEvent(admin, eventSpec('Pocket Gig', {requires_pass: false,
    zones: [{name: 'Standing', capacity: 30, price_minor: 1200, currency: 'EUR'},
      {name: 'Seated, rows A to M (balcony)', capacity: 20, price_minor: 2400, currency: 'EUR'}]}));
  const phone = await ctx.page({width: 360, height: 740, isMobile: true});
  const noSideScroll = async (label) => {
    const w = await phone.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    check(w[0] <= w[1], `${label} on a phone scrolls sideways (${w[0]} px wide in ${w[1]})`);
  };
  await loginInPage(ctx, phone, u, `/events/${ev.id}`);
  await phone.locator(sel('zone-row')).first().waitFor();
  await noSideScroll('the event page');
  await ctx.shot(phone, 'phone-event');
  await ctx.axe(phone, 'event page on a phone');
  await ctx.goto(phone, '#/');
  await phone.locator(sel('event-card')).first().waitFor();
  await noSideScroll('the events list');
  await ctx.axe(phone, 'events list on a phone');
  await ctx.goto(phone, `#/queue/${ev.id}`);
  await phone.locator(sel('reserve-form')).waitFor();
  await noSideScroll('the seat form');
  await ctx.axe(phone, 'seat form on a phone');
  await phone.click(sel('reserve-button'));
  await phone.waitForURL(/#\/hold\/\d+$/);
  await phone.locator(sel('payment-form')).waitFor();
  await noSideScroll('the hold page');
  await ctx.shot(phone, 'phone-hold');
  await ctx.axe(phone, 'hold page on a phone');
  await phone.click(sel('cancel-button'));
  await phone.waitForURL(/#\/bookings$/);
  const row = phone.locator(sel('booking-row')).first();
  await row.waitFor();
  await phone.waitForFunction((s) => document.querySelector(s)?.getAttribute('data-status') === 'cancelled', sel('booking-row'));
  await noSideScroll('my bookings');
  await ctx.axe(phone, 'my bookings on a phone');
}
