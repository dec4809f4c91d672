/**
 * The durable outbox of job data on Deno.Kv: how items waiting for the ingest server, dead letters,
 * counters and run claims are laid out, and the mutations that change them.
 *
 * Layout (every key under `"ingest"`):
 *
 * | key | value |
 * |---|---|
 * | `["ingest","out",run,dataType,platform,line,chunk]` | `{n, b}`: `n` items, `b` their JSON texts joined by `,` (UTF-8) |
 * | … the same for one item too big for one value | `{n: 1, parts}`, the bytes in `["ingest","out_part",…,i]` |
 * | `["ingest","dead",run,dataType,platform,line,chunk,id]` | refused items as above plus `{status, error, at}` |
 * | `["ingest","run",run]` | `{owner, until}`: which process delivers the rows of `run`, and until when |
 * | `["ingest","count","delivered" \| "dead"]` | `Deno.KvU64` item counters |
 *
 * A row holds the items of one `store_data` line (a line too big for one value makes several rows, its
 * chunks), so 100 items cost one or two mutations rather than 100, and a batch of rows is a ready-made
 * request body. Rows are keyed by the run (one process's lifetime) and the line number, so rows of one
 * stream list in the order they were stored, and processes sharing a store never write the same key.
 *
 * @module
 */

import { getManyChunked } from "../cache/kv_reads.ts";
import type { DataType, Platform, StreamId } from "./streams.ts";
import { isDataType, isPlatform } from "./streams.ts";

/** The first part of every key the ingest sink writes. */
export const INGEST_PREFIX = "ingest";
/** The largest row value, in bytes of item text (Deno.Kv values are limited to 64 KiB). */
export const MAX_ROW_BYTES = 63_000;
/** Bytes per part of an item too big for one row. */
const PART_BYTES = 60_000;

/** How many part values a row of `bytes` bytes of item text is stored in (0: in the row value itself). */
export function partsFor(bytes: number): number {
  return bytes <= MAX_ROW_BYTES ? 0 : Math.ceil(bytes / PART_BYTES);
}
/** The longest error text kept with a dead letter. */
const MAX_DEAD_ERROR_CHARS = 300;

const OUT = "out";
const OUT_PART = "out_part";
const DEAD = "dead";
const DEAD_PART = "dead_part";
const RUN = "run";
const COUNT = "count";

/** Where a row is: the run that stored it, its stream, the line and the chunk of that line. */
export interface RowKey {
  /** The run (process lifetime) that stored the row; sorts by start time. */
  readonly run: string;
  /** The stream's `data_type`. */
  readonly dataType: DataType;
  /** The stream's `platform`. */
  readonly platform: Platform;
  /** The `store_data` line within the run, counted from 0. */
  readonly line: number;
  /** The chunk within the line, counted from 0. */
  readonly chunk: number;
}

/** One row of the outbox as the deliverer holds it. */
export interface OutboxRow {
  /** Where it is stored. */
  readonly key: RowKey;
  /** How many items it holds. */
  readonly count: number;
  /** Number of part values (0 when the items are in the row value itself). */
  readonly parts: number;
  /** Size of the item text in bytes. */
  readonly bytes: number;
  /**
   * The item JSON texts joined by `,`, or null when not held in memory (read it with
   * {@link IngestOutbox.readData}). A stored row split between two requests is held as consecutive rows
   * with the same `key` object, each with its share of the items.
   */
  data: Uint8Array | null;
}

/** A dead letter as read back by {@link IngestOutbox.readDeadLetters}. */
export interface DeadLetter {
  /** Where the row was in the outbox. */
  readonly key: RowKey;
  /** The items that were refused. */
  readonly items: unknown[];
  /** The status the server answered. */
  readonly status: number | null;
  /** What the server said (never the token). */
  readonly error: string;
  /** When the items were refused, ms since the epoch. */
  readonly at: number;
}

