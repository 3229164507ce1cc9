// #/hold/{id} -- a held booking: the countdown to expires_at, the test provider's card form, the
// confirmation. Paying is POST /api/v1/payments {booking_id} (gives the intent and its
// client_secret; asking again returns the same one, so a booking is never charged twice), then
// POST /test-provider/v1/payment_intents/{pi}/confirm {payment_method, client_secret}: the test
// provider takes Stripe's test payment methods; the card numbers below are Stripe's test numbers
// for them. A decline leaves the booking held: another card can be tried on the same intent.

import {api} from '../api.js';
import {h, fill, money, heading, clock, dateTime} from '../dom.js';
import {showError, showMessage, clearMessage} from '../messages.js';
import {requireLogin} from '../nav.js';
import {field, setError} from '../form.js';

export const TEST_CARDS = [
  {number: '4242 4242 4242 4242', method: 'pm_card_visa', label: 'Visa: succeeds'},
  {number: '5555 5555 5555 4444', method: 'pm_card_mastercard', label: 'Mastercard: succeeds'},
  {number: '3782 822463 10005', method: 'pm_card_amex', label: 'American Express: succeeds'},
  {number: '4000 0000 0000 0002', method: 'pm_card_chargeDeclined', label: 'Declined'},
  {number: '4000 0000 0000 9995', method: 'pm_card_chargeDeclinedInsufficientFunds', label: 'Declined: insufficient funds'},
];

function methodOf(number) {
  const digits = number.replace(/[\s-]/g, '');
  const card = TEST_CARDS.find((c) => c.number.replace(/\s/g, '') === digits);
  return card ? card.method : null;
}

export function confirmation(b, ev) {
  const zone = ev ? ev.zones.find((z) => z.id === b.zone_id) : null;
  return h('section', {class: 'confirmation', 'data-test': 'confirmation', 'aria-labelledby': 'conf-h'},
    h('h2', {id: 'conf-h'}, 'Booking confirmed'),
    h('p', {}, `${b.quantity} ticket${b.quantity === 1 ? '' : 's'}`, zone ? ` in ${zone.name}` : '',
      ev ? ` for ${ev.name}` : '', `, paid ${money(b.total_minor, b.currency)}.`),
    h('p', {}, 'Booking number ', h('strong', {'data-test': 'booking-id'}, String(b.id)), '. ',
      h('a', {href: '#/bookings'}, 'See all my bookings.')));
}

