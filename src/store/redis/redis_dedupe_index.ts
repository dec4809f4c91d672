/**
 * The 72-hour index of stored job-data ids of a fleet, on Redis. Check and mark are one atomic step,
 * `SET key <claim> PX <ms> NX`: of two processes storing one id at the same moment exactly one gets the
 * key and queues the item; the other skips it.
 *
 * A claim is first taken for {@link PENDING_CLAIM_MS} only, and made 72 h long once the line's items are
 * committed to the outbox. So a process that dies between the claim and the commit (its scraper got no
 * `ok` and sends the line again) blocks the id for at most that long instead of 72 h, and a claim whose
 * commit failed is deleted at once. Of the two faults this prefers a second copy to a lost item.
 *
 * @module
 */

import type { DedupeDecision } from "../../ingest/dedupe_index.ts";
import { DEDUPE_LIFETIME_MS } from "../../ingest/dedupe_index.ts";
import type { StreamId } from "../../ingest/streams.ts";
import type { RedisBatcher } from "./redis_batcher.ts";

/** The prefix of every dedupe key. */
export const DEDUPE_KEY_PREFIX = "rtcv:seen:";
/** How long an id is claimed before the line that claimed it committed its items. */
export const PENDING_CLAIM_MS = 60_000;

/** Deletes a claim only if it is still this line's (its token), so a later claim is never removed. */
const RELEASE_SCRIPT =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
/** Makes a claim 72 h long only if it is still this line's. */
const CONFIRM_SCRIPT =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], '1', 'PX', ARGV[2]) end return 0";

/** The Redis key of an id in a stream, for one id field. */
export function dedupeKey(stream: StreamId, field: string, id: string): string {
  return DEDUPE_KEY_PREFIX + JSON.stringify([stream.dataType, stream.platform, field, id]);
}

let claims = 0;
/** A token no other claim has: this process's random part and a counter. */
const PROCESS_TOKEN = crypto.randomUUID();

/** The dedupe index on Redis; the same `decide` contract as the Deno.Kv one. */
export class RedisDedupeIndex {
  readonly #batcher: RedisBatcher;
  /** Ids an earlier line of this process is still deciding about: later lines wait for it. */
  readonly #deciding = new Map<string, Promise<void>>();

  /** Sends through the store's batcher. */
  constructor(batcher: RedisBatcher) {
    this.#batcher = batcher;
  }

  /**
   * Decides which of `ids` (null: no id) are new in `stream` for `field`, claiming the new ones in Redis.
   * The decision's `marks` are empty (the claims are already in Redis); `settle(true)` makes them 72 h
   * long, `settle(false)` deletes them. Call in line order.
   */
  async decide(stream: StreamId, field: string, ids: readonly (string | null)[]): Promise<DedupeDecision> {
    const accepted = ids.map(() => true); // an item without an id is always queued
    const inLine = new Set<string>();
    const mine: { key: string; index: number }[] = [];
    ids.forEach((id, index) => {
      if (id === null) return;
      const key = dedupeKey(stream, field, id);
      if (inLine.has(key)) {
        accepted[index] = false;
        return;
      }
      inLine.add(key);
      mine.push({ key, index });
    });
    // Claim synchronously in line order: later lines of this process wait for this one's outcome.
    let done = () => {};
    const deciding = new Promise<void>((resolve) => done = resolve);
    const earlier = mine.map(({ key }) => this.#deciding.get(key)).filter((wait) => wait !== undefined);
    for (const { key } of mine) this.#deciding.set(key, deciding);
    const token = `${PROCESS_TOKEN}:${++claims}`;
    const taken: string[] = [];
    const finish = () => {
      for (const { key } of mine) if (this.#deciding.get(key) === deciding) this.#deciding.delete(key);
      done();
    };
    try {
      if (earlier.length > 0) await Promise.all(earlier);
      const replies = mine.length === 0 ? [] : await this.#batcher.run(mine.length, (p) => {
        for (const { key } of mine) p.set(key, token, "PX", PENDING_CLAIM_MS, "NX");
      });
      mine.forEach(({ key, index }, i) => {
        if (replies[i] === "OK") taken.push(key);
        else accepted[index] = false;
      });
    } catch (error) {
      finish();
      throw error;
    }
    if (taken.length === 0) {
      finish();
      return { accepted, marks: [], settle: () => {} }; // nothing to confirm or release
    }
    const settle = (committed: boolean) => {
      const script = committed ? CONFIRM_SCRIPT : RELEASE_SCRIPT;
      const extra = committed ? [String(DEDUPE_LIFETIME_MS)] : [];
      // A failed confirm leaves the short claim: the id may be queued once more after it lapses.
      const sent = this.#batcher.run(taken.length, (p) => {
        for (const key of taken) p.eval(script, 1, key, token, ...extra);
      }).catch(() => {});
      // Later lines of this process wait until the claim is settled in Redis.
      sent.finally(finish);
    };
    return { accepted, marks: [], settle };
  }
}
