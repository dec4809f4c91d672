/**
 * Group commit for Deno.Kv that respects both limits of an atomic operation: 1000 mutations and
 * 819,200 bytes of keys and values. Writes queued in the same turn of the event loop are committed
 * together, so an `ok` answered after a write's promise means the data is in the store, while pipelined
 * lines cost one commit per batch instead of one per line (about 40 times less store time).
 *
 * Packing by mutation count alone is not enough: a dozen outbox rows of up to 64 KiB in one atomic
 * operation would be refused ("Total mutation size too large"), failing every write in it.
 *
 * @module
 */

/** The most mutations Deno.Kv accepts in one atomic operation. */
export const MAX_MUTATIONS_PER_ATOMIC = 1000;
/** The most checks Deno.Kv accepts in one atomic operation. */
export const MAX_CHECKS_PER_ATOMIC = 100;
/** The most bytes of keys and values Deno.Kv accepts in one atomic operation. */
export const MAX_ATOMIC_BYTES = 819_200;
/** What one commit is packed up to; the estimate below errs high, this leaves room on top. */
const BUDGET_BYTES = 760_000;
/** Bytes counted per mutation besides its key and value (measured: about 30). */
const MUTATION_OVERHEAD = 64;

/**
 * A generous estimate of the bytes a mutation counts against {@link MAX_ATOMIC_BYTES}: strings count two
 * bytes per UTF-16 unit (V8 may store them that way), key strings three (UTF-8).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { estimateMutationBytes } from "./commit_batcher.ts";
 * const bytes = estimateMutationBytes({ type: "set", key: ["a"], value: new Uint8Array(1000) });
 * assert.ok(bytes >= 1000 && bytes < 1200);
 * ```
 */
export function estimateMutationBytes(mutation: Deno.KvMutation): number {
  let bytes = MUTATION_OVERHEAD;
  for (const part of mutation.key) bytes += keyPartBytes(part);
  if ("value" in mutation) bytes += valueBytes(mutation.value, 0);
  return bytes;
}

function keyPartBytes(part: Deno.KvKeyPart): number {
  if (typeof part === "string") return part.length * 3 + 4;
  if (part instanceof Uint8Array) return part.byteLength * 2 + 4;
  return 12;
}

function valueBytes(value: unknown, depth: number): number {
  if (typeof value === "string") return value.length * 2 + 16;
  if (value instanceof Uint8Array) return value.byteLength + 16;
  if (value === null || typeof value !== "object") return 16;
  if (value instanceof Deno.KvU64) return 16;
  if (depth > 8) return 1024;
  let bytes = 16;
  if (Array.isArray(value)) {
    for (const entry of value) bytes += valueBytes(entry, depth + 1) + 4;
    return bytes;
  }
  for (const [name, entry] of Object.entries(value)) {
    bytes += name.length * 2 + 8 + valueBytes(entry, depth + 1);
  }
  return bytes;
}

interface PendingWrite {
  readonly mutations: Deno.KvMutation[];
  /** Checks that must hold for the mutations to land (a checked write); empty for a plain one. */
  readonly checks: Deno.AtomicCheck[];
  readonly bytes: number[];
  readonly total: number;
  /** Resolves with the commit's versionstamp, or null when a check failed (the mutations did not land). */
  readonly resolve: (versionstamp: string | null) => void;
  readonly reject: (error: Error) => void;
  /** Set after a shared commit failed on a check: commit this checked write in its own operation. */
  alone: boolean;
}

/**
 * Commits writes queued in the same turn of the event loop together, in atomic operations within both
 * Deno.Kv limits, with a few operations in flight. A write's promise resolves once all its mutations are
 * committed. A write too big for one atomic operation is committed in order, in several (it is then not
 * atomic: put the mutations that must not land alone last). Writes in flight at the same time may land in
 * any order: do not queue two writes to the same key without awaiting the first.
 */
export class CommitBatcher {
  readonly #kv: Deno.Kv;
  readonly #maxInFlight: number;
  #queue: PendingWrite[] = [];
  #head = 0;
  #inFlight = 0;
  #scheduled = false;
  #drainWaiters: (() => void)[] = [];

  /** Creates a batcher over `kv` with at most `maxInFlight` atomic operations committing at once. */
  constructor(kv: Deno.Kv, maxInFlight = 3) {
    this.#kv = kv;
    this.#maxInFlight = Math.max(1, maxInFlight);
  }