export async function render(main, [id], query, signal) {
  if (!requireLogin(main, 'Your hold')) {
    return;
  }
  let b = await api('GET', `/api/v1/bookings/${id}`, {auth: true, signal});
  let ev = null;
  try {
    ev = await api('GET', `/api/v1/events/${b.event_id}`, {signal, tries: 1});
  } catch (e) {
    ev = null;
  }
  const zone = ev ? ev.zones.find((z) => z.id === b.zone_id) : null;
  const body = h('div', {});
  fill(main, heading(b.status === 'confirmed' ? 'Your booking' : 'Pay for your seats'),
    h('p', {'data-test': 'hold-summary'}, `${b.quantity} ticket${b.quantity === 1 ? '' : 's'}`,
      zone ? ` in ${zone.name}` : '', ev ? ` for ${ev.name}` : '', ` · total ${money(b.total_minor, b.currency)}`),
    body);

  if (b.status === 'confirmed') {
    fill(body, confirmation(b, ev));
    return;
  }
  if (b.status !== 'held') {
    const why = {expired: 'This hold expired: the seats went back on sale.', cancelled: 'This booking was cancelled.',
      refunded: 'This booking was refunded.'}[b.status] || 'This booking cannot be paid.';
    fill(body, h('p', {'data-test': 'hold-status', 'data-status': b.status}, why, ' ',
      h('a', {href: `#/events/${b.event_id}`}, 'Back to the event.')));
    return;
  }

  const end = Date.parse(b.expires_at);
  const countdown = h('span', {class: 'countdown', 'data-test': 'hold-countdown', role: 'timer', 'aria-live': 'off'});
  const card = field('Card number', {name: 'card', inputmode: 'numeric', autocomplete: 'off', 'data-test': 'card-number',
    placeholder: '4242 4242 4242 4242'}, 'Test mode: use one of the test cards listed above. No real card is charged.');
  const pay = h('button', {type: 'submit', 'data-test': 'pay-button'}, `Pay ${money(b.total_minor, b.currency)}`);
  const cancel = h('button', {type: 'button', class: 'danger', 'data-test': 'cancel-button'}, 'Cancel this hold');
  const payMsg = h('p', {class: 'status', 'data-test': 'payment-message', 'aria-live': 'polite'});
  const form = h('form', {class: 'stack', novalidate: true, 'data-test': 'payment-form'},
    h('div', {}, h('h2', {id: 'cards-h'}, 'Test cards'),
      h('ul', {class: 'test-cards', 'data-test': 'test-cards', 'aria-labelledby': 'cards-h'},
        TEST_CARDS.map((c) => h('li', {'data-method': c.method}, h('code', {}, c.number), ` (${c.label})`)))),
    card.wrap, payMsg, h('div', {class: 'actions'}, pay, cancel));
  fill(body, h('p', {}, 'Seats held for you for ', countdown, ` (until ${dateTime(b.expires_at)}). Pay before then or they go back on sale.`),
    form);

  let timer = null;
  let finished = false;
  const expire = () => {
    finished = true;
    clearInterval(timer);
    countdown.textContent = '0:00';
    pay.disabled = true;
    cancel.disabled = true;
    card.input.disabled = true;
    payMsg.textContent = 'Your hold expired.';
    showError({code: 'HOLD_EXPIRED'});
  };
  const tick = () => {
    const left = (end - Date.now()) / 1000;
    if (left <= 0) {
      expire();
      return;
    }
    countdown.textContent = clock(left);
    countdown.classList.toggle('urgent', left < 60);
    // Announce the time left to screen readers only at a few moments, not every second.
    countdown.setAttribute('aria-label', `${Math.ceil(left / 60)} minutes left`);
  };
  tick();
  timer = setInterval(tick, 1000);
  signal.addEventListener('abort', () => clearInterval(timer), {once: true});

  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await api('POST', `/api/v1/bookings/${id}/cancel`, {auth: true, idempotent: true});
      clearInterval(timer);
      finished = true;
      showMessage('Your hold was cancelled and the seats went back on sale.', 'ok', true);
      location.hash = '#/bookings';
    } catch (e) {
      showError(e);
      if (e.code === 'HOLD_EXPIRED') {
        expire();
      } else {
        cancel.disabled = false;
      }
    }
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (finished) {
      return;
    }
    const method = methodOf(card.input.value);
    if (!card.input.value.trim()) {
      setError(card, 'Enter a card number.');
      card.input.focus();
      return;
    }
    if (!method) {
      setError(card, 'This is a test shop: use one of the test card numbers listed above.');
      card.input.focus();
      return;
    }
    setError(card, '');
    pay.disabled = true;
    payMsg.textContent = 'Paying…';
    clearMessage();
    try {
      const p = await api('POST', '/api/v1/payments', {auth: true, body: {booking_id: Number(id)}, idempotent: true, signal});
      const intent = await api('POST', `/test-provider/v1/payment_intents/${encodeURIComponent(p.provider_payment_id)}/confirm`,
        {body: {payment_method: method, client_secret: p.client_secret}, signal});
      if (intent.status === 'succeeded') {
        b = await api('GET', `/api/v1/bookings/${id}`, {auth: true, signal});
        for (let i = 0; i < 10 && b.status === 'held'; i++) {
          await new Promise((r) => setTimeout(r, 300));
          b = await api('GET', `/api/v1/bookings/${id}`, {auth: true, signal});
        }
        clearInterval(timer);
        finished = true;
        if (b.status === 'confirmed') {
          payMsg.textContent = '';
          fill(body, confirmation(b, ev));
          showMessage('Payment received: your booking is confirmed.', 'ok');
          main.querySelector('h1').textContent = 'Your booking';
        } else if (b.status === 'refunded') {
          fill(body, h('p', {'data-test': 'hold-status', 'data-status': b.status},
            'The payment arrived after your hold expired, so it was refunded in full.'));
          showError({code: 'HOLD_EXPIRED'});
        } else {
          payMsg.textContent = 'Payment received; your booking is being confirmed. See My bookings in a moment.';
        }
        return;
      }
      const reason = intent.last_payment_error && intent.last_payment_error.decline_code === 'insufficient_funds'
        ? ' (insufficient funds)' : '';
      payMsg.textContent = `Your card was declined${reason}. Nothing was charged: try another card.`;
      payMsg.dataset.result = 'declined';
      showError({code: 'PAYMENT_DECLINED'});
      pay.disabled = false;
      card.input.value = '';
      card.input.focus();
    } catch (err) {
      if (signal.aborted) {
        return;
      }
      payMsg.textContent = '';
      showError(err);
      if (err.code === 'HOLD_EXPIRED' || err.code === 'BOOKING_NOT_HELD') {
        expire();
      } else {
        pay.disabled = false;
      }
    }
  });
}
