/** `getMany` takes at most this many keys. */
export const MAX_KEYS_PER_READ = 10;

/**
 * `kv.getMany` for any number of keys: ten at a time, all in flight together, answers in key order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getManyChunked } from "./kv_reads.ts";
 * const kv = await Deno.openKv(":memory:");
 * await kv.set(["a", 3], "x");
 * const keys = Array.from({ length: 25 }, (_, i) => ["a", i]);
 * const entries = await getManyChunked(kv, keys);
 * assert.ok(entries.length === 25 && entries[3].value === "x");
 * kv.close();
 * ```
 */
export async function getManyChunked<T = unknown>(
  kv: Deno.Kv,
  keys: readonly Deno.KvKey[],
): Promise<Deno.KvEntryMaybe<T>[]> {
  const groups: Promise<Deno.KvEntryMaybe<T>[]>[] = [];
  for (let start = 0; start < keys.length; start += MAX_KEYS_PER_READ) {
    groups.push(kv.getMany<T[]>(keys.slice(start, start + MAX_KEYS_PER_READ)));
  }
  return (await Promise.all(groups)).flat();
}
