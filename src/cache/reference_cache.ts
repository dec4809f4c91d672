import type { Clock } from "../clock.ts";
import { CommitBatcher } from "./commit_batcher.ts";
import { expiryValue, keyFor, rememberBounded } from "./expiry_keys.ts";
import { ExpiryReader } from "./expiry_reader.ts";

/** How long a reference number is cached by `set_cached_reference` and after a matched CV: 72 hours. */
export const LONG_LIFETIME_MS = 72 * 60 * 60 * 1000;
/** How long a reference number is cached by `set_short_cached_reference`: 12 hours. */
export const SHORT_LIFETIME_MS = 12 * 60 * 60 * 1000;

/** How many reference numbers this process remembers as cached, to answer without reading the store. */
const MAX_REMEMBERED = 250_000;

/** Optional parts of a {@link ReferenceCache}. */
export interface ReferenceCacheOptions {
  /** The store's shared group-commit writer. */
  readonly batcher?: CommitBatcher;
  /** Told whether each lookup was a hit (metrics). */
  readonly onLookup?: (hit: boolean) => void;
}

interface Remembered {
  expiresAt: number;
  /** Settles when the write that set `expiresAt` is committed; null once it is. */
  commit: Promise<void> | null;
}

/**
 * The cache of reference numbers already scraped or sent, on Deno.Kv.
 *
 * Each entry is `["ref", <reference number>] → Deno.KvU64(expiry time in ms)`, written with `expireIn` so the
 * store sweeps it later; a 12-hour lifetime is kept in a row of its own, `["ref", <reference number>, "short"]`,
 * and the later of the two rows counts. Lifetimes are checked on read against the injected clock, because Deno.Kv keeps
 * expired keys readable until a sweep. A set never shortens a lifetime. Writes are group-committed and
 * resolve only once durable. Entries this process wrote or read as cached are remembered, so asking again
 * costs no store read; "not cached" is never remembered, since other processes may share the store.
 */
export class ReferenceCache {
  readonly #clock: Clock;
  readonly #batcher: CommitBatcher;
  readonly #remembered = new Map<string, Remembered>();
  readonly #reader: ExpiryReader;

  readonly #onLookup: (hit: boolean) => void;

  /**
   * Creates a cache over an open store; `clock` decides what has expired. `batcher` is the store's shared
   * writer (a new one by default); `onLookup` counts hits and misses.
   */
  constructor(kv: Deno.Kv, clock: Clock, options: ReferenceCacheOptions = {}) {
    this.#clock = clock;
    this.#batcher = options.batcher ?? new CommitBatcher(kv);
    this.#onLookup = options.onLookup ?? (() => {});
    this.#reader = new ExpiryReader(kv, ["ref"], SHORT_ROW);
  }

  /** Caches `reference` for 72 hours; resolves once the entry is committed. */
  setLong(reference: string): Promise<void> {
    // 72 h is the longest lifetime, so a blind write can never shorten an entry.
    const expiresAt = this.#clock.now() + LONG_LIFETIME_MS;
    const key = storeKey(reference);
    const write = (key: Deno.KvKey) =>
      this.#batcher.write([{ type: "set", key, value: expiryValue(expiresAt), expireIn: LONG_LIFETIME_MS }]);
    return this.#track(reference, expiresAt, key instanceof Promise ? key.then(write) : write(key));
  }

  /** Caches many references for 72 hours in batched commits (the warm-up from RT-CV). */
  async setManyLong(references: Iterable<string>): Promise<number> {
    const writes: Promise<void>[] = [];
    for (const reference of references) writes.push(this.setLong(reference));
    await Promise.all(writes);
    return writes.length;
  }

