/**
 * The dedupe marks of one (stream, id field) in a Deno.Kv store, and this process's copy of them in memory.
 *
 * Layout, under `P = ["ingest","marks",dataType,platform,field]`:
 *
 * | key | value |
 * |---|---|
 * | `[...P,"c",writer,seq]` | a chunk: the marks of one line, 16 bytes each (digest lo, hi: u32; expiry ms: f64; little-endian) |
 * | `[...P,"w",writer]` | `Deno.KvU64(floor)`: set with every chunk of that writer, so its versionstamp says it wrote; every chunk below `floor` has landed (or failed) |
 * | `[...P,"n"]`, `[...P,"n",writer]` | `Deno.KvU64` counts of chunk commits, of all writers and of one (a
 * writer's count is removed at a load once its row has expired) |
 * | `[...P,"legacy_moved"]` | set once the marks of earlier versions are moved in (see below) |
 *
 * A writer is one process's index (a random id). One row per line instead of one per id: writing 100,000
 * marks costs about a thousand small rows, and reading them back at start one list.
 *
 * The memory copy answers every lookup; the store is read once per turn of the event loop: one `getMany`
 * of the two counters. When the count of the other writers' commits (all minus this writer's, one snapshot)
 * has not changed, nothing else was written; otherwise the writer rows show which writers wrote, and their
 * new chunks are read from the last sequence number seen. Chunks of one writer may land out of order (a few
 * commits in flight): a missing sequence number is read again when its writer writes, until it is found
 * or falls below the writer's floor. So a mark another process committed before a line's lookup began is
 * seen by it. A writer joins its own chunks of few marks into one now and then (lines of one item each
 * would otherwise leave one row per id).
 *
 * Earlier versions stored one row per id: `["ingest","seen",...,id]` (or `"seen_sha256"` and the SHA-256 of
 * a long id) → `Deno.KvU64(expiry)`. At the first use of a scope they are read and written as chunks; the old
 * rows expire on their own.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import { expiryOf } from "../cache/expiry_keys.ts";
import { getManyChunked } from "../cache/kv_reads.ts";
import { DigestTable } from "./digest_table.ts";
import { digestOfHex, idDigestInto } from "./id_digest.ts";
import type { StreamId } from "./streams.ts";

/** Marks a chunk holds at most (a Deno.Kv value takes 64 KiB). */
export const MAX_CHUNK_MARKS = 4000;
const MARK_BYTES = 16;
/** Missing sequence numbers kept per writer. */
const MAX_GAPS = 256;
const ONE = new Deno.KvU64(1n);

/** Chunks of fewer marks than this are joined. */
const JOIN_BELOW = 50;
/** How many small chunks are joined at a time (one atomic operation deletes them all). */
const JOIN_CHUNKS = 200;

interface SmallChunks {
  readonly seqs: number[];
  readonly digests: number[];
  readonly expiries: number[];
}

interface WriterSeen {
  /** The versionstamp of its writer row when its chunks were last read; null before. */
  stamp: string | null;
  /** The highest sequence number read. */
  maxSeq: number;
  /** Sequence numbers below {@link maxSeq} not found yet (commits in flight). */
  readonly gaps: Set<number>;
}

/** The store prefix of a scope's marks. */
export function marksPrefix(stream: StreamId, field: string): Deno.KvKey {
  return ["ingest", "marks", stream.dataType, stream.platform, field];
}

/**
 * Marks as a chunk value: `digests` holds lo, hi of each; `expiries` is each one's expiry, or one for all.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk, forEachMark } from "./dedupe_marks.ts";
 * const seen: number[][] = [];
 * forEachMark(encodeChunk([1, 4294967295, 7, 8], 1767225600123), (lo, hi, at) => seen.push([lo, hi, at]));
 * assert.deepEqual(seen, [[1, 4294967295, 1767225600123], [7, 8, 1767225600123]]);
 * ```
 */
export function encodeChunk(digests: ArrayLike<number>, expiries: ArrayLike<number> | number): Uint8Array {
  const count = digests.length >> 1;
  const bytes = new Uint8Array(count * MARK_BYTES);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < count; index++) {
    const at = index * MARK_BYTES;
    view.setUint32(at, digests[2 * index], true);
    view.setUint32(at + 4, digests[2 * index + 1], true);
    view.setFloat64(at + 8, typeof expiries === "number" ? expiries : expiries[index], true);
  }
  return bytes;
}

