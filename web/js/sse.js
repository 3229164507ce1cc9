// Server-sent events over fetch(): the access token goes in the Authorization header (not in the
// URL, where it would land in logs), and Last-Event-ID is sent when the server gave ids. A stream
// silent for longer than SILENCE_MS (no event, no keep-alive comment) is treated as dropped.

import {ApiError} from './api.js';

const SILENCE_MS = 45000;

// Reads url until the server ends the stream (resolves), the signal aborts (resolves) or it fails
// (throws ApiError: the HTTP status and code, or 0/NETWORK). onEvent(type, data, id) per event;
// state.lastEventId is kept across calls by the caller.
export async function readStream(url, token, state, onEvent, signal) {
  const ctl = new AbortController();
  const abort = () => ctl.abort();
  signal.addEventListener('abort', abort, {once: true});
  let timer = null;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => ctl.abort(), SILENCE_MS);
  };
  try {
    const headers = {'Accept': 'text/event-stream', 'Authorization': 'Bearer ' + token};
    if (state.lastEventId) {
      headers['Last-Event-ID'] = state.lastEventId;
    }
    arm();
    let res;
    try {
      res = await fetch(url, {headers, signal: ctl.signal, cache: 'no-store'});
    } catch (e) {
      throw new ApiError(0, 'NETWORK', null, null);
    }
    if (!res.ok) {
      let code = null;
      try {
        code = (await res.json()).error.code;
      } catch (e) {
        code = null;
      }
      const ra = Number(res.headers.get('Retry-After'));
      throw new ApiError(res.status, code || (res.status === 401 ? 'UNAUTHORIZED' : 'UNAVAILABLE'), null,
        Number.isFinite(ra) && ra > 0 ? Math.min(30, ra) : null);
    }
    if (!res.body || !(res.headers.get('Content-Type') || '').includes('text/event-stream')) {
      throw new ApiError(0, 'NETWORK', null, null);  // a proxy answered something else
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let type = '';
    let data = [];
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (signal.aborted) {
          return;
        }
        throw new ApiError(0, 'NETWORK', null, null);
      }
      if (chunk.done) {
        return;
      }
      arm();
      buf += dec.decode(chunk.value, {stream: true});
      let nl;
      while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
        if (line === '') {
          if (data.length) {
            onEvent(type || 'message', data.join('\n'), state.lastEventId);
          }
          type = '';
          data = [];
        } else if (line.startsWith(':')) {
          continue;  // keep-alive
        } else {
          const c = line.indexOf(':');
          const fieldName = c < 0 ? line : line.slice(0, c);
          let value = c < 0 ? '' : line.slice(c + 1);
          if (value.startsWith(' ')) {
            value = value.slice(1);
          }
          if (fieldName === 'event') {
            type = value;
          } else if (fieldName === 'data') {
            data.push(value);
          } else if (fieldName === 'id') {
            state.lastEventId = value;
          }
        }
      }
    }
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', abort);
  }
}
