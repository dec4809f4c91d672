/**
 * An in-memory map of id digests to a number: open addressing over typed arrays, 16 bytes a slot, at most
 * half full (about 32 bytes per id; a million ids take about 32 MiB). The dedupe index keeps an expiry
 * there (ms since the epoch), or a negative number while a line is deciding about the id. Values in
 * `(0, now]` (expired) are dropped when the table is rebuilt to grow.
 *
 * @module
 */

const MIN_SLOTS = 1024;

/** Digest (lo, hi) → value; 0 means absent. */
export class DigestTable {
  /** lo, hi of each slot. */
  #digests = new Uint32Array(2 * MIN_SLOTS);
  /** The value of each slot; 0 marks an empty slot. */
  #values = new Float64Array(MIN_SLOTS);
  #mask = MIN_SLOTS - 1;
  #used = 0;

  /**
   * The value of a digest, or 0 when it is not in the table.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { DigestTable } from "./digest_table.ts";
   * const table = new DigestTable();
   * table.set(1, 2, -7, 0);
   * table.extend(1, 2, 5000, 0); // an expiry replaces a smaller value
   * table.extend(1, 2, 4000, 0); // not an earlier one
   * assert.equal(table.get(1, 2), 5000);
   * assert.equal(table.get(1, 3), 0);
   * ```
   */
  get(lo: number, hi: number): number {
    const slot = this.#find(lo, hi);
    return slot < 0 ? 0 : this.#values[slot];
  }

  /** Sets the value of a digest (not 0); `now` decides what a rebuild drops. */
  set(lo: number, hi: number, value: number, now: number): void {
    const slot = this.#find(lo, hi);
    if (slot >= 0) {
      this.#values[slot] = value;
      return;
    }
    if (2 * (this.#used + 1) > this.#values.length) this.#rebuild(now);
    this.#insert(lo, hi, value);
  }

  /** Sets a digest's value to `expiresAt` unless that has passed or the value is already later. */
  extend(lo: number, hi: number, expiresAt: number, now: number): void {
    if (expiresAt > now && this.get(lo, hi) < expiresAt) this.set(lo, hi, expiresAt, now);
  }

  /** The slot of a digest, or -1. */
  #find(lo: number, hi: number): number {
    const digests = this.#digests;
    const values = this.#values;
    for (let slot = lo & this.#mask;; slot = (slot + 1) & this.#mask) {
      if (values[slot] === 0) return -1;
      if (digests[2 * slot] === lo && digests[2 * slot + 1] === hi) return slot;
    }
  }

  #insert(lo: number, hi: number, value: number): void {
    const values = this.#values;
    let slot = lo & this.#mask;
    while (values[slot] !== 0) slot = (slot + 1) & this.#mask;
    this.#digests[2 * slot] = lo;
    this.#digests[2 * slot + 1] = hi;
    values[slot] = value;
    this.#used++;
  }

  /** Rehashes the entries still wanted (negative, or not expired) into a table with room for as many again. */
  #rebuild(now: number): void {
    const digests = this.#digests;
    const values = this.#values;
    const kept = (value: number) => value < 0 || value > now;
    let live = 0;
    for (const value of values) if (kept(value)) live++;
    let slots = MIN_SLOTS;
    while (slots < 4 * (live + 1)) slots *= 2;
    this.#digests = new Uint32Array(2 * slots);
    this.#values = new Float64Array(slots);
    this.#mask = slots - 1;
    this.#used = 0;
    values.forEach((value, slot) => {
      if (kept(value)) this.#insert(digests[2 * slot], digests[2 * slot + 1], value);
    });
  }
}
