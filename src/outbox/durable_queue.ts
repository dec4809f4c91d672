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
  #pendingRemovalCount = 0;
  /** Entries put minus entries removed by this process since it was created. */
  #delta = 0;
  /** The rows counted by the first {@link size} call, less the changes made before it. */
  #baseline: Promise<number> | null = null;
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

  /**
   * Queues payloads, each on its channel, in one group commit. The entries (with their new ids) are known
   * at once, so their delivery can start before `committed` settles.
   */
  put(
    items: readonly { channel: string; payload: string }[],
  ): { entries: QueuedEntry[]; committed: Promise<void> } {
    const entries: QueuedEntry[] = [];
    const mutations: Deno.KvMutation[] = [];
    for (const { channel, payload } of items) {
      const entry = this.#putMutations(channel, this.newId(), payload, mutations);
      entries.push(entry);
    }
    const committed = this.#batcher.write(mutations).then(() => {
      this.#delta += items.length;
    });
    return { entries, committed };
  }

  /** Adds the mutations that store `payload` under `id` to `mutations`; returns the entry. */
  #putMutations(channel: string, id: string, payload: string, mutations: Deno.KvMutation[]): QueuedEntry {
    if (payload.length <= PART_CHARS) {
      mutations.push({ type: "set", key: [this.#prefix, channel, id], value: payload });
      return { id, payload, parts: 0 };
    }
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
    return { id, payload, parts: index };
  }

  /**
   * How many entries wait in this queue (all channels). The rows are counted once, on the first call;
   * after that the count follows this process's puts and removals (another process sharing the store is
   * not seen until the next run).
   */
  async size(): Promise<number> {
    this.#baseline ??= (async () => {
      const deltaBefore = this.#delta;
      let rows = 0;
      for await (const _ of this.#kv.list({ prefix: [this.#prefix] }, { batchSize: 1000 })) rows++;
      return rows - deltaBefore; // the scan saw the changes made so far; #delta keeps counting them
    })();
    return Math.max(0, (await this.#baseline) + this.#delta);
  }

  /**
   * Removes an entry and its `parts` part rows; resolves once committed. Removals within
   * {@link REMOVAL_DELAY_MS} are committed together, and no row is read first.
   */
  remove(channel: string, id: string, parts: number): Promise<void> {
    for (const mutation of this.#removeMutations(channel, id, parts)) this.#pendingRemovals.push(mutation);
    this.#pendingRemovalCount++;
    this.#removalsCommitted ??= new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        const mutations = this.#pendingRemovals;
        const count = this.#pendingRemovalCount;
        this.#pendingRemovals = [];
        this.#pendingRemovalCount = 0;
        this.#removalsCommitted = null;
        this.#batcher.write(mutations).then(() => {
          this.#delta -= count;
          resolve();
        }, reject);
      }, REMOVAL_DELAY_MS);
    });
    return this.#removalsCommitted;
  }

  /** Moves an entry to another queue (the dead letters: kept, never dropped), in one commit. */
  async moveTo(target: DurableQueue, channel: string, entry: QueuedEntry): Promise<void> {
    const mutations: Deno.KvMutation[] = [];
    target.#putMutations(channel, entry.id, entry.payload, mutations);
    mutations.push(...this.#removeMutations(channel, entry.id, entry.parts));
    await this.#batcher.write(mutations);
    this.#delta--;
    target.#delta++;
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
