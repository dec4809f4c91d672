/**
 * Batched reads of "seen until" expiries, answered by range scans where keys cluster.
 *
 * An entry may have a companion row `[...key, companion]` (the reference cache keeps the 12-hour lifetime
 * there, so that writing it never needs a check of the main row): an entry's expiry is the later of the two.
 * The companion sorts right after its main row, so a range scan sees both for the price of one.
 *
 * Each point read costs about 20 µs of the store's single SQLite thread, so 25,000 lookups of new
 * reference numbers take half a second there. Lookups issued together are sorted; each run of up to
 * {@link RANGE_GROUP} neighbouring keys is first asked for with one range scan (`kv.list` from the first key
 * to the last, limited to a few rows more than the run): when fewer rows than the limit come back, the scan
 * has answered every key of the run, stored or not, for the price of about one point read. Numbers from one
 * site are often sequential, so new ones fall in gaps of the store. When the store is dense between the
 * keys (random keys in a large store), the limit is hit: the run falls back to `getMany`, and after a few
 * such misses the scans pause, so that case costs almost nothing extra.
 *
 * @module
 */
import { expiryOf } from "./expiry_keys.ts";
import { getManyChunked, MAX_KEYS_PER_READ } from "./kv_reads.ts";

/** Keys asked for by one range scan. */
export const RANGE_GROUP = 10;
/** Rows a range scan may return beyond its keys before it counts as a miss. */
const RANGE_SLACK = 6;
/** After this many misses in a row, range scans pause for {@link PAUSE_GROUPS} runs. */
const MISSES_BEFORE_PAUSE = 3;
const PAUSE_GROUPS = 64;

interface PendingRead {
  readonly key: Deno.KvKey;
  readonly resolve: (expiresAt: number) => void;
  readonly reject: (error: unknown) => void;
  /** A main row expiring later than this answers the read without its companion (see `request`). */
  readonly enough: number;
}

/**
 * Reads the expiry stored under keys of the form `[...prefix, name]` (0 when nothing is stored); reads
 * issued in the same turn of the event loop are answered together. Keys of another shape are read with
 * `getMany`. With a `companion` key part, the expiry of `key` is the later of `key`'s and
 * `[...key, companion]`'s.
 */
export class ExpiryReader {
  readonly #kv: Deno.Kv;
  readonly #prefix: Deno.KvKey;
  readonly #companion: Deno.KvKeyPart | null;
  /** Rows one entry may have: 1, or 2 with a companion. */
  readonly #rowsPerEntry: number;
  #pending: PendingRead[] = [];
  #scheduled = false;
  #missesInARow = 0;
  #pausedGroups = 0;

  /**
   * Reads from `kv`; range scans are used for keys `[...prefix, <ASCII string>]`. `companion`, when given,
   * names the second row of each entry (see the module documentation).
   */
  constructor(kv: Deno.Kv, prefix: Deno.KvKey, companion: Deno.KvKeyPart | null = null) {
    this.#kv = kv;
    this.#prefix = prefix;
    this.#companion = companion;
    this.#rowsPerEntry = companion === null ? 1 : 2;
  }

  /** The stored expiry of `key` (ms since the epoch), or 0. */
  read(key: Deno.KvKey): Promise<number> {
    return new Promise((resolve, reject) => this.request(key, resolve, reject));
  }

  /**
   * Like {@link read}, with callbacks instead of a promise: `resolve` gets the stored expiry of `key` (ms
   * since the epoch, or 0), `reject` the error of a failed read. For a caller that makes its own promise.
   * A caller that only asks whether the entry lasts beyond a time passes it as `enough`: where many rows
   * are read one by one (a dense store), a companion row is then read only when the main row does not
   * expire later than that, and the main row's expiry is the answer otherwise. A few reads get both rows
   * in one round trip.
   */
  request(
    key: Deno.KvKey,
    resolve: (expiresAt: number) => void,
    reject: (error: unknown) => void,
    enough = Infinity,
  ): void {
    this.#pending.push({ key, resolve, reject, enough });
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#onScheduled);
  }

  readonly #onScheduled = () => this.#issue();

