import type { CachedReferences } from "./cached_references.ts";
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

/** One commit that remembered entries wait for, shared by every entry it holds (one reaction, not one each). */
interface Commit {
  readonly promise: Promise<void>;
  state: "pending" | "done" | "failed";
}

interface Remembered {
  /**
   * The expiry, in ms after the cache's epoch: a small integer (for about 12 days), which V8 keeps in the
   * object instead of boxing a number per entry.
   */
  expiresAt: number;
  /** The commit of the write that set `expiresAt`; null for an entry read from the store. */
  commit: Commit | null;
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
export class ReferenceCache implements CachedReferences {
  readonly #clock: Clock;
  readonly #batcher: CommitBatcher;
  readonly #remembered = new Map<string, Remembered>();
  readonly #reader: ExpiryReader;
  /** The commit the last write joined: pipelined writes mostly join the same one. */
  #lastCommit: Commit | null = null;
  /** Clock time when the cache was created: remembered expiries are counted from it. */
  readonly #epoch: number;
  /** Holds the one mutation of a cache write: the batcher does not keep the array it is given. */
  readonly #oneMutation: Deno.KvMutation[] = [];

  readonly #onLookup: (hit: boolean) => void;

  /**
   * Creates a cache over an open store; `clock` decides what has expired. `batcher` is the store's shared
   * writer (a new one by default); `onLookup` counts hits and misses.
   */
  constructor(kv: Deno.Kv, clock: Clock, options: ReferenceCacheOptions = {}) {
    this.#clock = clock;
    this.#epoch = clock.now();
    this.#batcher = options.batcher ?? new CommitBatcher(kv);
    this.#onLookup = options.onLookup ?? (() => {});
    this.#reader = new ExpiryReader(kv, ["ref"], SHORT_ROW);
  }

