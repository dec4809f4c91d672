/**
 * Which item ids were stored in the last 72 hours, per stream and id field, so `store_data` with a
 * `dedupe_key` skips items already sent.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import { DedupeMarks, MAX_CHUNK_MARKS } from "./dedupe_marks.ts";
import { idDigestInto } from "./id_digest.ts";
import type { StreamId } from "./streams.ts";

/** How long a stored item id keeps later items with the same id out: 72 hours. */
export const DEDUPE_LIFETIME_MS = 72 * 60 * 60 * 1000;

/** What {@link DedupeIndex.decide} found for the items of one line. */
export interface DedupeDecision {
  /** Per item: true to queue it, false when its id was stored in the last 72 h (or earlier in the line). */
  readonly accepted: boolean[];
  /** The mutations that record the accepted ids; commit them with the items. */
  readonly marks: Deno.KvMutation[];
  /**
   * Must be called once the marks are committed (`true`) or could not be (`false`: the ids are forgotten,
   * so a later line may store them). Lines waiting for these ids go on then.
   */
  settle(committed: boolean): void;
}

/**
 * An item's id for deduplication: a non-empty string, or a finite number (as its decimal text, so `123`
 * and `"123"` are the same id). Anything else, and a missing field, means the item has no id: it is
 * always queued.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { itemId } from "./dedupe_index.ts";
 * assert.ok(itemId({ job_id: 7 }, "job_id") === "7");
 * assert.ok(itemId({ job_id: "" }, "job_id") === null);
 * ```
 */
export function itemId(item: Record<string, unknown>, field: string): string | null {
  if (!Object.hasOwn(item, field)) return null;
  const value = item[field];
  if (typeof value === "string") return value === "" ? null : value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return null;
}

/**
 * The 72-hour index of stored item ids on Deno.Kv, per stream and id field: the marks of each line are one
 * row, and this process keeps every mark of a scope in memory once it used the scope (layout, loading and
 * how marks of other processes are seen: `dedupe_marks.ts`). A lookup costs no store read; the store is
 * read once per turn of the event loop, to learn whether another process wrote marks.
 *
 * A line that arrives while an earlier one is still deciding about an id waits for it: of two lines with
 * the same id, the first queues the item and the second skips it. Processes sharing a store see each
 * other's committed marks; two of them storing the same new id at the same moment may both queue it.
 */
export class DedupeIndex {
  readonly #kv: Deno.Kv;
  readonly #clock: Clock;
  /** This process's name as a writer of marks. */
  readonly #writer = crypto.randomUUID();
  readonly #scopes = new Map<string, Scope>();
  #lines = 0;

  /** Creates the index over an open store; `clock` decides what has expired. */
  constructor(kv: Deno.Kv, clock: Clock) {
    this.#kv = kv;
    this.#clock = clock;
  }

  /**
   * Decides which of `ids` (null: no id) are new in `stream` for `field`. Must be called in line order:
   * it registers the line's claim on new ids before it first waits.
   */
  async decide(stream: StreamId, field: string, ids: readonly (string | null)[]): Promise<DedupeDecision> {
    const now = this.#clock.now();
    const expiresAt = now + DEDUPE_LIFETIME_MS;
    const { marks: stored, lines } = this.#scope(stream, field);
    const table = stored.table;
    const extraBytes = field.length * 3;
    const accepted = ids.map(() => true);
    // In the table, -lineNumber: this line is deciding about the id.
    const claim = -++this.#lines;
    const line = Promise.withResolvers<void>();
    lines.set(claim, line.promise);
    /** lo, hi of the ids this line claimed, then of those it takes. */
    const claimed: number[] = [];
    const claimedAt: number[] = [];
    const waits: number[] = []; // index, lo, hi of ids another line is deciding about
    // Synchronously, before the first wait: later lines must find this line's claims.
    for (let index = 0; index < ids.length; index++) {
      const id = ids[index];
      if (id === null) continue;
      idDigestInto(id, extraBytes, digest, 0);
      const lo = digest[0];
      const hi = digest[1];
      const value = table.get(lo, hi);
      if (value > now || value === claim) {
        accepted[index] = false; // stored, or earlier in this line
      } else if (value < 0) {
        waits.push(index, lo, hi);
      } else {
        table.set(lo, hi, claim, now);
        claimed.push(lo, hi);
        claimedAt.push(index);
      }
    }
    // Gives up the ids still claimed (a failed line; after settle(true) none is).
    const release = () => {
      for (let at = 0; at < claimed.length; at += 2) {
        if (table.get(claimed[at], claimed[at + 1]) === claim) {
          table.set(claimed[at], claimed[at + 1], 1, now);
        }
      }
      lines.delete(claim);
      line.resolve();
    };
    let taken = 0; // claimed[0 .. taken) are taken
    try {
      await stored.sync(); // marks other processes committed before this line are in the table now
      for (let at = 0; at < claimed.length; at += 2) {
        if (table.get(claimed[at], claimed[at + 1]) !== claim) {
          accepted[claimedAt[at >> 1]] = false; // found stored
        } else {
          claimed[taken] = claimed[at];
          claimed[taken + 1] = claimed[at + 1];
          taken += 2;
        }
      }
      claimed.length = taken;
      for (let at = 0; at < waits.length; at += 3) {
        const [index, lo, hi] = [waits[at], waits[at + 1], waits[at + 2]];
        let value = table.get(lo, hi);
        while (value < 0 && value !== claim && lines.has(value)) {
          await lines.get(value);
          value = table.get(lo, hi);
        }
        if (value > now || value === claim) {
          accepted[index] = false;
          continue;
        }
        // The line that took it failed to store it: this line takes it.
        table.set(lo, hi, claim, now);
        claimed.push(lo, hi);
        taken += 2;
      }
    } catch (error) {
      release();
      throw error;
    }
    const marks: Deno.KvMutation[] = [];
    const ended: ((committed: boolean) => void)[] = [];
    for (let start = 0; start < taken; start += 2 * MAX_CHUNK_MARKS) {
      const chunk = stored.chunk(claimed.slice(start, start + 2 * MAX_CHUNK_MARKS), expiresAt);
      marks.push(...chunk.mutations);
      ended.push(chunk.done);
    }
    const settle = (committed: boolean) => {
      if (committed) {
        for (let at = 0; at < taken; at += 2) table.set(claimed[at], claimed[at + 1], expiresAt, now);
      }
      for (const done of ended) done(committed);
      release();
    };
    return { accepted, marks, settle };
  }

  #scope(stream: StreamId, field: string): Scope {
    const name = `${stream.dataType}\u0000${stream.platform}\u0000${field}`;
    let scope = this.#scopes.get(name);
    if (!scope) {
      scope = {
        marks: new DedupeMarks(this.#kv, this.#clock, stream, field, this.#writer, DEDUPE_LIFETIME_MS),
        lines: new Map(),
      };
      this.#scopes.set(name, scope);
    }
    return scope;
  }
}

const digest = new Uint32Array(2);

interface Scope {
  readonly marks: DedupeMarks;
  /** The lines of this process deciding about ids (by their claim) → settles when they committed or failed. */
  readonly lines: Map<number, Promise<void>>;
}