  /**
   * Caches `reference` for 12 hours, unless it is already cached for longer. The 12-hour lifetime has a row
   * of its own beside the entry's main row (the later of the two counts), so it is written blindly through
   * the group commit: no read and no check, and it can never shorten a 72-hour lifetime. An entry this
   * process knows to last longer costs nothing.
   */
  setShort(reference: string): Promise<void> {
    const expiresAt = this.#clock.now() + SHORT_LIFETIME_MS;
    const remembered = this.#remembered.get(reference);
    if (remembered && remembered.expiresAt >= expiresAt) return remembered.commit ?? Promise.resolve();
    const write = (key: Deno.KvKey) =>
      this.#batcher.write([{
        type: "set",
        key: [...key, SHORT_ROW],
        value: expiryValue(expiresAt),
        expireIn: SHORT_LIFETIME_MS,
      }]);
    const key = storeKey(reference);
    return this.#track(reference, expiresAt, key instanceof Promise ? key.then(write) : write(key));
  }

  /**
   * Remembers a write in flight at once, so a lookup issued after it waits for its commit instead of
   * reading the store before the write lands.
   */
  #track(reference: string, expiresAt: number, commit: Promise<void>): Promise<void> {
    const entry: Remembered = { expiresAt, commit };
    this.#remember(reference, entry);
    return commit.then(
      () => {
        if (entry.commit === commit) entry.commit = null;
      },
      (error: unknown) => {
        if (this.#remembered.get(reference) === entry) this.#remembered.delete(reference);
        throw error;
      },
    );
  }

  /**
   * True when `reference` is cached and its lifetime has not run out by the clock. Not an async function:
   * a remembered entry costs no promise of its own, and a store read is queued at once (before any later
   * write).
   */
  has(reference: string): Promise<boolean> {
    const now = this.#clock.now();
    const remembered = this.#remembered.get(reference);
    if (remembered && remembered.expiresAt > now) {
      if (remembered.commit === null) {
        this.#onLookup(true);
        return RESOLVED_TRUE;
      }
      // Its write is being committed: wait for it; if it fails, ask the store.
      return remembered.commit.then(() => {
        this.#onLookup(true);
        return true;
      }, () => this.#readStore(reference, now));
    }
    return this.#readStore(reference, now);
  }

  #readStore(reference: string, now: number): Promise<boolean> {
    const key = storeKey(reference);
    const read = key instanceof Promise ? key.then((digested) => this.#read(digested)) : this.#read(key);
    return read.then((expiresAt) => {
      const hit = expiresAt > now;
      if (hit) this.#remember(reference, { expiresAt, commit: null });
      this.#onLookup(hit);
      return hit;
    });
  }

  /** Resolves once every write so far is committed. */
  drained(): Promise<void> {
    return this.#batcher.drained();
  }

  /** How many references this process currently remembers (for metrics). */
  get rememberedCount(): number {
    return this.#remembered.size;
  }

  #remember(reference: string, entry: Remembered): void {
    const existing = this.#remembered.get(reference);
    if (existing === undefined && this.#remembered.size < MAX_REMEMBERED) {
      this.#remembered.set(reference, entry); // the common case: one map operation
      return;
    }
    if (existing && existing.expiresAt > entry.expiresAt && existing.commit === null) return;
    rememberBounded(this.#remembered, reference, entry, MAX_REMEMBERED);
  }

  /** Reads one key's expiry; reads issued in the same turn are answered together. */
  #read(key: Deno.KvKey): Promise<number> {
    return this.#reader.read(key);
  }
}

const RESOLVED_TRUE: Promise<boolean> = Promise.resolve(true);

/**
 * The last key part of the row that holds an entry's 12-hour lifetime (see {@link ReferenceCache}): since a
 * short set never writes the main row, a blind write cannot shorten a 72-hour lifetime.
 */
const SHORT_ROW = "short";

/** The store key of a reference; long ones are digested, which is asynchronous. */
function storeKey(reference: string): Deno.KvKey | Promise<Deno.KvKey> {
  return keyFor(["ref"], ["ref_sha256"], reference);
}
