/**
 * The kinds of data the ingest server takes, and the streams they form.
 *
 * @module
 */

/** The `data_type` values the ingest server knows. */
export const DATA_TYPES = ["job", "company"] as const;
/** The `platform` values the ingest server knows. */
export const PLATFORMS = ["boss", "qcwy", "zhilian"] as const;

/** What kind of record an item is: a job posting or a company. */
export type DataType = typeof DATA_TYPES[number];
/** The recruitment platform an item was scraped from. */
export type Platform = typeof PLATFORMS[number];

/**
 * One ordered stream of items: everything with the same `data_type` and `platform`. Items are delivered
 * in the order they were stored within a stream; streams are independent of each other.
 */
export interface StreamId {
  /** `job` or `company`. */
  readonly dataType: DataType;
  /** `boss`, `qcwy` or `zhilian`. */
  readonly platform: Platform;
}

/**
 * The name of a stream in messages and maps, e.g. `job/boss`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { streamName } from "./streams.ts";
 * assert.ok(streamName({ dataType: "job", platform: "boss" }) === "job/boss");
 * ```
 */
export function streamName(stream: StreamId): string {
  return `${stream.dataType}/${stream.platform}`;
}

/** True for a known `data_type` (used when rows are read back from the store). */
export function isDataType(value: unknown): value is DataType {
  return (DATA_TYPES as readonly unknown[]).includes(value);
}

/** True for a known `platform` (used when rows are read back from the store). */
export function isPlatform(value: unknown): value is Platform {
  return (PLATFORMS as readonly unknown[]).includes(value);
}
