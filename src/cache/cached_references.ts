/**
 * What the session and the commands need from a reference cache, whatever store it lives in: the
 * embedded Deno.Kv {@link import("./reference_cache.ts").ReferenceCache} or the Redis one of a fleet
 * (`src/store/redis/redis_reference_cache.ts`).
 *
 * @module
 */

/** A cache of reference numbers already scraped or sent, with the 72 h and 12 h lifetimes. */
export interface CachedReferences {
  /** Caches `reference` for 72 hours; resolves once the store has the entry. */
  setLong(reference: string): Promise<void>;
  /**
   * {@link setLong} in a commit someone else makes: `commit` gets this cache's write in the store's own kind
   * (the `alsoCommit` of `OutboxStore.put`: e.g. a matched CV's entry lands with the mirrors' copies, in one
   * commit) and resolves once it is durable; so does the answer. Lookups meanwhile wait for that commit.
   */
  setLongWith(reference: string, commit: (write: unknown) => Promise<void>): Promise<void>;
  /** Caches `reference` for 12 hours, unless it is already cached for longer; resolves once stored. */
  setShort(reference: string): Promise<void>;
  /** True when `reference` is cached and its lifetime has not run out (at once when known in the process). */
  has(reference: string): boolean | Promise<boolean>;
  /**
   * {@link has}, answering `ifCached` or `ifNot` (e.g. a command's two answers), so that a lookup costs
   * no promise of the caller's own.
   */
  lookUp<T>(reference: string, ifCached: T, ifNot: T): T | Promise<T>;
  /** Caches many references for 72 hours (the warm-up from RT-CV); resolves with how many, once stored. */
  setManyLong(references: Iterable<string>): Promise<number>;
  /** Resolves once every write issued so far is in the store. */
  drained(): Promise<void>;
  /** How many references this process remembers locally (for metrics; 0 for a store it always asks). */
  readonly rememberedCount: number;
}
