/**
 * Job items as outbox payloads: the JSON texts of up to 100 items joined by `,` (UTF-8), packed into rows
 * of at most {@link MAX_ROW_BYTES}, split at an item boundary (the 413 halving) and joined into a request
 * body.
 *
 * @module
 */

import type { StreamId } from "./streams.ts";

/** The most bytes of item text per row (a single bigger item gets a row of its own). */
export const MAX_ROW_BYTES = 63_000;

const encoder = new TextEncoder();

/**
 * Packs item JSON texts into rows: at most `maxItems` items and {@link MAX_ROW_BYTES} bytes per row, in
 * order.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { packRows } from "./item_rows.ts";
 * const rows = packRows(['{"a":1}', '{"a":2}', '{"a":3}'], 2);
 * assert.strictEqual(rows.length, 2);
 * assert.strictEqual(new TextDecoder().decode(rows[0].data), '{"a":1},{"a":2}');
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

/**
 * `{"data_list":[<rows joined by ,>],"data_type":...,"platform":...}` as bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { batchBody } from "./item_rows.ts";
 * const body = batchBody({ dataType: "job", platform: "boss" }, [new TextEncoder().encode('{"a":1}')]);
 * assert.deepStrictEqual(JSON.parse(new TextDecoder().decode(body)).data_list, [{ a: 1 }]);
 * ```
 */
export function batchBody(stream: StreamId, rows: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const head = encoder.encode('{"data_list":[');
  const tail = encoder.encode(
    `],"data_type":${JSON.stringify(stream.dataType)},"platform":${JSON.stringify(stream.platform)}}`,
  );
  let length = head.byteLength + tail.byteLength + Math.max(0, rows.length - 1);
  for (const row of rows) length += row.byteLength;
  const body = new Uint8Array(length);
  body.set(head);
  let at = head.byteLength;
  rows.forEach((row, index) => {
    if (index > 0) body[at++] = 0x2c; // ,
    body.set(row, at);
    at += row.byteLength;
  });
  body.set(tail, at);
  return body;
}

/**
 * Splits row data after its first `count` items (at the top-level comma that ends item `count`); null when
 * it holds no more than `count` items.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { splitItems } from "./item_rows.ts";
 * const [head, tail] = splitItems(new TextEncoder().encode('{"a":"x,}"},{"b":[1,2]},{"c":3}'), 2)!;
 * assert.strictEqual(new TextDecoder().decode(head), '{"a":"x,}"},{"b":[1,2]}');
 * assert.strictEqual(new TextDecoder().decode(tail), '{"c":3}');
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
      return [data.subarray(0, i), data.subarray(i + 1)];
    }
  }
  return null;
}
