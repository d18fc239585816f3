// Proof of work for the waiting room: find a nonce such that SHA-256(challenge + nonce)
// starts with `bits` zero bits (the server's check: src/crypto/pow.h). Nonces are decimal
// counters from 0, so a solution is the first one and the same in every browser. The
// hashing is Web Crypto's (crypto.subtle.digest); at the default difficulty a phone
// takes well under a second, a bot farm pays for every join.

const enc = new TextEncoder();

/** Leading zero bits of a digest (an ArrayBuffer or a Uint8Array). */
export function leadingZeroBits(digest) {
  const b = digest instanceof Uint8Array ? digest : new Uint8Array(digest);
  let z = 0;
  for (const byte of b) {
    if (byte === 0) {
      z += 8;
      continue;
    }
    return z + Math.clz32(byte) - 24;
  }
  return z;
}

/** SHA-256 of challenge + nonce as text. */
export async function powDigest(challenge, nonce) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', enc.encode(challenge + nonce)));
}

/**
 * Finds the first decimal nonce whose hash with the challenge has at least `bits`
 * leading zero bits. `signal` (an AbortSignal) stops the search; `onProgress(tries)` is
 * called now and then. Resolves to the nonce as a string; rejects when aborted or after
 * `maxTries` (2^(bits+8) by default: far beyond any honest luck).
 */
export async function solvePow(challenge, bits, { signal, onProgress, maxTries } = {}) {
  if (!(bits >= 0 && bits <= 40)) throw new RangeError(`pow bits out of range: ${bits}`);
  const limit = maxTries || 2 ** Math.min(bits + 8, 48);
  const batch = 256; // digests in flight together: Web Crypto is asynchronous
  for (let start = 0; start < limit; start += batch) {
    if (signal && signal.aborted) throw new DOMException('aborted', 'AbortError');
    const tries = [];
    for (let n = start; n < start + batch && n < limit; n++) tries.push(powDigest(challenge, String(n)));
    const digests = await Promise.all(tries);
    for (let i = 0; i < digests.length; i++) if (leadingZeroBits(digests[i]) >= bits) return String(start + i);
    if (onProgress && (start / batch) % 16 === 15) onProgress(start + batch);
  }
  throw new Error(`no nonce within ${limit} tries`);
}
