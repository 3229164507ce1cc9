// #/queue/{id} -- the waiting room, then choosing seats.
//   1. POST /api/v1/queue/join (after a proof of work when the event asks for one: POST
//      /api/v1/queue/challenge, solved in a Web Worker). Joining again keeps the place.
//   2. Follow GET /api/v1/queue/position/{id}/stream (fetch + reader, the token in the header);
//      after a drop, reconnect with backoff (the place is the server's: nothing is lost); after
//      three failures in a row, poll GET /api/v1/queue/position/{id} every 3 s instead.
//   3. With the pass (or when no pass is needed): zone, quantity, POST /api/v1/bookings/reserve
//      with X-Queue-Pass and a fresh Idempotency-Key, then #/hold/{booking id}.

import {api, poll, ApiError} from '../api.js';
import {h, fill, money, dateTime, heading, roughDuration, clock, sleep, newKey} from '../dom.js';
import {accessToken} from '../auth.js';
import {showError, showMessage, clearMessage, describe} from '../messages.js';
import {requireLogin} from '../nav.js';
import {readStream} from '../sse.js';
import {solveChallenge} from '../pow.js';
import {field, setError, intIn} from '../form.js';

const POLL_MS = 3000;
const STREAM_FAILURES_MAX = 3;
const FINAL = new Set(['admitted', 'sold_out', 'lapsed', 'expired', 'used', 'left', 'passthrough']);

// The sentence for a position (status and gate).
export function statusText(p) {
  switch (p.status) {
    case 'waiting':
      if (p.gate === 'paused') {
        return 'The organizer has paused admissions. Your place is kept; please stay on this page.';
      }
      if (p.gate === 'seats_held') {
        return 'All seats are currently held in other buyers\' carts. Some may come back: admissions resume in queue order.';
      }
      if (p.gate === 'not_open') {
        return 'The sale has not opened yet. Your place will be drawn at random when it opens.';
      }
      return 'You are in line. Please keep this page open: your turn comes automatically.';
    case 'prequeue':
      return 'You are in the pre-queue. When the sale opens, everyone here gets a random place in line.';
    case 'admitted':
      return 'It is your turn! Choose your seats before your pass runs out.';
    case 'sold_out':
      return 'Sold out: every seat has been sold, so no more passes will be given. Sorry!';
    case 'closed':
      return 'The organizer has closed the waiting room. Your place is kept if it reopens.';
    case 'passthrough':
      return 'No waiting needed right now: choose your seats.';
    case 'lapsed':
      return 'Your turn came while you were away, so your place was given up. Join again for a new place at the back of the line.';
    case 'expired':
      return 'Your pass expired before you booked. Join again for a new place in line.';
    case 'used':
      return 'Your pass has been used to hold seats. See My bookings.';
    case 'left':
      return 'You left the waiting room.';
    default:
      return '';
  }
}

function basisText(b) {
  return b === 'measured' ? ' (measured from the last few minutes)'
    : b === 'configured' ? ' (from the event\'s settings)' : '';
}