  /** Caches `reference` for 72 hours; resolves once the entry is committed. */
  setLong(reference: string): Promise<void> {
    return this.setLongWith(reference, this.#commitPlain);
  }

  /** Writes through the group commit. */
  readonly #commitPlain = (mutations: unknown) => this.#batcher.write(mutations as Deno.KvMutation[]);

  /**
   * Caches `reference` for 72 hours in the commit `commit` makes: it is given the entry's mutations (an
   * array of `Deno.KvMutation`) and resolves once they are committed.
   */
  setLongWith(reference: string, commit: (mutations: unknown) => Promise<void>): Promise<void> {
    // 72 h is the longest lifetime, so a blind write can never shorten an entry.
    const expiresAt = this.#clock.now() + LONG_LIFETIME_MS;
    const key = storeKey(reference);
    const write = (digested: Deno.KvKey) =>
      commit([{ type: "set", key: digested, value: expiryValue(expiresAt), expireIn: LONG_LIFETIME_MS }]);
    const committed = key instanceof Promise ? key.then(write) : write(key);
    return this.#track(reference, expiresAt - this.#epoch, committed);
  }

  #writeShort(key: Deno.KvKey, expiresAt: number): Promise<void> {
    return this.#writeOne({
      type: "set",
      key: key.length === 2 ? [key[0], key[1], SHORT_ROW] : [...key, SHORT_ROW],
      value: expiryValue(expiresAt),
      expireIn: SHORT_LIFETIME_MS,
    });
  }

  #writeOne(mutation: Deno.KvMutation): Promise<void> {
    this.#oneMutation[0] = mutation;
    const commit = this.#batcher.write(this.#oneMutation);
    this.#oneMutation.length = 0;
    return commit;
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
    const remembered = this.#live(reference);
    if (remembered && remembered.expiresAt >= expiresAt - this.#epoch) {
      const commit = remembered.commit;
      return commit === null || commit.state === "done" ? RESOLVED : commit.promise;
    }
    const key = storeKey(reference);
    const commit = key instanceof Promise
      ? key.then((digested) => this.#writeShort(digested, expiresAt))
      : this.#writeShort(key, expiresAt);
    return this.#track(reference, expiresAt - this.#epoch, commit);
  }

  /**
   * Remembers a write in flight at once, so a lookup issued after it waits for its commit instead of
   * reading the store before the write lands. Writes that share a commit share its state.
   */
  #track(reference: string, expiresAt: number, promise: Promise<void>): Promise<void> {
    // `expiresAt` counts from the epoch (see Remembered).
    let commit = this.#lastCommit;
    if (commit === null || commit.promise !== promise) {
      const created: Commit = { promise, state: "pending" };
      promise.then(() => {
        created.state = "done";
      }, () => {
        created.state = "failed";
      });
      this.#lastCommit = commit = created;
    }
    // Nothing remembered lasts longer (a long set is the longest; setShort returned early), so it replaces any.
    const entry: Remembered = { expiresAt, commit };
    if (this.#remembered.size < MAX_REMEMBERED) this.#remembered.set(reference, entry); // one map operation
    else rememberBounded(this.#remembered, reference, entry, MAX_REMEMBERED);
    return promise;
  }

  /** The remembered entry of `reference`, unless the write that made it failed (it is then forgotten). */
  #live(reference: string): Remembered | undefined {
    const remembered = this.#remembered.get(reference);
    if (remembered !== undefined && remembered.commit !== null && remembered.commit.state === "failed") {
      this.#remembered.delete(reference);
      return undefined;
    }
    return remembered;
  }

  /**
   * True when `reference` is cached and its lifetime has not run out by the clock. A remembered, committed
   * entry is answered at once (no promise); a store read is queued at once (before any later write).
   */
  has(reference: string): boolean | Promise<boolean> {
    return this.lookUp(reference, true, false);
  }

  /**
   * {@link has}, answering `ifCached` or `ifNot` (any two values, e.g. the answers of a command), so a
   * lookup that reads the store costs one promise.
   */
  lookUp<T>(reference: string, ifCached: T, ifNot: T): T | Promise<T> {
    const now = this.#clock.now();
    const remembered = this.#live(reference);
    if (remembered && remembered.expiresAt > now - this.#epoch) {
      const commit = remembered.commit;
      if (commit === null || commit.state === "done") {
        this.#onLookup(true);
        return ifCached;
      }
      // Its write is being committed: wait for it; if it fails, ask the store.
      return commit.promise.then(() => {
        this.#onLookup(true);
        return ifCached;
      }, () => this.#readStore(reference, now, ifCached, ifNot));
    }
    return this.#readStore(reference, now, ifCached, ifNot);
  }

  #readStore<T>(reference: string, now: number, ifCached: T, ifNot: T): Promise<T> {
    const key = storeKey(reference);
    return new Promise((resolve, reject) => {
      const found = (expiresAt: number) => {
        const hit = expiresAt > now;
        if (hit) this.#remember(reference, { expiresAt: expiresAt - this.#epoch, commit: null });
        this.#onLookup(hit);
        resolve(hit ? ifCached : ifNot);
      };
      if (key instanceof Promise) {
        key.then((digested) => this.#reader.request(digested, found, reject, now), reject);
      } else this.#reader.request(key, found, reject, now);
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

  /** Remembers an entry read from the store, unless a longer committed one is remembered. */
  #remember(reference: string, entry: Remembered): void {
    const existing = this.#remembered.get(reference);
    if (existing === undefined && this.#remembered.size < MAX_REMEMBERED) {
      this.#remembered.set(reference, entry);
      return;
    }
    if (
      existing && existing.expiresAt > entry.expiresAt &&
      (existing.commit === null || existing.commit.state === "done")
    ) return;
    rememberBounded(this.#remembered, reference, entry, MAX_REMEMBERED);
  }
}

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * The last key part of the row that holds an entry's 12-hour lifetime (see {@link ReferenceCache}): since a
 * short set never writes the main row, a blind write cannot shorten a 72-hour lifetime.
 */
const SHORT_ROW = "short";

/** The store key of a reference; long ones are digested, which is asynchronous. */
function storeKey(reference: string): Deno.KvKey | Promise<Deno.KvKey> {
  return keyFor(["ref"], ["ref_sha256"], reference);
}
