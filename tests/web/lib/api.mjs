// A small client of the HTTP API for the browser tests: setting up events and users, and the crowd.
// Every call has a timeout; an answer that is not the expected status throws with the body.

export class Api {
  constructor(base) {
    this.base = base;
  }

  // -> {status, body, headers}
  async call(method, path, {token, body, headers = {}, timeoutMs = 10000} = {}) {
    const h = {...headers};
    if (token) {
      h.Authorization = `Bearer ${token}`;
    }
    if (body !== undefined) {
      h['Content-Type'] = 'application/json';
    }
    const res = await fetch(this.base + path, {method, headers: h,
      body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs)});
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return {status: res.status, body: json, headers: res.headers};
  }

  // The same, failing unless the status is one of `want`.
  async must(want, method, path, opts) {
    const r = await this.call(method, path, opts);
    const ok = Array.isArray(want) ? want.includes(r.status) : r.status === want;
    if (!ok) {
      throw new Error(`${method} ${path}: want ${want}, got ${r.status} ${JSON.stringify(r.body)}`);
    }
    return r.body;
  }

  async register(email, password, name) {
    return this.must(201, 'POST', '/api/v1/auth/register', {body: {email, password, name}});
  }

  async login(email, password) {
    const t = await this.must(200, 'POST', '/api/v1/auth/login', {body: {email, password}});
    return t.access_token;
  }

  // Registers and signs in -> {id, email, password, token}
  async user(email, password = 'browser-test-pw', name = email.split('@')[0]) {
    const u = await this.register(email, password, name);
    return {id: u.user_id, email, password, token: await this.login(email, password)};
  }

  async createEvent(token, spec) {
    return this.must(201, 'POST', '/api/v1/events', {token, body: spec});
  }

  async setRole(adminToken, userId, role) {
    return this.must(200, 'POST', `/api/v1/admin/users/${userId}/role`, {token: adminToken, body: {role}});
  }

  async setQueue(adminToken, eventId, body) {
    return this.must(200, 'POST', `/api/v1/admin/events/${eventId}/queue`, {token: adminToken, body});
  }

  // Polls the position until a pass arrives (polling also counts as presence) -> the pass token.
  async waitPass(token, eventId, timeoutMs = 20000) {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const p = await this.must(200, 'GET', `/api/v1/queue/position/${eventId}`, {token});
      if (p.pass && p.pass.token) {
        return p.pass.token;
      }
      if (['sold_out', 'closed', 'lapsed', 'expired', 'left'].includes(p.status)) {
        throw new Error(`no pass for event ${eventId}: status ${p.status}`);
      }
      await sleep(200);
    }
    throw new Error(`no pass for event ${eventId} within ${timeoutMs} ms`);
  }

  async join(token, eventId) {
    return this.must(200, 'POST', '/api/v1/queue/join', {token, body: {event_id: eventId}});
  }

  async reserve(token, eventId, zoneId, quantity, pass) {
    const headers = {'Idempotency-Key': `bt-${eventId}-${zoneId}-${Math.random().toString(36).slice(2)}`};
    if (pass) {
      headers['X-Queue-Pass'] = pass;
    }
    return this.must(201, 'POST', '/api/v1/bookings/reserve', {token, headers,
      body: {event_id: eventId, zone_id: zoneId, quantity}});
  }

  // Pays a held booking with a test card -> the intent's status.
  async pay(token, bookingId, method = 'pm_card_visa') {
    const p = await this.must(201, 'POST', '/api/v1/payments', {token, body: {booking_id: bookingId}});
    const intent = await this.must(200, 'POST',
      `/test-provider/v1/payment_intents/${encodeURIComponent(p.provider_payment_id)}/confirm`,
      {body: {payment_method: method, client_secret: p.client_secret}});
    return intent.status;
  }

  // Waits for a booking to reach `status` -> the booking.
  async waitBooking(token, bookingId, status, timeoutMs = 10000) {
    const end = Date.now() + timeoutMs;
    let b = null;
    while (Date.now() < end) {
      b = await this.must(200, 'GET', `/api/v1/bookings/${bookingId}`, {token});
      if (b.status === status) {
        return b;
      }
      await sleep(150);
    }
    throw new Error(`booking ${bookingId}: want ${status}, still ${b && b.status} after ${timeoutMs} ms`);
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// A spec with sane defaults for an event on sale now.
export function eventSpec(name, over = {}) {
  return {
    name,
    venue: 'Test Hall',
    per_user_limit: 4,
    requires_pass: true,
    hold_ttl_s: 600,
    zones: [{name: 'Stalls', capacity: 100, price_minor: 4500, currency: 'EUR'}],
    ...over,
  };
}