  #issue(): void {
    this.#scheduled = false;
    const reads = this.#pending;
    this.#pending = [];
    const ranged = new Map<string, PendingRead[]>();
    const pointReads: PendingRead[] = [];
    for (const read of reads) {
      const name = this.#rangeName(read.key);
      if (name === null) {
        pointReads.push(read);
      } else {
        const same = ranged.get(name);
        if (same) same.push(read);
        else ranged.set(name, [read]);
      }
    }
    const names = [...ranged.keys()];
    if (names.length < 2) {
      for (const name of names) pointReads.push(...ranged.get(name)!);
    } else {
      names.sort(); // ASCII only: the same order as Deno.Kv's byte order
      for (let start = 0; start < names.length; start += RANGE_GROUP) {
        const group = names.slice(start, start + RANGE_GROUP);
        const readsOf = group.map((name) => ranged.get(name)!);
        if (this.#pausedGroups > 0 || group.length < 2) {
          if (this.#pausedGroups > 0) this.#pausedGroups--;
          for (const same of readsOf) pointReads.push(...same);
          continue;
        }
        this.#scan(group, readsOf).catch((error) => {
          for (const same of readsOf) for (const read of same) read.reject(error);
        });
      }
    }
    this.#readPoints(pointReads);
  }

  /** The name of a key this reader may scan for, or null. */
  #rangeName(key: Deno.KvKey): string | null {
    if (key.length !== this.#prefix.length + 1) return null;
    for (let index = 0; index < this.#prefix.length; index++) {
      if (key[index] !== this.#prefix[index]) return null;
    }
    const name = key[this.#prefix.length];
    // deno-lint-ignore no-control-regex
    return typeof name === "string" && /^[\x01-\x7f]*$/.test(name) ? name : null;
  }

  /** One range scan for a sorted run of names; falls back to point reads when the store is dense there. */
  async #scan(names: string[], readsOf: PendingRead[][]): Promise<void> {
    const limit = names.length * this.#rowsPerEntry + RANGE_SLACK;
    const found = new Map<string, number>();
    // The end is just after the last name's rows: `[...prefix, last, companion]` sorts before it.
    const rows = this.#kv.list(
      { start: [...this.#prefix, names[0]], end: [...this.#prefix, names[names.length - 1] + "\u0000"] },
      { limit, batchSize: limit },
    );
    const depth = this.#prefix.length;
    let count = 0;
    for await (const row of rows) {
      count++;
      const key = row.key;
      if (key.length !== depth + 1 && !(key.length === depth + 2 && key[depth + 1] === this.#companion)) {
        continue; // some other row under the prefix: it only counts against the limit
      }
      const name = String(key[depth]);
      const expiry = expiryOf(row.value);
      if (expiry > (found.get(name) ?? 0)) found.set(name, expiry);
    }
    if (count >= limit) {
      if (++this.#missesInARow >= MISSES_BEFORE_PAUSE) {
        this.#missesInARow = 0;
        this.#pausedGroups = PAUSE_GROUPS;
      }
      this.#readPoints(readsOf.flat());
      return;
    }
    this.#missesInARow = 0;
    names.forEach((name, index) => {
      for (const read of readsOf[index]) read.resolve(found.get(name) ?? 0);
    });
  }

  #readPoints(reads: PendingRead[]): void {
    if (reads.length === 0) return;
    const fail = (error: unknown) => {
      for (const read of reads) read.reject(error);
    };
    const companion = this.#companion;
    if (companion !== null && reads.length * 2 <= MAX_KEYS_PER_READ) {
      // A few lookups (a lone one, as before a send_cv): both rows in one read, one round trip.
      this.#kv.getMany(reads.flatMap((read) => [read.key, [...read.key, companion]])).then(
        (entries) =>
          reads.forEach((read, index) =>
            read.resolve(Math.max(expiryOf(entries[2 * index].value), expiryOf(entries[2 * index + 1].value)))
          ),
        fail,
      );
      return;
    }
    getManyChunked(this.#kv, reads.map((read) => read.key)).then((entries) => {
      if (companion === null) {
        entries.forEach((entry, index) => reads[index].resolve(expiryOf(entry.value)));
        return;
      }
      const expired: PendingRead[] = [];
      const mains: number[] = [];
      entries.forEach((entry, index) => {
        const expiry = expiryOf(entry.value);
        if (expiry > reads[index].enough) reads[index].resolve(expiry);
        else {
          expired.push(reads[index]);
          mains.push(expiry);
        }
      });
      if (expired.length === 0) return;
      getManyChunked(this.#kv, expired.map((read) => [...read.key, companion])).then(
        (companions) =>
          companions.forEach((entry, index) =>
            expired[index].resolve(Math.max(mains[index], expiryOf(entry.value)))
          ),
        (error) => {
          for (const read of expired) read.reject(error);
        },
      );
    }, fail);
  }
}