/** Who delivers the rows of a run; `until` in ms since the epoch (0: released). */
export interface RunClaim {
  /** The run id of the process delivering it, `""` when released. */
  readonly owner: string;
  /** The claim lapses at this time unless renewed. */
  readonly until: number;
}

/** The persisted item counters. */
export interface OutboxCounters {
  /** Items the ingest server accepted (2xx), over the life of the store. */
  readonly delivered: number;
  /** Items the ingest server refused, kept as dead letters. */
  readonly dead: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NOTHING = new Uint8Array(0);

/**
 * A new run id: sorts after the ids of runs started earlier (the time comes first, fixed width), and is
 * unique across processes (a random part).
 */
export function newRunId(nowMs: number = Date.now()): string {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `${Math.floor(nowMs).toString(36).padStart(10, "0")}-${random[0].toString(16).padStart(8, "0")}${
    random[1].toString(16).padStart(8, "0")
  }`;
}

/** Compares row keys in store order (the order items of a stream are delivered in). */
export function compareRowKeys(a: RowKey, b: RowKey): number {
  if (a.run !== b.run) return a.run < b.run ? -1 : 1;
  if (a.line !== b.line) return a.line - b.line;
  return a.chunk - b.chunk;
}

/**
 * Packs item JSON texts into row data: at most `maxItems` items and {@link MAX_ROW_BYTES} bytes per row,
 * in order. An item bigger than that gets a row of its own (stored in parts).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packRows } from "./ingest_outbox.ts";
 * const rows = packRows(['{"a":1}', '{"a":2}', '{"a":3}'], 2);
 * assert.ok(rows.length === 2 && rows[0].count === 2);
 * assert.ok(new TextDecoder().decode(rows[0].data) === '{"a":1},{"a":2}');
 * ```
 */
export function packRows(texts: readonly string[], maxItems: number): { count: number; data: Uint8Array }[] {
  const rows: { count: number; data: Uint8Array }[] = [];
  const push = (start: number, end: number) => {
    const data = encoder.encode(end - start === 1 ? texts[start] : texts.slice(start, end).join(","));
    if (data.byteLength <= MAX_ROW_BYTES || end - start === 1) {
      rows.push({ count: end - start, data });
      return;
    }
    const middle = (start + end) >> 1; // UTF-8 is longer than the character count: split and retry
    push(start, middle);
    push(middle, end);
  };
  let start = 0;
  while (start < texts.length) {
    let end = start;
    let chars = 0;
    while (
      end < texts.length && end - start < maxItems &&
      (end === start || chars + texts[end].length + 1 <= MAX_ROW_BYTES)
    ) {
      chars += texts[end].length + 1;
      end++;
    }
    push(start, end);
    start = end;
  }
  return rows;
}

/** Joins row data into a request body `{"data_list":[...],"data_type":...,"platform":...}`. */
export function batchBody(stream: StreamId, rows: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const head = encoder.encode('{"data_list":[');
  const tail = encoder.encode(
    `],"data_type":${JSON.stringify(stream.dataType)},"platform":${JSON.stringify(stream.platform)}}`,
  );
  return joinBetween(head, rows, tail);
}

/**
 * Joins row data with `,` (the pieces of one stored row); a single piece is returned as it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { joinItems } from "./ingest_outbox.ts";
 * const encoder = new TextEncoder();
 * const joined = joinItems([encoder.encode('{"a":1}'), encoder.encode('{"a":2}')]);
 * assert.ok(new TextDecoder().decode(joined) === '{"a":1},{"a":2}');
 * ```
 */
export function joinItems(pieces: readonly Uint8Array[]): Uint8Array {
  return pieces.length === 1 ? pieces[0] : joinBetween(NOTHING, pieces, NOTHING);
}

/** `head`, the pieces joined by `,`, then `tail`, in one new array. */
function joinBetween(
  head: Uint8Array,
  pieces: readonly Uint8Array[],
  tail: Uint8Array,
): Uint8Array<ArrayBuffer> {
  let length = head.byteLength + tail.byteLength + Math.max(0, pieces.length - 1);
  for (const piece of pieces) length += piece.byteLength;
  const joined = new Uint8Array(length);
  joined.set(head);
  let at = head.byteLength;
  pieces.forEach((piece, index) => {
    if (index > 0) joined[at++] = 0x2c; // ,
    joined.set(piece, at);
    at += piece.byteLength;
  });
  joined.set(tail, at);
  return joined;
}

/**
 * Splits row data after its first `count` items (at the top-level comma that ends item `count`). Returns
 * null when the data has no more than `count` items.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitItems } from "./ingest_outbox.ts";
 * const data = new TextEncoder().encode('{"a":"x,}"},{"b":[1,2]},{"c":3}');
 * const [head, tail] = splitItems(data, 2)!;
 * assert.ok(new TextDecoder().decode(head) === '{"a":"x,}"},{"b":[1,2]}');
 * assert.ok(new TextDecoder().decode(tail) === '{"c":3}');
 * ```
 */
export function splitItems(data: Uint8Array, count: number): [Uint8Array, Uint8Array] | null {
  let depth = 0;
  let inString = false;
  let seen = 0;
  for (let i = 0; i < data.length; i++) {
    const byte = data[i];
    if (inString) {
      if (byte === 0x5c) i++; // backslash: skip the escaped byte
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) {
      inString = true;
    } else if (byte === 0x7b || byte === 0x5b) {
      depth++;
    } else if (byte === 0x7d || byte === 0x5d) {
      depth--;
    } else if (byte === 0x2c && depth === 0 && ++seen === count) {
      // Copies, not views: a view would carry its whole buffer into the store.
      return [data.slice(0, i), data.slice(i + 1)];
    }
  }
  return null;
}

/**
 * The Kv side of the ingest outbox: keys, values and the mutations for storing, delivering and
 * dead-lettering rows, claiming runs and counting. It holds no state of its own besides the store.
 */
export class IngestOutbox {
  readonly #kv: Deno.Kv;

