/**
 * Rows as the version before the one outbox wrote them into a Deno.Kv store, in that version's exact key and
 * value shapes (see `git show df4470e:src/outbox/durable_queue.ts`, `.../rtcv/connect_live.ts` and
 * `.../ingest/ingest_outbox.ts`), for the upgrade tests. Written through a {@link RowSink}: an atomic
 * operation, or {@link writeRows} for an entry too big for one (the earlier version's commit batcher split
 * such writes, parts first).
 *
 * @module
 */

import assert from "node:assert/strict";

const encoder = new TextEncoder();

/** Where old rows go: a `Deno.AtomicOperation`, or a collector for {@link writeRows}. */
export interface RowSink {
  set(key: Deno.KvKey, value: unknown): unknown;
}

/** The old DurableQueue's ids: `<ms, 15 digits>-<sequence, 6 digits>-<random>`. */
export function oldCvId(ms: number, sequence: number): string {
  return `${ms.toString().padStart(15, "0")}-${sequence.toString().padStart(6, "0")}-${
    Math.floor(Math.random() * 1e9).toString(36)
  }`;
}

/** The old DurableQueue's put: a string value, or `{parts}` plus string parts of 20,000 UTF-16 units. */
export function putOldCv(sink: RowSink, prefix: string, channel: string, id: string, payload: string): void {
  if (payload.length <= 20_000) {
    sink.set([prefix, channel, id], payload);
    return;
  }
  let index = 0;
  for (let start = 0; start < payload.length; start += 20_000) {
    sink.set([prefix + "_part", channel, id, index++], payload.slice(start, start + 20_000));
  }
  sink.set([prefix, channel, id], { parts: index });
}

/** The old ingest run ids: `<ms in base 36, 10 chars>-<16 hex>`. */
export function oldRunId(ms: number): string {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `${ms.toString(36).padStart(10, "0")}-${random[0].toString(16).padStart(8, "0")}${
    random[1].toString(16).padStart(8, "0")
  }`;
}

/** The old ingest row value: `{n, b}`, or `{n, parts, bytes}` plus byte parts of 60,000 (rows over 63,000). */
export function putOldRow(
  sink: RowSink,
  head: Deno.KvKey,
  part: Deno.KvKey,
  items: object[],
  extra = {},
): void {
  const data = encoder.encode(items.map((item) => JSON.stringify(item)).join(","));
  if (data.byteLength <= 63_000) {
    sink.set(head, { n: items.length, b: data, ...extra });
    return;
  }
  let parts = 0;
  for (let start = 0; start < data.byteLength; start += 60_000) {
    sink.set([...part, parts++], data.slice(start, start + 60_000));
  }
  sink.set(head, { n: items.length, parts, bytes: data.byteLength, ...extra });
}

/**
 * Runs `write` against a collector and commits its rows in order, a few per atomic operation: how the
 * earlier version stored an entry too big for one operation.
 */
export async function writeRows(kv: Deno.Kv, write: (sink: RowSink) => void): Promise<void> {
  const rows: [Deno.KvKey, unknown][] = [];
  write({ set: (key, value) => rows.push([key, value]) });
  for (let start = 0; start < rows.length; start += 8) {
    const atomic = kv.atomic();
    for (const [key, value] of rows.slice(start, start + 8)) atomic.set(key, value);
    assert.ok((await atomic.commit()).ok);
  }
}

/** Every row an earlier version's layout (or a move of one) can leave: empty once all moved. */
export async function oldRowsLeft(kv: Deno.Kv): Promise<Deno.KvKey[]> {
  const prefixes: Deno.KvKey[] = [
    ["cv_outbox"],
    ["cv_outbox_part"],
    ["cv_dead"],
    ["cv_dead_part"],
    ["ingest", "out"],
    ["ingest", "out_part"],
    ["ingest", "dead"],
    ["ingest", "dead_part"],
    ["legacy_moved"],
  ];
  const keys: Deno.KvKey[] = [];
  for (const prefix of prefixes) {
    for await (const row of kv.list({ prefix })) keys.push(row.key);
  }
  return keys;
}
