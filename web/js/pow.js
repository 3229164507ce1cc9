// Proof of work: fetch a challenge, solve it in a Web Worker (js/pow-worker.js, so the page stays
// responsive), return {pow_challenge, pow_nonce}. The rule (openapi.json, Challenge): a nonce of
// [0-9A-Za-z_-] such that SHA-256(challenge + "." + nonce) starts with `bits` zero bits.

import {api} from './api.js';

// path: '/api/v1/queue/challenge' (body {event_id}) or '/api/v1/auth/challenge' (no body).
// onProgress(hashesTried, bits) is called now and then. Returns null when no work is needed.
export async function solveChallenge(path, body, auth, onProgress, signal) {
  const ch = await api('POST', path, {body, auth, signal, idempotent: true});
  if (!ch.bits || !ch.challenge) {
    return null;
  }
  const nonce = await new Promise((resolve, reject) => {
    const worker = new Worker('/web/js/pow-worker.js');
    const stop = () => { worker.terminate(); reject(new Error('aborted')); };
    if (signal) {
      signal.addEventListener('abort', stop, {once: true});
    }
    worker.onmessage = (e) => {
      if (e.data.progress !== undefined) {
        if (onProgress) {
          onProgress(e.data.progress, ch.bits);
        }
        return;
      }
      worker.terminate();
      resolve(e.data.nonce);
    };
    worker.onerror = (e) => { worker.terminate(); reject(e); };
    worker.postMessage({challenge: ch.challenge, bits: ch.bits});
  });
  return {pow_challenge: ch.challenge, pow_nonce: nonce};
}
