/**
 * NaCl box key pairs and anonymous sealed boxes (libsodium's `crypto_box_seal`, Go's `box.SealAnonymous`),
 * built from tweetnacl's `box` and BLAKE2b from `@noble/hashes`: a sealed box is
 * `ephemeral public key (32 bytes) || box(message, nonce, recipient public key, ephemeral secret key)` with
 * `nonce = BLAKE2b-192(ephemeral public key || recipient public key)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKeyPair, openSealedBox, sealAnonymous } from "./sealed_box.ts";
 * const pair = generateKeyPair();
 * const sealed = sealAnonymous(new TextEncoder().encode("hi"), pair.publicKey);
 * assert.equal(new TextDecoder().decode(openSealedBox(sealed, pair)!), "hi");
 * ```
 *
 * @module
 */

import nacl from "tweetnacl";
import { blake2b } from "@noble/hashes/blake2.js";

/** Bytes of a box public or secret key. */
export const KEY_BYTES = 32;
/** What a sealed box adds to the message: the ephemeral public key and the MAC. */
export const SEAL_OVERHEAD = KEY_BYTES + nacl.box.overheadLength;

/** A box key pair (X25519), raw bytes. */
export interface BoxKeyPair {
  /** 32 bytes. */
  readonly publicKey: Uint8Array;
  /** 32 bytes. */
  readonly secretKey: Uint8Array;
}

/** A fresh random key pair. */
export function generateKeyPair(): BoxKeyPair {
  return nacl.box.keyPair();
}

/** The public key that belongs to `secretKey` (32 bytes). */
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return nacl.box.keyPair.fromSecretKey(secretKey).publicKey;
}

function sealNonce(ephemeralPublicKey: Uint8Array, recipientPublicKey: Uint8Array): Uint8Array {
  const input = new Uint8Array(KEY_BYTES * 2);
  input.set(ephemeralPublicKey, 0);
  input.set(recipientPublicKey, KEY_BYTES);
  return blake2b(input, { dkLen: nacl.box.nonceLength });
}

/** Seals `message` to `recipientPublicKey` with a fresh ephemeral key pair (anyone can seal, only the owner opens). */
export function sealAnonymous(message: Uint8Array, recipientPublicKey: Uint8Array): Uint8Array {
  const ephemeral = nacl.box.keyPair();
  const boxed = nacl.box(
    message,
    sealNonce(ephemeral.publicKey, recipientPublicKey),
    recipientPublicKey,
    ephemeral.secretKey,
  );
  const sealed = new Uint8Array(KEY_BYTES + boxed.length);
  sealed.set(ephemeral.publicKey, 0);
  sealed.set(boxed, KEY_BYTES);
  return sealed;
}

/** Opens a sealed box made for `pair`; null when it is too short, made for another key, or altered. */
export function openSealedBox(sealed: Uint8Array, pair: BoxKeyPair): Uint8Array | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  const ephemeralPublicKey = sealed.subarray(0, KEY_BYTES);
  const nonce = sealNonce(ephemeralPublicKey, pair.publicKey);
  return nacl.box.open(sealed.subarray(KEY_BYTES), nonce, ephemeralPublicKey, pair.secretKey);
}

/** Standard base64 of bytes. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Bytes of standard base64 text; null when it is not base64. */
export function fromBase64(text: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
  } catch {
    return null;
  }
}
