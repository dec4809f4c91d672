/**
 * The pieces of the reference cache's "seen until" entries: a key that fits Deno.Kv's 2 KiB limit (the
 * ingest dedupe index digests ids by the same rule), the expiry as a `Deno.KvU64`, batched reads of expiries, and a
 * bounded memory of entries.
 *
 * @module
 */
import { getManyChunked } from "./kv_reads.ts";
import { hexDigest } from "../crypto/hex_digest.ts";

/** Names longer than this (UTF-8 bytes, with the rest of the key) are stored under their SHA-256 digest. */
export const MAX_PLAIN_KEY_BYTES = 1024;

const encoder = new TextEncoder();

/**
 * `[...prefix, name]`, or `[...digestPrefix, <sha-256 hex of name>]` when the name is too long for a Kv key
 * (`extraBytes` counts the rest of the key). Digesting is asynchronous, so only long names get a promise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyFor } from "./expiry_keys.ts";
 * assert.ok(JSON.stringify(keyFor(["ref"], ["ref_sha256"], "abc")) === '["ref","abc"]');
 * ```
 */
export function keyFor(
  prefix: Deno.KvKey,
  digestPrefix: Deno.KvKey,
  name: string,
  extraBytes = 0,
): Deno.KvKey | Promise<Deno.KvKey> {
  if (name.length * 3 + extraBytes <= MAX_PLAIN_KEY_BYTES) {
    return prefix.length === 1 ? [prefix[0], name] : [...prefix, name]; // a literal: no iteration per key
  }
  const bytes = encoder.encode(name);
  if (bytes.byteLength + extraBytes <= MAX_PLAIN_KEY_BYTES) return [...prefix, name];
  return hexDigest("SHA-256", bytes).then((hex) => [...digestPrefix, hex]);
}

let lastExpiry = -1;
let lastValue: Deno.KvU64 | null = null;

/**
 * An expiry time (ms since the epoch) as the value stored: a `Deno.KvU64` commits faster than an object.
 * Pipelined writes within one millisecond share one value (a `KvU64` is immutable).
 */
export function expiryValue(expiresAt: number): Deno.KvU64 {
  const ms = Math.max(0, Math.floor(expiresAt));
  if (ms !== lastExpiry || lastValue === null) {
    lastValue = new Deno.KvU64(BigInt(ms));
    lastExpiry = ms;
  }
  return lastValue;
}

/** The expiry stored in a value, or 0 when there is none. */
export function expiryOf(value: unknown): number {
  return value instanceof Deno.KvU64 ? Number(value.value) : 0;
}

/** Reads the stored expiry of each key (0: not stored), `getMany` ten at a time, all in parallel. */
export async function readExpiries(kv: Deno.Kv, keys: readonly Deno.KvKey[]): Promise<number[]> {
  return (await getManyChunked(kv, keys)).map((entry) => expiryOf(entry.value));
}

/**
 * Sets `key` in a map used as a bounded memory: past `max` entries the oldest is forgotten. The entry is
 * re-inserted, so the map's order is the order of last setting.
 */
export function rememberBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  if (!map.delete(key) && map.size >= max) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}