  /** Works on `kv`, under keys starting with {@link INGEST_PREFIX}. */
  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /** The mutations that store a row (parts first, so the row never exists without them). */
  rowMutations(key: RowKey, data: Uint8Array, count: number): Deno.KvMutation[] {
    return valueMutations(rowKey(OUT, key), rowKey(OUT_PART, key), data, count, {});
  }

  /** The mutations that remove a delivered row. */
  deleteMutations(row: OutboxRow): Deno.KvMutation[] {
    const mutations: Deno.KvMutation[] = [{ type: "delete", key: rowKey(OUT, row.key) }];
    for (let index = 0; index < row.parts; index++) {
      mutations.push({ type: "delete", key: [...rowKey(OUT_PART, row.key), index] });
    }
    return mutations;
  }

  /**
   * The mutations that keep refused items as a dead letter (under a key of their own, so several dead
   * letters from one row never collide). Remove or rewrite the row separately.
   */
  deadLetterMutations(
    key: RowKey,
    data: Uint8Array,
    count: number,
    reason: { status: number | null; error: string; at: number },
  ): Deno.KvMutation[] {
    const extra = {
      status: reason.status,
      error: reason.error.slice(0, MAX_DEAD_ERROR_CHARS),
      at: reason.at,
    };
    const id = newRunId(reason.at);
    return valueMutations([...rowKey(DEAD, key), id], [...rowKey(DEAD_PART, key), id], data, count, extra);
  }

  /** The mutation that adds `items` to a counter. */
  countMutation(counter: "delivered" | "dead", items: number): Deno.KvMutation {
    return { type: "sum", key: [INGEST_PREFIX, COUNT, counter], value: new Deno.KvU64(BigInt(items)) };
  }

  /** The mutation that claims `run` for `owner` until `until` (plain set: for the process's own run). */
  claimMutation(run: string, claim: RunClaim): Deno.KvMutation {
    return { type: "set", key: [INGEST_PREFIX, RUN, run], value: claim };
  }

