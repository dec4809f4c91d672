/**
 * Which item ids were stored in the last 72 hours, per stream and id field, so `store_data` with a
 * `dedupe_key` skips items already sent.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import { expiryValue, keyFor, rememberBounded } from "../cache/expiry_keys.ts";
import { ExpiryReader } from "../cache/expiry_reader.ts";
import type { StreamId } from "./streams.ts";

/** The first part of the dedupe index's keys (the store is shared with the cache and the outbox). */
const INGEST_PREFIX = "ingest";
/** How long a stored item id keeps later items with the same id out: 72 hours. */
export const DEDUPE_LIFETIME_MS = 72 * 60 * 60 * 1000;
/** How many ids this process remembers, to answer without reading the store. */
const MAX_REMEMBERED = 250_000;

interface Remembered {
  /** Until when the id counts as stored (meaningful once `deciding` is null). */
  expiresAt: number;
  /** Settles when the line that took this id has committed it or failed; null once it has. */
  deciding: Promise<void> | null;
}

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
 * The 72-hour index of stored item ids on Deno.Kv: `["ingest","seen",dataType,platform,field,id]` →
 * `Deno.KvU64(expiry in ms)`, written with `expireIn` and checked on read against the clock (Deno.Kv
 * sweeps expired keys only later).
 *
 * Ids this process decided about are remembered, so pipelined lines with the same ids read the store
 * once, and a line that arrives while an earlier one is still deciding about an id waits for it: of two
 * lines with the same id, the first queues the item and the second skips it. Processes sharing a store
 * do not coordinate: two of them storing the same new id at the same moment may both queue it.
 */
export class DedupeIndex {
  readonly #kv: Deno.Kv;
  readonly #clock: Clock;
  readonly #remembered = new Map<string, Remembered>();
  readonly #readers = new Map<string, ExpiryReader>();

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
    const accepted = ids.map(() => true);
    const scope = `${stream.dataType}\u0000${stream.platform}\u0000${field}\u0000`;
    const inLine = new Set<string>();
    const fresh: { index: number; name: string; id: string; entry: Remembered; done: () => void }[] = [];
    const waits: { index: number; name: string; id: string }[] = [];
    // Synchronously, before the first wait: later lines must find this line's claims.
    ids.forEach((id, index) => {
      if (id === null) return;
      const name = scope + id;
      if (inLine.has(name)) {
        accepted[index] = false;
        return;
      }
      inLine.add(name);
      const known = this.#remembered.get(name);
      if (known?.deciding) {
        waits.push({ index, name, id });
      } else if (known && known.expiresAt > now) {
        accepted[index] = false;
      } else {
        let done = () => {};
        const deciding = new Promise<void>((resolve) => done = resolve);
        const entry: Remembered = { expiresAt, deciding };
        this.#remember(name, entry);
        fresh.push({ index, name, id, entry, done });
      }
    });

    const marks: Deno.KvMutation[] = [];
    const taken: { name: string; entry: Remembered; done: () => void }[] = [];
    const mark = (key: Deno.KvKey) =>
      marks.push({
        type: "set",
        key,
        value: expiryValue(expiresAt),
        expireIn: DEDUPE_LIFETIME_MS,
      });
    try {
      const keys = await Promise.all(fresh.map((item) => this.#key(stream, field, item.id)));
      // Ids of one line are often sequential: the shared reader answers runs of them with range scans.
      const reader = this.#reader(stream, field);
      const stored = await Promise.all(keys.map((key) => reader.read(key)));
      fresh.forEach((item, i) => {
        if (stored[i] > now) {
          accepted[item.index] = false;
          item.entry.expiresAt = stored[i];
          item.entry.deciding = null;
          item.done();
        } else {
          taken.push(item);
          mark(keys[i]);
        }
      });
    } catch (error) {
      for (const item of fresh) {
        if (this.#remembered.get(item.name) === item.entry) this.#remembered.delete(item.name);
        item.done();
      }
      throw error;
    }
    const settle = (committed: boolean) => {
      for (const item of taken) {
        if (committed) item.entry.deciding = null;
        else if (this.#remembered.get(item.name) === item.entry) this.#remembered.delete(item.name);
        item.done();
      }
    };
    try {
      for (const { index, name, id } of waits) {
        let known = this.#remembered.get(name);
        while (known?.deciding) {
          await known.deciding;
          known = this.#remembered.get(name);
        }
        if (known && known.expiresAt > now) {
          accepted[index] = false;
          continue;
        }
        // The line that took it failed to store it: this line takes it.
        let done = () => {};
        const entry: Remembered = { expiresAt, deciding: new Promise<void>((resolve) => done = resolve) };
        this.#remember(name, entry);
        taken.push({ name, entry, done });
        mark(await this.#key(stream, field, id));
      }
    } catch (error) {
      settle(false);
      throw error;
    }
    return { accepted, marks, settle };
  }

  #remember(name: string, entry: Remembered): void {
    rememberBounded(this.#remembered, name, entry, MAX_REMEMBERED);
  }

  #reader(stream: StreamId, field: string): ExpiryReader {
    const scope = `${stream.dataType}\u0000${stream.platform}\u0000${field}`;
    let reader = this.#readers.get(scope);
    if (!reader) {
      reader = new ExpiryReader(this.#kv, [INGEST_PREFIX, "seen", stream.dataType, stream.platform, field]);
      this.#readers.set(scope, reader);
    }
    return reader;
  }

  #key(stream: StreamId, field: string, id: string): Deno.KvKey | Promise<Deno.KvKey> {
    return keyFor(
      [INGEST_PREFIX, "seen", stream.dataType, stream.platform, field],
      [INGEST_PREFIX, "seen_sha256", stream.dataType, stream.platform, field],
      id,
      field.length * 3,
    );
  }
}