export async function render(main, [id], query, signal) {
  if (!requireLogin(main, 'Waiting room')) {
    return;
  }
  let ev = await api('GET', `/api/v1/events/${id}`, {signal});
  const status = h('p', {class: 'status', 'data-test': 'queue-status', 'aria-live': 'polite'});
  const position = h('p', {'data-test': 'queue-position-wrap'}, 'Your place in line: ',
    h('span', {class: 'big', 'data-test': 'queue-position'}, '…'));
  const wait = h('p', {'data-test': 'queue-wait'});
  const connection = h('p', {class: 'hint', 'data-test': 'queue-connection'});
  const work = h('div', {});
  const roomBox = h('section', {class: 'panel', 'aria-labelledby': 'room-h'},
    h('h2', {id: 'room-h'}, 'Your place'), status, position, wait, connection, work);
  const bookBox = h('div', {});
  const actions = h('p', {class: 'actions'});
  fill(main, heading(`Waiting room: ${ev.name}`), roomBox, bookBox, actions);

  let last = null;
  let done = false;
  let following = false;

  const show = (p) => {
    last = p;
    status.textContent = statusText(p);
    status.dataset.status = p.status;
    status.dataset.gate = p.gate || '';
    const waiting = p.status === 'waiting' || p.status === 'prequeue';
    position.hidden = !(p.status === 'waiting' && p.position > 0);
    if (p.status === 'waiting') {
      position.querySelector('[data-test="queue-position"]').textContent =
        `${p.position}`;
      position.querySelector('[data-test="queue-position"]').setAttribute('aria-label', `number ${p.position} of ${p.queue_length}`);
    }
    if (p.status === 'prequeue') {
      fill(wait, `The sale opens ${dateTime(ev.sale_opens_at)}.`);
    } else if (waiting && (p.gate === 'paused' || p.gate === 'seats_held')) {
      // No estimate while nobody is let in: say why instead.
      fill(wait, p.gate === 'paused'
        ? 'Admissions are paused by the organizer; your place is kept. '
        : 'Every seat is held right now; some may come back, and your place is kept. ',
      `${p.queue_length} ${p.queue_length === 1 ? 'person' : 'people'} in line.`);
    } else if (waiting && p.estimated_wait_s !== null && p.estimated_wait_s !== undefined) {
      fill(wait, `Estimated wait: ${roughDuration(p.estimated_wait_s)}${basisText(p.estimate_basis)}. `,
        `${p.queue_length} ${p.queue_length === 1 ? 'person' : 'people'} in line.`);
    } else {
      fill(wait);
    }
    if (['lapsed', 'expired', 'left'].includes(p.status)) {
      fill(actions, h('button', {type: 'button', 'data-test': 'rejoin-button', onclick: () => start()}, 'Join again'));
    } else if (waiting || p.status === 'closed') {
      fill(actions, h('button', {type: 'button', class: 'secondary', 'data-test': 'leave-button', onclick: leave}, 'Leave the waiting room'));
    } else {
      fill(actions);
    }
    if (p.status === 'sold_out') {
      showMessage(statusText(p), 'error');
    }
    if (p.status === 'admitted' && p.pass) {
      gotPass(p.pass);
    }
    if (p.status === 'passthrough') {
      gotPass(null);
    }
    if (FINAL.has(p.status)) {
      done = true;
    }
  };

  const leave = async () => {
    try {
      await api('DELETE', '/api/v1/queue/leave', {auth: true, body: {event_id: Number(id)}, idempotent: true});
      done = true;
      show(Object.assign({}, last || {}, {status: 'left', position: 0}));
    } catch (e) {
      showError(e);
    }
  };

  const solve = async () => {
    const progress = h('progress', {class: 'progress', 'aria-label': 'Puzzle progress'});
    const note = h('p', {'data-test': 'pow-status'}, 'Your browser is solving a small puzzle before joining (this keeps bots out)…');
    fill(work, note, progress);
    const sol = await solveChallenge('/api/v1/queue/challenge', {event_id: Number(id)}, true,
      (n, bits) => { note.textContent = `Solving a small puzzle before joining: ${n.toLocaleString()} tries so far (about ${(2 ** bits).toLocaleString()} needed on average)…`; },
      signal);
    fill(work);
    return sol;
  };

  const join = async () => {
    let room = null;
    try {
      room = await api('GET', `/api/v1/events/${id}/queue`, {signal, tries: 1});
    } catch (e) {
      room = null;
    }
    let body = {event_id: Number(id)};
    if (room && room.pow_bits > 0 && room.gate !== 'passthrough') {
      body = Object.assign(body, await solve() || {});
    }
    try {
      return await api('POST', '/api/v1/queue/join', {auth: true, body, signal, idempotent: true});
    } catch (e) {
      if (e.code !== 'POW_REQUIRED' && e.code !== 'POW_INVALID') {
        throw e;
      }
      body = Object.assign({event_id: Number(id)}, await solve() || {});
      return api('POST', '/api/v1/queue/join', {auth: true, body, signal, idempotent: true});
    }
  };

  const onEvent = (type, data) => {
    let d = null;
    try {
      d = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (type === 'position') {
      show(d);
    } else if (type === 'pass') {
      show(Object.assign({}, last || {}, {status: 'admitted', position: 0, pass: d}));
    } else if (type === 'queue' && last) {
      show(Object.assign({}, last, {gate: d.gate, status: d.gate === 'closed' ? 'closed'
        : (last.status === 'closed' ? 'waiting' : last.status)}));
    } else if (type === 'sold_out') {
      show(Object.assign({}, last || {}, {status: 'sold_out', gate: 'sold_out', estimated_wait_s: null}));
    }
  };

  const follow = async () => {
    if (following) {
      return;
    }
    following = true;
    let failures = 0;
    const state = {lastEventId: null};
    while (!done && !signal.aborted && failures < STREAM_FAILURES_MAX) {
      connection.textContent = 'Live updates: connected.';
      try {
        const tok = await accessToken(failures > 0);
        if (!tok) {
          throw new ApiError(401, 'UNAUTHORIZED');
        }
        await readStream(`/api/v1/queue/position/${id}/stream`, tok, state, onEvent, signal);
        failures = 0;  // ended by the server: reconnect at once
      } catch (e) {
        if (signal.aborted) {
          break;
        }
        if (e.code === 'NOT_IN_QUEUE') {
          show(await join());  // the place was dropped (a restart): join again
          continue;
        }
        failures++;
        const s = e.retryAfterS || Math.min(15, 2 ** failures);
        connection.textContent = `Live updates interrupted; reconnecting in ${s} s. Your place is kept.`;
        await sleep(s * 1000, signal);
      }
    }
    following = false;
    if (!done && !signal.aborted) {
      connection.textContent = 'Live updates are blocked on this network: checking every few seconds instead.';
      poll(async (sig) => {
        if (done) {
          return;
        }
        show(await api('GET', `/api/v1/queue/position/${id}`, {auth: true, signal: sig, tries: 1}));
      }, POLL_MS, signal);
    } else if (done) {
      connection.textContent = '';
    }
  };

  let passTimer = null;
  let booking = false;
  const gotPass = (pass) => {
    if (booking) {
      return;
    }
    booking = true;
    fill(actions);
    position.hidden = true;
    fill(wait);
    drawReserve(pass);
  };

  const drawReserve = (pass) => {
    const zones = ev.zones;
    const zoneF = field('Zone', {tag: 'select', name: 'zone', 'data-test': 'zone-select',
      options: zones.map((z) => [String(z.id), `${z.name}: ${money(z.price_minor, z.currency)} per seat (${z.available > 0 ? z.available + ' left' : 'sold out'})`])});
    const maxQ = Math.max(1, Math.min(16, ev.per_user_limit));
    const qtyF = field('Number of tickets', {type: 'number', name: 'quantity', min: 1, max: maxQ, step: 1, value: '1',
      inputmode: 'numeric', 'data-test': 'quantity-input'}, `1 to ${maxQ} (at most ${ev.per_user_limit} per person for this event).`);
    const firstOpen = zones.find((z) => z.available > 0);
    if (firstOpen) {
      zoneF.input.value = String(firstOpen.id);
    }
    const total = h('p', {'data-test': 'reserve-total', 'aria-live': 'polite'});
    const updateTotal = () => {
      const z = zones.find((x) => String(x.id) === zoneF.input.value);
      const q = Number(qtyF.input.value);
      total.textContent = z && Number.isInteger(q) && q > 0 ? `Total: ${money(z.price_minor * q, z.currency)}` : '';
    };
    zoneF.input.addEventListener('change', updateTotal);
    qtyF.input.addEventListener('input', updateTotal);
    updateTotal();
    const btn = h('button', {type: 'submit', 'data-test': 'reserve-button'}, 'Hold these seats');
    const passLine = h('p', {'data-test': 'pass-countdown'});
    const form = h('form', {class: 'stack', novalidate: true, 'data-test': 'reserve-form'},
      pass ? passLine : null, zoneF.wrap, qtyF.wrap, total, h('div', {class: 'actions'}, btn));
    if (pass) {
      const end = Date.parse(pass.expires_at);
      const tick = () => {
        const left = (end - Date.now()) / 1000;
        if (left <= 0) {
          clearInterval(passTimer);
          passLine.textContent = 'Your pass has expired.';
          btn.disabled = true;
          showError({code: 'PASS_EXPIRED'});
          fill(actions, h('button', {type: 'button', 'data-test': 'rejoin-button', onclick: () => { booking = false; fill(bookBox); start(); }}, 'Join again'));
          return;
        }
        passLine.textContent = `Your pass is valid for ${clock(left)} more (until ${new Date(end).toLocaleTimeString()}).`;
      };
      tick();
      passTimer = setInterval(tick, 1000);
      signal.addEventListener('abort', () => clearInterval(passTimer), {once: true});
    }
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const q = intIn(qtyF, 'The number of tickets', 1, maxQ);
      if (q === null) {
        qtyF.input.focus();
        return;
      }
      setError(zoneF, '');
      btn.disabled = true;
      const headers = {'Idempotency-Key': newKey()};
      if (pass) {
        headers['X-Queue-Pass'] = pass.token;
      }
      try {
        clearMessage();
        const b = await api('POST', '/api/v1/bookings/reserve', {auth: true, headers, idempotent: true, signal,
          body: {event_id: Number(id), zone_id: Number(zoneF.input.value), quantity: q}});
        clearInterval(passTimer);
        location.hash = `#/hold/${b.id}`;
      } catch (err) {
        if (signal.aborted) {
          return;
        }
        btn.disabled = false;
        showError(err);
        if (err.code === 'SOLD_OUT') {
          setError(zoneF, 'Not enough seats left in this zone for that many tickets.');
          try {
            ev = await api('GET', `/api/v1/events/${id}`, {signal, tries: 1});
            fill(bookBox);
            booking = false;
            gotPass(pass);
          } catch (e2) {
            // keep the form as it is
          }
        } else if (err.code === 'LIMIT_EXCEEDED') {
          setError(qtyF, describe(err));
        } else if (['PASS_EXPIRED', 'PASS_INVALID', 'PASS_REQUIRED'].includes(err.code)) {
          btn.disabled = true;
          clearInterval(passTimer);
          fill(actions, h('button', {type: 'button', 'data-test': 'rejoin-button', onclick: () => { booking = false; fill(bookBox); start(); }}, 'Join again'));
        }
      }
    });
    fill(bookBox, h('section', {'aria-labelledby': 'book-h'}, h('h2', {id: 'book-h'}, 'Choose your seats'), form));
    zoneF.input.focus();
  };

  const start = async () => {
    done = false;
    clearMessage();
    if (!ev.requires_pass) {
      status.textContent = 'This event has no waiting room: choose your seats.';
      status.dataset.status = 'passthrough';
      position.hidden = true;
      gotPass(null);
      return;
    }
    try {
      show(await join());
    } catch (e) {
      if (signal.aborted) {
        return;
      }
      if (e.code === 'QUEUE_CLOSED' || e.code === 'SOLD_OUT') {
        show({status: e.code === 'SOLD_OUT' ? 'sold_out' : 'closed', gate: e.code === 'SOLD_OUT' ? 'sold_out' : 'closed',
          position: 0, queue_length: 0, estimated_wait_s: null});
        showError(e);
        if (e.code === 'QUEUE_CLOSED') {
          fill(actions, h('button', {type: 'button', 'data-test': 'rejoin-button', onclick: () => start()}, 'Try again'));
        }
        done = true;
        return;
      }
      throw e;
    }
    if (!done) {
      follow();
    }
  };
  await start();
}