  /** Queues mutations; resolves when all of them are committed. */
  write(mutations: Deno.KvMutation[]): Promise<void> {
    if (mutations.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.#enqueue(mutations, [], () => resolve(), reject));
  }

  /**
   * Like {@link write}, resolving with the versionstamp of the (last) commit that held the mutations: every
   * key one commit writes gets its versionstamp.
   */
  writeStamped(mutations: Deno.KvMutation[]): Promise<string> {
    if (mutations.length === 0) return Promise.resolve("");
    return new Promise((resolve, reject) =>
      this.#enqueue(mutations, [], (versionstamp) => resolve(versionstamp ?? ""), reject)
    );
  }

  /**
   * Queues mutations that must land only if `checks` hold (at most {@link MAX_CHECKS_PER_ATOMIC} checks
   * and {@link MAX_MUTATIONS_PER_ATOMIC} mutations and checks together); committed together with other writes like any write. Resolves with
   * true once committed, false when a check failed (nothing of this write landed). A failed check does not
   * fail the other writes of its batch: after such a failure each checked write is committed on its own.
   */
  writeChecked(checks: Deno.AtomicCheck[], mutations: Deno.KvMutation[]): Promise<boolean> {
    return new Promise((resolve, reject) =>
      this.#enqueue(mutations, checks, (versionstamp) => resolve(versionstamp !== null), reject)
    );
  }

  #enqueue(
    mutations: Deno.KvMutation[],
    checks: Deno.AtomicCheck[],
    resolve: (versionstamp: string | null) => void,
    reject: (error: Error) => void,
  ): void {
    const bytes = mutations.map(estimateMutationBytes);
    let total = checks.length * MUTATION_OVERHEAD;
    for (const size of bytes) total += size;
    this.#queue.push({ mutations, checks, bytes, total, resolve, reject, alone: false });
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#onScheduled);
  }

  readonly #onScheduled = () => {
    this.#scheduled = false;
    this.#pump();
  };

  /** Resolves once nothing is queued or committing. */
  drained(): Promise<void> {
    if (this.#queue.length === this.#head && this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#head < this.#queue.length) this.#commitNext();
    if (this.#head === this.#queue.length && this.#inFlight === 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  #commitNext(): void {
    const batch: PendingWrite[] = [];
    let count = 0;
    let checks = 0;
    let bytes = 0;
    while (this.#head < this.#queue.length) {
      const next = this.#queue[this.#head];
      const size = next.mutations.length + next.checks.length;
      const fits = count + size <= MAX_MUTATIONS_PER_ATOMIC && bytes + next.total <= BUDGET_BYTES &&
        checks + next.checks.length <= MAX_CHECKS_PER_ATOMIC && !next.alone;
      if (batch.length > 0 && !fits) break;
      this.#head++;
      batch.push(next);
      count += size;
      checks += next.checks.length;
      bytes += next.total;
      if (next.alone) break;
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
    this.#inFlight++;
    const oversized = batch.length === 1 && batch[0].checks.length === 0 &&
      (count > MAX_MUTATIONS_PER_ATOMIC || bytes > BUDGET_BYTES);
    const commit = oversized ? this.#commitInChunks(batch[0]) : this.#commitBatch(batch);
    commit.then(
      (versionstamp) => {
        if (versionstamp !== null) {
          for (const write of batch) write.resolve(versionstamp);
        } else if (batch.length === 1 && batch[0].checks.length > 0) {
          batch[0].resolve(null);
        } else {
          // A check of one write failed the whole operation: commit again, each checked write on its own.
          for (const write of batch) write.alone = write.checks.length > 0;
          this.#queue.splice(this.#head, 0, ...batch);
        }
      },
      (error) => {
        const failure = error instanceof Error ? error : new Error(String(error));
        for (const write of batch) write.reject(failure);
      },
    ).finally(() => {
      this.#inFlight--;
      this.#pump();
    });
  }

  /** Commits a batch in one operation: its versionstamp, or null when one of its checks failed. */
  async #commitBatch(batch: PendingWrite[]): Promise<string | null> {
    if (batch.every((write) => write.checks.length === 0)) {
      return await this.#commitOnce(batch.flatMap((write) => write.mutations));
    }
    const checks: Deno.AtomicCheck[] = [];
    const mutations: Deno.KvMutation[] = [];
    for (const write of batch) {
      for (const check of write.checks) checks.push(check);
      for (const mutation of write.mutations) mutations.push(mutation);
    }
    const result = await this.#kv.atomic().check(...checks).mutate(...mutations).commit();
    return result.ok ? result.versionstamp : null;
  }

  async #commitOnce(mutations: Deno.KvMutation[]): Promise<string> {
    const result = await this.#kv.atomic().mutate(...mutations).commit();
    if (!result.ok) throw new Error("the store refused a commit");
    return result.versionstamp;
  }

  /** Commits one oversized write in order, in chunks within the limits. */
  async #commitInChunks(write: PendingWrite): Promise<string> {
    let start = 0;
    let versionstamp = "";
    while (start < write.mutations.length) {
      let end = start;
      let bytes = 0;
      while (
        end < write.mutations.length && end - start < MAX_MUTATIONS_PER_ATOMIC &&
        (end === start || bytes + write.bytes[end] <= BUDGET_BYTES)
      ) {
        bytes += write.bytes[end];
        end++;
      }
      versionstamp = await this.#commitOnce(write.mutations.slice(start, end));
      start = end;
    }
    return versionstamp;
  }
}