  /** Reads the counters. */
  async readCounters(): Promise<OutboxCounters> {
    const [delivered, dead] = await this.#kv.getMany<Deno.KvU64[]>([
      [INGEST_PREFIX, COUNT, "delivered"],
      [INGEST_PREFIX, COUNT, "dead"],
    ]);
    return { delivered: u64(delivered.value), dead: u64(dead.value) };
  }

  /** Every run with a claim entry (a run may have rows only while it has one). */
  async listClaims(): Promise<{ run: string; claim: RunClaim; entry: Deno.KvEntry<unknown> }[]> {
    const claims: { run: string; claim: RunClaim; entry: Deno.KvEntry<unknown> }[] = [];
    for await (const entry of this.#kv.list<unknown>({ prefix: [INGEST_PREFIX, RUN] })) {
      const run = entry.key[2];
      if (typeof run !== "string") continue;
      claims.push({ run, claim: asClaim(entry.value), entry });
    }
    return claims;
  }

  /** Takes over `run` if its claim has not changed since `entry` was read; true on success. */
  async takeOver(run: string, entry: Deno.KvEntry<unknown>, claim: RunClaim): Promise<boolean> {
    const result = await this.#kv.atomic().check(entry).set([INGEST_PREFIX, RUN, run], claim).commit();
    return result.ok;
  }

  /** Writes a claim (renewal, release). */
  async setClaim(run: string, claim: RunClaim): Promise<void> {
    await this.#kv.set([INGEST_PREFIX, RUN, run], claim);
  }

  /** Removes the claim of a run that has no rows left; keeps it (released) if rows turned up. */
  async dropClaim(run: string): Promise<void> {
    const claimKey = [INGEST_PREFIX, RUN, run];
    const claim = await this.#kv.get(claimKey);
    if (await this.#hasRows(run)) {
      await this.#kv.set(claimKey, { owner: "", until: 0 } satisfies RunClaim);
      return;
    }
    await this.#kv.atomic().check(claim).delete(claimKey).commit();
  }

  async #hasRows(run: string): Promise<boolean> {
    for await (const _ of this.#kv.list({ prefix: [INGEST_PREFIX, OUT, run] }, { limit: 1 })) return true;
    return false;
  }

  /**
   * The rows of `run`, in store order. `keep(bytes)` says whether to hold a row's data in memory; rows
   * stored in parts are never held (read them when needed).
   */
  async listRows(run: string, keep: (bytes: number) => boolean): Promise<OutboxRow[]> {
    const rows: OutboxRow[] = [];
    for await (const entry of this.#kv.list<unknown>({ prefix: [INGEST_PREFIX, OUT, run] })) {
      const key = parseRowKey(entry.key);
      const value = entry.value as { n?: unknown; b?: unknown; parts?: unknown; bytes?: unknown } | null;
      if (key === null || value === null || typeof value !== "object" || typeof value.n !== "number") {
        continue;
      }
      if (value.b instanceof Uint8Array) {
        const bytes = value.b.byteLength;
        rows.push({ key, count: value.n, parts: 0, bytes, data: keep(bytes) ? value.b : null });
      } else if (typeof value.parts === "number" && typeof value.bytes === "number") {
        rows.push({ key, count: value.n, parts: value.parts, bytes: value.bytes, data: null });
      }
    }
    return rows;
  }

  /** Reads the item text of a row not held in memory. Throws when it is no longer in the store. */
  async readData(row: OutboxRow): Promise<Uint8Array> {
    if (row.data !== null) return row.data;
    const data = await this.#readValue(rowKey(OUT, row.key), rowKey(OUT_PART, row.key));
    if (data === null) throw new Error(`row ${describeRowKey(row.key)} is missing from the store`);
    return data;
  }

  /** The dead letters, in key order (for people and tests; items are parsed back to JSON). */
  async readDeadLetters(): Promise<DeadLetter[]> {
    const letters: DeadLetter[] = [];
    for await (const entry of this.#kv.list<unknown>({ prefix: [INGEST_PREFIX, DEAD] })) {
      const key = parseRowKey(entry.key.slice(0, 7));
      const id = entry.key[7];
      const value = entry.value as { status?: unknown; error?: unknown; at?: unknown } | null;
      if (key === null || typeof id !== "string" || value === null || typeof value !== "object") continue;
      const data = await this.#readValue([...rowKey(DEAD, key), id], [...rowKey(DEAD_PART, key), id]);
      if (data === null) continue;
      letters.push({
        key,
        items: JSON.parse(`[${decoder.decode(data)}]`),
        status: typeof value.status === "number" ? value.status : null,
        error: typeof value.error === "string" ? value.error : "",
        at: typeof value.at === "number" ? value.at : 0,
      });
    }
    return letters;
  }

  async #readValue(head: Deno.KvKey, partPrefix: Deno.KvKey): Promise<Uint8Array | null> {
    const entry = await this.#kv.get<{ b?: unknown; parts?: unknown; bytes?: unknown }>(head);
    const value = entry.value;
    if (value === null || typeof value !== "object") return null;
    if (value.b instanceof Uint8Array) return value.b;
    if (typeof value.parts !== "number" || typeof value.bytes !== "number") return null;
    const data = new Uint8Array(value.bytes);
    let at = 0;
    const keys = Array.from({ length: value.parts }, (_, index): Deno.KvKey => [...partPrefix, index]);
    for (const part of await getManyChunked<Uint8Array>(this.#kv, keys)) {
      if (!(part.value instanceof Uint8Array) || at + part.value.byteLength > data.byteLength) return null;
      data.set(part.value, at);
      at += part.value.byteLength;
    }
    return at === data.byteLength ? data : null;
  }
}