/** Calls `visit` with each mark of a chunk value (none for a value of another shape). */
export function forEachMark(
  value: unknown,
  visit: (lo: number, hi: number, expiresAt: number) => void,
): void {
  if (!(value instanceof Uint8Array) || value.byteLength % MARK_BYTES !== 0) return;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  for (let at = 0; at < value.byteLength; at += MARK_BYTES) {
    visit(view.getUint32(at, true), view.getUint32(at + 4, true), view.getFloat64(at + 8, true));
  }
}

/** One scope's marks: the memory copy, kept in step with the store. */
export class DedupeMarks {
  /** Every mark known to this process (its own once committed, the others' once read). */
  readonly table: DigestTable = new DigestTable();
  readonly #kv: Deno.Kv;
  readonly #clock: Clock;
  readonly #prefix: Deno.KvKey;
  readonly #stream: StreamId;
  readonly #field: string;
  readonly #writer: string;
  readonly #lifetimeMs: number;
  #seq = 0;
  readonly #writers = new Map<string, WriterSeen>();
  /** The other writers' commit count that everything read so far covers; null before the first load. */
  #others: bigint | null = null;
  #loading: Promise<void> | null = null;
  #catchingUp: Promise<void> = Promise.resolve();
  #joinable: Promise<void> | null = null;
  /** The read under way (never rejects); null before the first. */
  #reading: Promise<void> | null = null;
  /** This writer's committed chunks of few marks, to join. */
  #small: SmallChunks = { seqs: [], digests: [], expiries: [] };
  #joining: Promise<void> = Promise.resolve();
  /** This writer's sequence numbers whose commit has not ended yet (see {@link mutations}). */
  readonly #inFlight = new Set<number>();

  /** The marks of `stream` and `field` in `kv`, written as `writer`, living `lifetimeMs`. */
  constructor(
    kv: Deno.Kv,
    clock: Clock,
    stream: StreamId,
    field: string,
    writer: string,
    lifetimeMs: number,
  ) {
    this.#kv = kv;
    this.#clock = clock;
    this.#stream = stream;
    this.#field = field;
    this.#prefix = marksPrefix(stream, field);
    this.#writer = writer;
    this.#lifetimeMs = lifetimeMs;
  }

