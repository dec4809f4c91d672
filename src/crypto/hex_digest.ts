/**
 * The hex digest of a text or bytes: the one way the client turns a hash into a string (the RT-CV
 * Authorization header's key hash, digests of keys too long for Deno.Kv).
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * The lower-case hex of `algorithm` over `data` (a string is hashed as UTF-8).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hexDigest } from "./hex_digest.ts";
 * assert.equal(
 *   await hexDigest("SHA-256", "abc"),
 *   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
 * );
 * ```
 */
export async function hexDigest(
  algorithm: "SHA-256" | "SHA-512",
  data: string | Uint8Array,
): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const digest = new Uint8Array(await crypto.subtle.digest(algorithm, bytes as Uint8Array<ArrayBuffer>));
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}
