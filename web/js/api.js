// Every call to the API goes through api(): JSON in and out, the access token (refreshed when it
// expires or the server answers 401), and the retry rules:
//   429 (RATE_LIMITED, JOIN_LIMITED): wait Retry-After (at most 30 s), then again;
//   503 and network failures: back off 1 s, 2 s, 4 s, 8 s (or Retry-After) -- network failures only
//   for requests that are safe to repeat (GET, or marked idempotent: the server dedupes them);
// each wait calls onWait(error, seconds) so the page can say what is happening. Other failures
// throw an ApiError whose code is the API's error code (see messages.js for the sentences).

import {accessToken, clearSession} from './auth.js';
import {sleep} from './dom.js';
import {showMessage, describe} from './messages.js';

export class ApiError extends Error {
  constructor(status, code, message, retryAfterS, details) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
    this.details = details || null;  // the server's own message (shown next to forms for 400s)
  }
}

const WAIT_MAX_S = 30;

function retryAfter(res) {
  const v = res.headers.get('Retry-After');
  if (!v) {
    return null;
  }
  const n = Number(v);
  if (Number.isFinite(n)) {
    return Math.max(0, Math.min(WAIT_MAX_S, Math.ceil(n)));
  }
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, Math.min(WAIT_MAX_S, Math.ceil((t - Date.now()) / 1000))) : null;
}

async function errorOf(res) {
  let code = null;
  let msg = null;
  try {
    const j = await res.json();
    if (j && j.error) {
      code = j.error.code || null;
      msg = j.error.message || null;
    }
  } catch (e) {
    // not JSON: the status decides
  }
  if (!code) {
    code = res.status === 429 ? 'RATE_LIMITED' : res.status === 503 ? 'UNAVAILABLE'
      : res.status === 401 ? 'UNAUTHORIZED' : res.status === 404 ? 'NOT_FOUND'
      : res.status >= 500 ? 'INTERNAL' : 'INVALID_REQUEST';
  }
  return new ApiError(res.status, code, msg, retryAfter(res), msg);
}

function defaultWait(err, s) {
  const text = describe(err);
  showMessage(s > 0 ? `${text} (again in ${s} s)` : text, 'info');
}

// method, path ('/api/v1/...'), options:
//   body (object, sent as JSON), auth (bool: send the access token), headers,
//   tries (attempts in all, default 5; 1 = no retry), idempotent (network failures may be retried),
//   signal (AbortSignal), onWait(err, seconds), raw (return the Response, for text bodies).
// Returns the parsed JSON (null for 204). Throws ApiError.
export async function api(method, path, opts = {}) {
  const tries = opts.tries || 5;
  const safe = method === 'GET' || opts.idempotent === true;
  const onWait = opts.onWait || defaultWait;
  let refreshed = false;
  let waited = false;
  for (let attempt = 1; ; attempt++) {
    const headers = Object.assign({'Accept': 'application/json'}, opts.headers || {});
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
    }
    if (opts.auth) {
      const tok = await accessToken(refreshed);
      if (!tok) {
        throw new ApiError(401, 'UNAUTHORIZED', null, null);
      }
      headers['Authorization'] = 'Bearer ' + tok;
    }
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        signal: opts.signal,
        cache: 'no-store',
      });
    } catch (e) {
      if (opts.signal && opts.signal.aborted) {
        throw new ApiError(0, 'ABORTED', null, null);
      }
      const err = new ApiError(0, 'NETWORK', null, null);
      if (!safe || attempt >= tries) {
        throw err;
      }
      const s = 2 ** (attempt - 1);
      onWait(err, s);
      waited = true;
      await sleep(s * 1000, opts.signal);
      continue;
    }
    if (res.ok) {
      if (waited) {
        clearIfRetrying();
      }
      if (opts.raw) {
        return res;
      }
      return res.status === 204 ? null : res.json();
    }
    const err = await errorOf(res);
    if (res.status === 401 && opts.auth && !refreshed) {
      refreshed = true;  // the token may have just expired: refresh once and try again
      continue;
    }
    if (res.status === 401 && opts.auth) {
      clearSession();
    }
    if ((res.status === 429 || res.status === 503) && attempt < tries
        && err.code !== 'CAPACITY_EXHAUSTED') {
      const s = err.retryAfterS !== null ? Math.max(1, err.retryAfterS) : 2 ** (attempt - 1);
      onWait(err, s);
      waited = true;
      await sleep(s * 1000, opts.signal);
      if (opts.signal && opts.signal.aborted) {
        throw new ApiError(0, 'ABORTED', null, null);
      }
      continue;
    }
    throw err;
  }
}

function clearIfRetrying() {
  const el = document.getElementById('message');
  if (el && el.dataset.kind === 'info' && /Retrying|wait/.test(el.textContent)) {
    el.textContent = '';
    el.className = 'message';
    delete el.dataset.kind;
  }
}

// Runs fn every periodMs until stop() (or the signal aborts); a failing run backs off (doubling, at
// most 30 s, or the Retry-After of a 429/503) and says so in the message area; a good run after
// failures clears that message. fn gets the AbortSignal.
export function poll(fn, periodMs, signal) {
  let delay = periodMs;
  let failing = false;
  const loop = async () => {
    while (!signal.aborted) {
      try {
        await fn(signal);
        if (failing) {
          clearIfRetrying();
          failing = false;
        }
        delay = periodMs;
      } catch (e) {
        if (signal.aborted || e.code === 'ABORTED') {
          return;
        }
        failing = true;
        if (e.retryAfterS) {
          delay = e.retryAfterS * 1000;
        } else if (e.status === 0 || e.status >= 500 || e.status === 429) {
          delay = Math.min(30000, delay * 2);
        }
        if (e.status === 0 || e.status >= 500 || e.status === 429) {
          showMessage(`${describe(e)} (again in ${Math.round(delay / 1000)} s)`, 'info');
        } else {
          showMessage(describe(e), 'error');
        }
      }
      await sleep(delay, signal);
    }
  };
  loop();
}
