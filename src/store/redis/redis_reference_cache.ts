/**
 * The reference cache of a fleet, on Redis: every process on every machine sees what any of them cached.
 *
 * Each reference is the key `rtcv:ref:<reference number>` with a Redis expiry (`PTTL` shows what is left
 * of the 72 h or 12 h lifetime); Redis never answers an expired key, so no clock is needed here. A later
 * set never shortens a lifetime:
 * - 72 h is the longest lifetime, so `SET key 1 PX 72h` can only lengthen one;
 * - 12 h is `PEXPIRE key 12h GT` (lengthens an existing key only) then `SET key 1 PX 12h NX` (creates a
 *   missing one). In this order no interleaving loses the entry: a key that expires in between is created
 *   by the `SET NX`, and a 72 h set in between makes the `SET NX` a no-op.
 *
 * Nothing is remembered in the process: other processes may cache a reference at any time, and Redis
 * answers a pipelined lookup faster than a local cache would pay for itself.
 *
 * @module
 */

import type { CachedReferences } from "../../cache/cached_references.ts";
import { LONG_LIFETIME_MS, SHORT_LIFETIME_MS } from "../../cache/reference_cache.ts";
import type { RedisBatcher } from "./redis_batcher.ts";
import type { RedisCommit } from "./redis_commit.ts";

/** The prefix of every reference key. */
export const REFERENCE_KEY_PREFIX = "rtcv:ref:";

/** The Redis key of a reference number. */
export function referenceKey(reference: string): string {
  return REFERENCE_KEY_PREFIX + reference;
}

/** The reference cache on Redis; see the module documentation. */
export class RedisReferenceCache implements CachedReferences {
  readonly #batcher: RedisBatcher;
  readonly #onLookup: (hit: boolean) => void;

  /** Sends through the store's batcher; `onLookup` counts hits and misses (metrics). */
  constructor(batcher: RedisBatcher, onLookup: (hit: boolean) => void = () => {}) {
    this.#batcher = batcher;
    this.#onLookup = onLookup;
  }

  /** Caches `reference` for 72 hours; resolves once Redis acknowledged it. */
  async setLong(reference: string): Promise<void> {
    await this.#batcher.run(1, (p) => p.set(referenceKey(reference), "1", "PX", LONG_LIFETIME_MS));
  }

  /**
   * Caches `reference` for 72 hours in the commit `commit` makes: it is given a {@link RedisCommit} (the
   * outbox's put script sets the key with the entries, in one atomic step) and resolves once Redis applied it.
   */
  setLongWith(reference: string, commit: (write: unknown) => Promise<void>): Promise<void> {
    const write: RedisCommit = { setPx: [[referenceKey(reference), "1", LONG_LIFETIME_MS]] };
    return commit(write);
  }

  /** Caches `reference` for 12 hours unless it is cached for longer; resolves once acknowledged. */
  async setShort(reference: string): Promise<void> {
    const key = referenceKey(reference);
    await this.#batcher.run(2, (p) => {
      p.pexpire(key, SHORT_LIFETIME_MS, "GT");
      p.set(key, "1", "PX", SHORT_LIFETIME_MS, "NX");
    });
  }

  /** True when Redis has the reference (an expired key is never answered). */
  async has(reference: string): Promise<boolean> {
    const [count] = await this.#batcher.run(1, (p) => p.exists(referenceKey(reference)));
    const hit = count === 1;
    this.#onLookup(hit);
    return hit;
  }

  /** {@link has}, answering `ifCached` or `ifNot`. */
  lookUp<T>(reference: string, ifCached: T, ifNot: T): Promise<T> {
    return this.has(reference).then((hit) => hit ? ifCached : ifNot);
  }

  /** Caches many references for 72 hours, in pipelines. */
  async setManyLong(references: Iterable<string>): Promise<number> {
    const writes: Promise<void>[] = [];
    for (const reference of references) writes.push(this.setLong(reference));
    await Promise.all(writes);
    return writes.length;
  }

  /** Resolves once every command sent so far is answered. */
  drained(): Promise<void> {
    return this.#batcher.drained();
  }

  /** Always 0: this cache keeps nothing in the process. */
  get rememberedCount(): number {
    return 0;
  }
}
