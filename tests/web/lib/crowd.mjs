// A small crowd of buyers over the HTTP API, for the organizer's dashboard test: each person
// registers, signs in, joins the waiting room (arrivals spread over `spreadMs`), polls for the pass,
// holds 1 or 2 seats in a zone with seats left, and pays with the success card; every tenth
// person cancels the hold instead. -> {people, seats, bookings, cancelled, revenueMinor, failures}
// Stand-alone: node lib/crowd.mjs BASE_URL EVENT_ID [PEOPLE]

import {Api, sleep} from './api.mjs';

export async function runCrowd({base, eventId, people = 36, spreadMs = 8000, tag = `crowd${process.pid}`}) {
  const api = new Api(base);
  const ev = await api.must(200, 'GET', `/api/v1/events/${eventId}`);
  const out = {people, seats: 0, bookings: 0, cancelled: 0, revenueMinor: 0, failures: []};
  const one = async (i) => {
    await sleep(Math.floor((i * spreadMs) / people));
    try {
      const u = await api.user(`${tag}-${i}@crowd.test`, 'crowd-member-pw', `Crowd ${i}`);
      await api.join(u.token, eventId);
      const pass = await api.waitPass(u.token, eventId, 60000);
      await sleep(700 + (i % 5) * 200); // choosing seats
      const now = await api.must(200, 'GET', `/api/v1/events/${eventId}`);
      const open = now.zones.filter((z) => z.available >= 2);
      if (!open.length) {
        return; // sold out while waiting: a real outcome, not a failure
      }
      const zone = open[i % open.length];
      const quantity = Math.min(1 + (i % 2), ev.per_user_limit);
      const b = await api.reserve(u.token, eventId, zone.id, quantity, pass);
      await sleep(400 + (i % 3) * 300); // typing the card
      if (i % 10 === 9) {
        await api.must(200, 'POST', `/api/v1/bookings/${b.id}/cancel`, {token: u.token});
        out.cancelled += 1;
        return;
      }
      const st = await api.pay(u.token, b.id, 'pm_card_visa');
      if (st !== 'succeeded') {
        throw new Error(`payment ${st}`);
      }
      await api.waitBooking(u.token, b.id, 'confirmed');
      out.seats += quantity;
      out.bookings += 1;
      out.revenueMinor += quantity * zone.price_minor;
    } catch (e) {
      out.failures.push(`person ${i}: ${e.message}`);
    }
  };
  await Promise.all(Array.from({length: people}, (_, i) => one(i)));
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [base, id, n] = process.argv.slice(2);
  const r = await runCrowd({base, eventId: Number(id), people: Number(n || 36)});
  console.log(JSON.stringify(r, null, 1));
  process.exit(r.failures.length ? 1 : 0);
}