/** `job/boss line 3 chunk 0 of run …`, for messages. */
export function describeRowKey(key: RowKey): string {
  return `${key.dataType}/${key.platform} line ${key.line} chunk ${key.chunk} of run ${key.run}`;
}

function rowKey(kind: string, key: RowKey): Deno.KvKey {
  return [INGEST_PREFIX, kind, key.run, key.dataType, key.platform, key.line, key.chunk];
}

function valueMutations(
  head: Deno.KvKey,
  partPrefix: Deno.KvKey,
  data: Uint8Array,
  count: number,
  extra: Record<string, unknown>,
): Deno.KvMutation[] {
  if (data.byteLength <= MAX_ROW_BYTES) {
    return [{ type: "set", key: head, value: { n: count, b: data, ...extra } }];
  }
  const mutations: Deno.KvMutation[] = [];
  let parts = 0;
  for (let start = 0; start < data.byteLength; start += PART_BYTES) {
    mutations.push({
      type: "set",
      key: [...partPrefix, parts],
      value: data.slice(start, start + PART_BYTES),
    });
    parts++;
  }
  mutations.push({ type: "set", key: head, value: { n: count, parts, bytes: data.byteLength, ...extra } });
  return mutations;
}

function parseRowKey(key: Deno.KvKey): RowKey | null {
  const [, , run, dataType, platform, line, chunk] = key;
  if (
    key.length !== 7 || typeof run !== "string" || !isDataType(dataType) || !isPlatform(platform) ||
    typeof line !== "number" || typeof chunk !== "number"
  ) {
    return null;
  }
  return { run, dataType, platform, line, chunk };
}

function asClaim(value: unknown): RunClaim {
  if (value !== null && typeof value === "object") {
    const { owner, until } = value as { owner?: unknown; until?: unknown };
    if (typeof owner === "string" && typeof until === "number") return { owner, until };
  }
  return { owner: "", until: 0 };
}

function u64(value: unknown): number {
  return value instanceof Deno.KvU64 ? Number(value.value) : 0;
}
