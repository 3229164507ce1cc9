// Web Worker: finds a nonce such that SHA-256(challenge + "." + nonce) has `bits` leading zero bits.
// Nonces are base-36 counters (digits and lower-case letters, within [0-9A-Za-z_-]). Posts
// {progress: n} every 4096 hashes and {nonce} at the end.

function leadingZeroBits(bytes) {
  let n = 0;
  for (const b of bytes) {
    if (b === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(b) - 24;
  }
  return n;
}

self.onmessage = async (e) => {
  const {challenge, bits} = e.data;
  const enc = new TextEncoder();
  const prefix = challenge + '.';
  const start = Math.floor(Math.random() * 1e9);
  for (let i = 0; ; i++) {
    const nonce = (start + i).toString(36);
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', enc.encode(prefix + nonce)));
    if (leadingZeroBits(digest) >= bits) {
      self.postMessage({nonce});
      return;
    }
    if ((i & 4095) === 4095) {
      self.postMessage({progress: i + 1});
    }
  }
};
