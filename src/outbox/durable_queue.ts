import type { CommitBatcher } from "../cache/commit_batcher.ts";
import { getManyChunked } from "../cache/kv_reads.ts";

/** One payload waiting in a {@link DurableQueue}. */
export interface QueuedEntry {
  /** Sortable id: entries come back oldest first. */
  readonly id: string;
  /** The JSON text that was queued. */
  readonly payload: string;
  /** How many extra part rows hold the payload (0 when it fits one value). */
  readonly parts: number;
}

/** Deno.Kv values are limited to 64 KiB; JSON text is split into parts of at most this many UTF-16 units. */
const PART_CHARS = 20_000;
/**
 * Removals of delivered entries wait this long to be committed together. They are not on any answer's path,
 * and committing them at once would queue them on the store's one thread in front of the cache write of the
 * next matched CV (measured: send_cv to 3 servers took ~0.8 ms longer). The cost: a crash within this window
 * delivers those entries once more after the restart.
 */
const REMOVAL_DELAY_MS = 20;

/**
 * A durable FIFO of JSON payloads per channel on Deno.Kv (the outbox of CVs for mirror servers).
 *
 * Layout: `[prefix, channel, id] → string` for a payload that fits one value, or `{parts: n}` plus
 * `[prefix + "_part", channel, id, i] → string` for a larger one. Ids sort by time, so listing a
 * channel gives its entries oldest first. Writes go through the shared {@link CommitBatcher}, so an
 * entry queued while the scraper pipelines is committed with its neighbours.
 */
export class DurableQueue {
  readonly #kv: Deno.Kv;
  readonly #batcher: CommitBatcher;
  readonly #prefix: string;
  #lastTime = 0;
  #sequence = 0;
  #pendingRemovals: Deno.KvMutation[] = [];
  #removalsCommitted: Promise<void> | null = null;

  /** Creates a queue stored under `prefix` (e.g. `"cv_outbox"`). */
  constructor(kv: Deno.Kv, batcher: CommitBatcher, prefix: string) {
    this.#kv = kv;
    this.#batcher = batcher;
    this.#prefix = prefix;
  }

  /** A new id, later than every id this process made before. */
  newId(): string {
    const now = Date.now();
    if (now === this.#lastTime) {
      this.#sequence++;
    } else {
      this.#lastTime = now;
      this.#sequence = 0;
    }
    const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
    return `${now.toString().padStart(15, "0")}-${this.#sequence.toString().padStart(6, "0")}-${random}`;
  }

  /** The mutations that store `payload` under `id`: for a caller that commits several entries at once. */
  putMutations(channel: string, id: string, payload: string): Deno.KvMutation[] {
    if (payload.length <= PART_CHARS) {
      return [{ type: "set", key: [this.#prefix, channel, id], value: payload }];
    }
    const mutations: Deno.KvMutation[] = [];
    let index = 0;
    let start = 0;
    while (start < payload.length) {
      let end = Math.min(start + PART_CHARS, payload.length);
      if (end < payload.length && isHighSurrogate(payload.charCodeAt(end - 1))) end--; // keep pairs whole
      mutations.push({
        type: "set",
        key: [this.#prefix + "_part", channel, id, index],
        value: payload.slice(start, end),
      });
      start = end;
      index++;
    }
    mutations.push({ type: "set", key: [this.#prefix, channel, id], value: { parts: index } });
    return mutations;
  }

  /** Commits mutations built by {@link putMutations} (one group commit). */
  commit(mutations: Deno.KvMutation[]): Promise<void> {
    return this.#batcher.write(mutations);
  }

  /** How many part rows {@link putMutations} made (0 when the payload fits one value). */
  static partsIn(mutations: readonly Deno.KvMutation[]): number {
    return mutations.length > 1 ? mutations.length - 1 : 0;
  }

  /**
   * Removes an entry and its `parts` part rows; resolves once committed. Removals within
   * {@link REMOVAL_DELAY_MS} are committed together, and no row is read first.
   */
  remove(channel: string, id: string, parts: number): Promise<void> {
    for (const mutation of this.#removeMutations(channel, id, parts)) this.#pendingRemovals.push(mutation);
    this.#removalsCommitted ??= new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        const mutations = this.#pendingRemovals;
        this.#pendingRemovals = [];
        this.#removalsCommitted = null;
        this.#batcher.write(mutations).then(resolve, reject);
      }, REMOVAL_DELAY_MS);
    });
    return this.#removalsCommitted;
  }

  /** Moves an entry to another queue (the dead letters: kept, never dropped), in one commit. */
  moveTo(target: DurableQueue, channel: string, entry: QueuedEntry): Promise<void> {
    const mutations = target.putMutations(channel, entry.id, entry.payload);
    return this.#batcher.write([...mutations, ...this.#removeMutations(channel, entry.id, entry.parts)]);
  }

  #removeMutations(channel: string, id: string, parts: number): Deno.KvMutation[] {
    const mutations: Deno.KvMutation[] = [{ type: "delete", key: [this.#prefix, channel, id] }];
    for (let index = 0; index < parts; index++) {
      mutations.push({ type: "delete", key: [this.#prefix + "_part", channel, id, index] });
    }
    return mutations;
  }

  /** Up to `limit` entries of `channel`, oldest first, skipping ids in `exclude`. */
  async list(
    channel: string,
    limit: number,
    exclude: ReadonlySet<string> = new Set(),
  ): Promise<QueuedEntry[]> {
    const entries: QueuedEntry[] = [];
    for await (const row of this.#kv.list<unknown>({ prefix: [this.#prefix, channel] })) {
      const id = String(row.key[2]);
      if (exclude.has(id)) continue;
      const payload = await this.#payloadOf(channel, id, row.value);
      if (payload !== null) entries.push({ id, payload, parts: partsOf(row.value) });
      if (entries.length >= limit) break;
    }
    return entries;
  }

  /** How many entries wait, per channel. */
  async countByChannel(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for await (const row of this.#kv.list({ prefix: [this.#prefix] })) {
      const channel = String(row.key[1]);
      counts.set(channel, (counts.get(channel) ?? 0) + 1);
    }
    return counts;
  }

  async #payloadOf(channel: string, id: string, value: unknown): Promise<string | null> {
    if (typeof value === "string") return value;
    const parts = partsOf(value);
    if (parts === 0) return null;
    const keys: Deno.KvKey[] = [];
    for (let index = 0; index < parts; index++) keys.push([this.#prefix + "_part", channel, id, index]);
    let text = "";
    for (const row of await getManyChunked<string>(this.#kv, keys)) {
      if (typeof row.value !== "string") return null; // a part is missing: the write was not atomic
      text += row.value;
    }
    return text;
  }
}

function partsOf(value: unknown): number {
  if (value !== null && typeof value === "object" && "parts" in value) {
    const parts = (value as { parts: unknown }).parts;
    if (typeof parts === "number" && Number.isInteger(parts) && parts > 0) return parts;
  }
  return 0;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
