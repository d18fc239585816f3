// Unit test of web/pow.js in Node (whose globalThis.crypto.subtle is Web Crypto, as in a
// browser): leading zero bits, and the solver against the vector that the C test
// tests/unit/crypto/test_pow.c checks on the server's side (computed with Python's
// hashlib and hmac). Prints "N passed, N failed"; exits 1 on any failure.
import { leadingZeroBits, powDigest, solvePow } from '../../web/pow.js';

let passed = 0;
let failed = 0;
function eq(a, b, what) {
  if (a === b) passed++;
  else {
    failed++;
    console.log(`FAIL: ${what}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}

const CHALLENGE = '29000000.ERBGRId0Raj51Q55NdBArSB70Ut7Jl3XUcIBS3M6NrA';
const hex = (d) => Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');

eq(leadingZeroBits(new Uint8Array(32)), 256, 'all zero');
eq(leadingZeroBits(new Uint8Array([0x80, 0])), 0, '0x80');
eq(leadingZeroBits(new Uint8Array([0, 0x10])), 11, '0x00 0x10');
eq(leadingZeroBits(new Uint8Array([1])), 7, '0x01');

eq(hex(await powDigest(CHALLENGE, '5614')), '000caa08f2fd00425e45dba9c5e5186811b81cce1f25bd0516b49310a6389cc4',
  'the digest the server computes');
eq(await solvePow(CHALLENGE, 8), '187', '8 bits: the first nonce');
eq(await solvePow(CHALLENGE, 12), '5614', '12 bits: the nonce test_pow.c verifies');
eq(await solvePow(CHALLENGE, 16), '110681', '16 bits');
eq(await solvePow(CHALLENGE, 0), '0', '0 bits: any nonce, the first');

const ctl = new AbortController();
ctl.abort();
let aborted = false;
try {
  await solvePow(CHALLENGE, 30, { signal: ctl.signal });
} catch (e) {
  aborted = e.name === 'AbortError';
}
eq(aborted, true, 'an abort stops the search');
let gaveUp = false;
try {
  await solvePow(CHALLENGE, 30, { maxTries: 512 });
} catch {
  gaveUp = true;
}
eq(gaveUp, true, 'a bounded search gives up');

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
