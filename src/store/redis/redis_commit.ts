/**
 * Writes of the Redis store that go into the same Lua script as an outbox put (the `alsoCommit` of
 * `OutboxStore.put`), so Redis applies them in one atomic step with the entries: e.g. a matched CV's cache
 * entry with the mirrors' copies.
 *
 * @module
 */

/** Keys to set with an expiry in the outbox put's script. */
export interface RedisCommit {
  /** `SET <key> <value> PX <ms>` for each, after the entries are written. */
  readonly setPx: readonly (readonly [key: string, value: string, ms: number])[];
}

/**
 * True for a {@link RedisCommit}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isRedisCommit } from "./redis_commit.ts";
 * assert.equal(isRedisCommit({ setPx: [["rtcv:ref:r1", "1", 1000]] }), true);
 * assert.equal(isRedisCommit([{ type: "set", key: ["a"], value: 1 }]), false);
 * ```
 */
export function isRedisCommit(value: unknown): value is RedisCommit {
  return typeof value === "object" && value !== null && Array.isArray((value as RedisCommit).setPx);
}
