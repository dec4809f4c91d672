/**
 * The 64-bit digest the dedupe index keeps of an item id, as two unsigned 32-bit halves (lo, hi): two
 * MurmurHash3 (x86, 32-bit) lanes over the id's UTF-8 bytes, with different seeds. An id too long for a plain Deno.Kv key (the rule of
 * {@link MAX_PLAIN_KEY_BYTES}) was stored by earlier versions under its SHA-256 digest; its digest here is
 * the first 8 bytes of that SHA-256, so the marks those versions wrote can be moved in without the id.
 *
 * Two different ids share a digest with a probability of about 2^-64 per pair: with ten million ids in the
 * index, a new id is taken for a stored one about once in 2·10^12 lookups.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { MAX_PLAIN_KEY_BYTES } from "../cache/expiry_keys.ts";

const SEED_LO = 0;
const SEED_HI = 0x9747b28c;
const encoder = new TextEncoder();
/** Room for any id that earlier versions stored in plain (at most {@link MAX_PLAIN_KEY_BYTES} bytes). */
const scratch = new Uint8Array(4 * MAX_PLAIN_KEY_BYTES);

/**
 * MurmurHash3, x86 32-bit, of `bytes[0..length)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { murmur3 } from "./id_digest.ts";
 * const bytes = new TextEncoder().encode("The quick brown fox jumps over the lazy dog");
 * assert.equal(murmur3(bytes, bytes.length, 0), 0x2e4ff723);
 * assert.equal(murmur3(new Uint8Array(0), 0, 1), 0x514e28b7);
 * ```
 */
export function murmur3(bytes: Uint8Array, length: number, seed: number): number {
  let h = seed >>> 0;
  const blocks = length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = length & 3;
  if (tail > 0) {
    let k = bytes[blocks];
    if (tail > 1) k ^= bytes[blocks + 1] << 8;
    if (tail > 2) k ^= bytes[blocks + 2] << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Writes the digest of `id` (for a key whose other parts take `extraBytes`) into `out[at]` (lo) and
 * `out[at + 1]` (hi).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { digestOfHex, idDigestInto } from "./id_digest.ts";
 * import { hexDigest } from "../crypto/hex_digest.ts";
 * const out = new Uint32Array(4);
 * idDigestInto("job-1", 18, out, 0);
 * idDigestInto("job-2", 18, out, 2);
 * assert.notDeepEqual([out[0], out[1]], [out[2], out[3]]);
 * const long = "x".repeat(2000); // stored by earlier versions under its SHA-256
 * idDigestInto(long, 18, out, 0);
 * const { lo, hi } = digestOfHex(await hexDigest("SHA-256", long));
 * assert.deepEqual([out[0], out[1]], [lo, hi]);
 * ```
 */
export function idDigestInto(id: string, extraBytes: number, out: Uint32Array, at: number): void {
  const { read, written } = encoder.encodeInto(id, scratch);
  if (read === id.length && written + extraBytes <= MAX_PLAIN_KEY_BYTES) {
    out[at] = murmur3(scratch, written, SEED_LO);
    out[at + 1] = murmur3(scratch, written, SEED_HI);
    return;
  }
  const hash = sha256(encoder.encode(id));
  out[at] = ((hash[0] << 24) | (hash[1] << 16) | (hash[2] << 8) | hash[3]) >>> 0;
  out[at + 1] = ((hash[4] << 24) | (hash[5] << 16) | (hash[6] << 8) | hash[7]) >>> 0;
}

/** The digest of an id that earlier versions stored under the SHA-256 `hex` (lower-case). */
export function digestOfHex(hex: string): { lo: number; hi: number } {
  return { lo: parseInt(hex.slice(0, 8), 16) >>> 0, hi: parseInt(hex.slice(8, 16), 16) >>> 0 };
}
