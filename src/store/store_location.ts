/**
 * Which store `RTCV_SCRAPER_CLIENT_KV` (or the config's `kv`) names: the embedded Deno.Kv (a file path,
 * `:memory:` or a KV Connect `http(s)://` URL) or a Redis server (`redis://`, `rediss://`). Any other
 * `<scheme>://` is refused, so a typo never becomes a file of that name.
 *
 * @module
 */

import { parseRedisUrl, type RedisAddress } from "./redis/redis_url.ts";

/** Where the cache, the dedupe index and the outbox live. */
export type StoreLocation =
  | { readonly kind: "kv"; readonly location: string }
  | { readonly kind: "redis"; readonly redis: RedisAddress };

/** A `RTCV_SCRAPER_CLIENT_KV` value that names no store; the message never shows a password. */
export class StoreLocationError extends Error {
  override name = "StoreLocationError";
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/**
 * Classifies a store location.
 *
 * @throws {StoreLocationError} for a `<scheme>://` other than http(s), redis or rediss, or a malformed
 * Redis URL.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifyStoreLocation } from "./store_location.ts";
 * assert.equal(classifyStoreLocation("/var/cache/rtcv.kv").kind, "kv");
 * assert.equal(classifyStoreLocation("redis://:pw@10.0.0.5:6379/2").kind, "redis");
 * assert.throws(() => classifyStoreLocation("postgres://db/rtcv"));
 * ```
 */
export function classifyStoreLocation(value: string): StoreLocation {
  const scheme = SCHEME.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined || scheme === "http" || scheme === "https") return { kind: "kv", location: value };
  if (scheme === "redis" || scheme === "rediss") {
    try {
      return { kind: "redis", redis: parseRedisUrl(value) };
    } catch (error) {
      throw new StoreLocationError(error instanceof Error ? error.message : String(error));
    }
  }
  throw new StoreLocationError(
    `is a ${scheme}:// URL, which names no store: expected a file path, :memory:, an https:// KV Connect URL, ` +
      "or redis://[user:password@]host:port[/db] (rediss:// for TLS)",
  );
}