  /**
   * Resolves once {@link table} holds every mark committed before this call: the first call reads the
   * store's marks (moving those of earlier versions in); later ones share one counter read per turn.
   */
  sync(): Promise<void> {
    if (this.#joinable) return this.#joinable;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#joinable = promise;
    // One read at a time: calls made while one is under way share the next, issued once it is done.
    const issue = () => {
      this.#joinable = null;
      const reading = this.#syncNow();
      this.#reading = reading.catch(() => {});
      reading.then(resolve, reject);
    };
    if (this.#reading === null) queueMicrotask(issue);
    else this.#reading.then(issue);
    return promise;
  }

  /**
   * The mutations that store the marks of a line (lo, hi of each digest; at most {@link MAX_CHUNK_MARKS})
   * as one chunk, for the line's commit, and `done` to call once that commit ended. Chunks of few
   * marks are later joined into one (a writer's own chunks, rewritten in the background), so a store of
   * lines with one item each does not keep one row per id.
   */
  chunk(
    digests: readonly number[],
    expiresAt: number,
  ): { mutations: Deno.KvMutation[]; done: (committed: boolean) => void } {
    const mutations = this.mutations(digests, expiresAt);
    const seq = this.#seq;
    return {
      mutations,
      done: (committed) => {
        this.#inFlight.delete(seq);
        if (!committed || digests.length >= 2 * JOIN_BELOW) return;
        const small = this.#small;
        small.seqs.push(seq);
        for (let at = 0; at < digests.length; at += 2) {
          small.digests.push(digests[at], digests[at + 1]);
          small.expiries.push(expiresAt);
        }
        if (small.seqs.length >= JOIN_CHUNKS || small.expiries.length + JOIN_BELOW > MAX_CHUNK_MARKS) {
          this.#small = { seqs: [], digests: [], expiries: [] };
          this.#joining = this.#joining.then(() => this.#join(small));
        }
      },
    };
  }

  /** Resolves once no join of small chunks is under way. */
  joined(): Promise<void> {
    return this.#joining;
  }

  /** Writes small chunks of this writer as one, and removes them, in one atomic operation. */
  async #join(small: SmallChunks): Promise<void> {
    const atomic = this.#kv.atomic().mutate(...this.mutations(small.digests, small.expiries));
    const joined = this.#seq;
    for (const seq of small.seqs) atomic.delete([...this.#prefix, "c", this.#writer, seq]);
    await atomic.commit().catch(() => {}); // left as they are; they are still valid
    this.#inFlight.delete(joined);
  }

  /**
   * The mutations that store marks (as {@link encodeChunk} takes them, at most {@link MAX_CHUNK_MARKS}) as
   * one chunk of this writer. They go last in a commit, in this order: the chunk before the rows that
   * announce it.
   */
  mutations(digests: ArrayLike<number>, expiries: ArrayLike<number> | number): Deno.KvMutation[] {
    const seq = ++this.#seq;
    this.#inFlight.add(seq);
    const floor = this.#inFlight.values().next().value!; // the oldest in flight (a Set keeps insertion order)
    const expireIn = this.#lifetimeMs;
    const value = encodeChunk(digests, expiries);
    return [
      { type: "set", key: [...this.#prefix, "c", this.#writer, seq], value, expireIn },
      {
        type: "set",
        key: [...this.#prefix, "w", this.#writer],
        value: new Deno.KvU64(BigInt(floor)),
        expireIn,
      },
      { type: "sum", key: [...this.#prefix, "n"], value: ONE },
      { type: "sum", key: [...this.#prefix, "n", this.#writer], value: ONE },
    ];
  }

  async #syncNow(): Promise<void> {
    if (this.#others === null) {
      this.#loading ??= this.#load().catch((error) => {
        this.#loading = null;
        throw error;
      });
      await this.#loading;
      return;
    }
    const others = await this.#othersCount();
    if (others <= this.#others) return;
    // One catch-up at a time; one that starts after this read covers every commit it counted.
    const catchUp = this.#catchingUp.catch(() => {}).then(async () => {
      if (others <= this.#others!) return;
      await this.#catchUp();
      if (others > this.#others!) this.#others = others;
    });
    this.#catchingUp = catchUp;
    await catchUp;
  }

  /** Commits of other writers: all minus this writer's, read in one snapshot. */
  async #othersCount(): Promise<bigint> {
    const [all, own] = await this.#kv.getMany([
      [...this.#prefix, "n"],
      [...this.#prefix, "n", this.#writer],
    ]);
    return count(all.value) - count(own.value);
  }

  async #load(): Promise<void> {
    const others = await this.#othersCount(); // first: what commits after it add is caught up later
    await this.#moveLegacy();
    const rows = await Array.fromAsync(this.#kv.list<Deno.KvU64>({ prefix: [...this.#prefix, "w"] }));
    for (const row of rows) {
      this.#writerSeen(String(row.key[this.#prefix.length + 1])).stamp = row.versionstamp;
    }
    await this.#readChunks({ prefix: [...this.#prefix, "c"] }, false);
    const writers = new Set<string>([this.#writer]);
    for (const row of rows) {
      const writer = String(row.key[this.#prefix.length + 1]);
      writers.add(writer);
      const seen = this.#writerSeen(writer);
      // A writer none of whose chunks is left: they expired (its row is written with its last chunk).
      if (seen.maxSeq === 0) seen.maxSeq = Math.max(0, Number(count(row.value)) - 1);
      dropBelow(seen.gaps, Number(count(row.value)));
    }
    await this.#forgetCounts(writers).catch(() => {}); // housekeeping: the next load tries again
    this.#others = others;
  }

  /**
   * Removes the commit counts of writers whose row has expired (they wrote nothing for a lifetime). Should
   * one of them write again, its own count restarts and it reads the others' chunks once more than needed.
   */
  async #forgetCounts(writers: ReadonlySet<string>): Promise<void> {
    const depth = this.#prefix.length;
    const stale: Deno.KvKey[] = [];
    for await (const row of this.#kv.list({ prefix: [...this.#prefix, "n"] }, { batchSize: 1000 })) {
      if (!writers.has(String(row.key[depth + 1]))) stale.push(row.key);
    }
    for (let start = 0; start < stale.length; start += 1000) {
      const atomic = this.#kv.atomic();
      for (const key of stale.slice(start, start + 1000)) atomic.delete(key);
      await atomic.commit();
    }
  }

  /** Reads the chunks of writers whose row changed since their chunks were last read. */
  async #catchUp(): Promise<void> {
    const rows = await Array.fromAsync(this.#kv.list<Deno.KvU64>({ prefix: [...this.#prefix, "w"] }));
    for (const row of rows) {
      const writer = String(row.key[this.#prefix.length + 1]);
      if (writer === this.#writer) continue;
      const seen = this.#writerSeen(writer);
      if (seen.stamp === row.versionstamp) continue;
      const prefix = [...this.#prefix, "c", writer];
      await this.#readChunks({ prefix, start: [...prefix, seen.maxSeq + 1] }, true);
      const gaps = [...seen.gaps];
      if (gaps.length > 0) {
        const entries = await getManyChunked(this.#kv, gaps.map((seq) => [...prefix, seq]));
        const now = this.#clock.now();
        entries.forEach((entry, index) => {
          if (entry.value === null) return;
          seen.gaps.delete(gaps[index]);
          forEachMark(entry.value, this.#extend(now));
        });
      }
      // Read after the row: what is still missing below its floor failed, or was joined into a later chunk.
      dropBelow(seen.gaps, Number(count(row.value)));
      seen.stamp = row.versionstamp;
    }
  }

  /**
   * Reads chunk rows (in key order: writer, then sequence number) into the table. A sequence number skipped
   * between two chunks read is a commit still in flight; so is one skipped after the last one read before
   * (`after` true: the selector starts there); below the first chunk of a writer at load, they expired.
   */
  async #readChunks(selector: Deno.KvListSelector, after: boolean): Promise<void> {
    const extend = this.#extend(this.#clock.now());
    const depth = this.#prefix.length;
    for await (const row of this.#kv.list<Uint8Array>(selector, { batchSize: 500 })) {
      const writer = String(row.key[depth + 1]);
      const seq = row.key[depth + 2];
      if (writer === this.#writer || typeof seq !== "number") continue;
      const seen = this.#writerSeen(writer);
      if (seq > seen.maxSeq) {
        if (after || seen.maxSeq > 0) {
          for (let missing = seen.maxSeq + 1; missing < seq; missing++) this.#gap(seen, missing);
        }
        seen.maxSeq = seq;
      }
      forEachMark(row.value, extend);
    }
  }

  /** A visitor that puts marks into the table. */
  #extend(now: number): (lo: number, hi: number, expiresAt: number) => void {
    const table = this.table;
    return (lo, hi, expiresAt) => table.extend(lo, hi, expiresAt, now);
  }

  #gap(seen: WriterSeen, seq: number): void {
    if (seen.gaps.size >= MAX_GAPS) seen.gaps.delete(seen.gaps.values().next().value!);
    seen.gaps.add(seq);
  }

  #writerSeen(writer: string): WriterSeen {
    let seen = this.#writers.get(writer);
    if (!seen) {
      seen = { stamp: null, maxSeq: 0, gaps: new Set() };
      this.#writers.set(writer, seen);
    }
    return seen;
  }

  /** Moves the marks of earlier versions (one row per id) into chunks of this writer, once per lifetime. */
  async #moveLegacy(): Promise<void> {
    const movedKey = [...this.#prefix, "legacy_moved"];
    if ((await this.#kv.get(movedKey)).value !== null) return;
    const now = this.#clock.now();
    const { dataType, platform } = this.#stream;
    const digests: number[] = [];
    const expiries: number[] = [];
    const digest = new Uint32Array(2);
    const extraBytes = this.#field.length * 3; // the rule earlier versions used for a plain key
    for (const kind of ["seen", "seen_sha256"]) {
      const prefix = ["ingest", kind, dataType, platform, this.#field];
      for await (const row of this.#kv.list({ prefix }, { batchSize: 1000 })) {
        const expiresAt = expiryOf(row.value);
        const name = row.key[prefix.length];
        if (expiresAt <= now || typeof name !== "string" || row.key.length !== prefix.length + 1) continue;
        if (kind === "seen") {
          idDigestInto(name, extraBytes, digest, 0);
          digests.push(digest[0], digest[1]);
        } else {
          const { lo, hi } = digestOfHex(name);
          digests.push(lo, hi);
        }
        expiries.push(expiresAt);
      }
    }
    for (let start = 0; start < expiries.length || start === 0; start += MAX_CHUNK_MARKS) {
      const end = Math.min(start + MAX_CHUNK_MARKS, expiries.length);
      const atomic = this.#kv.atomic();
      if (end > start) {
        atomic.mutate(...this.mutations(digests.slice(2 * start, 2 * end), expiries.slice(start, end)));
      }
      if (end === expiries.length) atomic.set(movedKey, true, { expireIn: this.#lifetimeMs });
      const seq = this.#seq; // the chunk's (nothing else writes during a load)
      const result = await atomic.commit().finally(() => this.#inFlight.delete(seq));
      if (!result.ok) throw new Error("the store refused a commit");
      for (let index = start; index < end; index++) {
        this.table.extend(digests[2 * index], digests[2 * index + 1], expiries[index], now);
      }
    }
  }
}

/** Forgets the missing sequence numbers below a writer's floor (read after its row): they cannot land any more. */
function dropBelow(gaps: Set<number>, floor: number): void {
  for (const seq of gaps) if (seq < floor) gaps.delete(seq);
}

function count(value: unknown): bigint {
  return value instanceof Deno.KvU64 ? value.value : 0n;
}
