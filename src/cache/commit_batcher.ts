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

/** A write with checks: it gets a result of its own (a failed check fails only this write). */
interface CheckedWrite {
  readonly checks: Deno.AtomicCheck[];
  readonly mutations: Deno.KvMutation[];
  /** The versionstamp of the commit that held the write, or null when one of its checks failed. */
  readonly resolve: (versionstamp: string | null) => void;
  readonly reject: (error: Error) => void;
}

/**
 * The writes one atomic operation will commit. Plain writes share the group's one promise (a pipelined
 * line costs no promise of its own); checked writes keep their own results.
 */
interface Group {
  readonly mutations: Deno.KvMutation[];
  /** Mutations and checks, against {@link MAX_MUTATIONS_PER_ATOMIC}. */
  count: number;
  /** Estimated bytes, against the byte budget. */
  bytes: number;
  /** Checks, against {@link MAX_CHECKS_PER_ATOMIC}. */
  checkCount: number;
  /** The checked writes of a checked group (a group is plain or checked, never both); null for a plain one. */
  readonly checked: CheckedWrite[] | null;
  /** A single write too big for one operation: committed in order, in several. */
  readonly oversized: boolean;
  /** Plain groups: resolves with the versionstamp of the (last) commit once every mutation is committed. */
  readonly done: Promise<string> | null;
  /** `done` without the versionstamp, made once for all the plain writes of the group. */
  written: Promise<void> | null;
  readonly resolve: (versionstamp: string) => void;
  readonly reject: (error: Error) => void;
}

const NOTHING = () => {};
const NOTHING_LEFT = (): void => {};
const NO_COMMIT: Promise<string> = Promise.resolve("");
const NO_WRITE: Promise<void> = Promise.resolve();

function plainGroup(oversized: boolean): Group {
  let resolve: (versionstamp: string) => void = NOTHING;
  let reject: (error: Error) => void = NOTHING;
  const done = new Promise<string>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return {
    mutations: [],
    count: 0,
    bytes: 0,
    checkCount: 0,
    checked: null,
    oversized,
    done,
    written: null,
    resolve,
    reject,
  };
}

function checkedGroup(): Group {
  return {
    mutations: [],
    count: 0,
    bytes: 0,
    checkCount: 0,
    checked: [],
    oversized: false,
    done: null,
    written: null,
    resolve: NOTHING,
    reject: NOTHING,
  };
}

/**
 * Commits writes queued in the same turn of the event loop together, in atomic operations within both
 * Deno.Kv limits, with a few operations in flight. A write's promise resolves once all its mutations are
 * committed; writes committed together share one promise. A write too big for one atomic operation is
 * committed in order, in several (it is then not atomic: put the mutations that must not land alone
 * last). Writes in flight at the same time may land in any order: do not queue two writes to the same key
 * without awaiting the first.
 */
export class CommitBatcher {
  readonly #kv: Deno.Kv;
  readonly #maxInFlight: number;
  #queue: Group[] = [];
  #head = 0;
  /** The last queued plain group, while more writes may join it (until it starts committing). */
  #openPlain: Group | null = null;
  /** The same for checked writes. */
  #openChecked: Group | null = null;
  #inFlight = 0;
  #scheduled = false;
  #drainWaiters: (() => void)[] = [];

  /** Creates a batcher over `kv` with at most `maxInFlight` atomic operations committing at once. */
  constructor(kv: Deno.Kv, maxInFlight = 3) {
    this.#kv = kv;
    this.#maxInFlight = Math.max(1, maxInFlight);
  }

  /**
   * Queues mutations; resolves when all of them are committed. Writes that join the same commit get the
   * same promise. The array is read at once and not kept (the caller may reuse it).
   */
  write(mutations: Deno.KvMutation[]): Promise<void> {
    const group = this.#plain(mutations);
    if (group === null) return NO_WRITE;
    return group.written ??= group.done!.then(NOTHING_LEFT);
  }

  /**
   * Like {@link write}, resolving with the versionstamp of the (last) commit that held the mutations: every
   * key one commit writes gets its versionstamp.
   */
  writeStamped(mutations: Deno.KvMutation[]): Promise<string> {
    return this.#plain(mutations)?.done ?? NO_COMMIT;
  }

  /** Adds a plain write to the open group (or a new one); null for a write of nothing. */
  #plain(mutations: Deno.KvMutation[]): Group | null {
    if (mutations.length === 0) return null;
    let bytes = 0;
    for (const mutation of mutations) bytes += estimateMutationBytes(mutation);
    let group = this.#openPlain;
    if (
      group === null || group.count + mutations.length > MAX_MUTATIONS_PER_ATOMIC ||
      group.bytes + bytes > BUDGET_BYTES
    ) {
      const oversized = mutations.length > MAX_MUTATIONS_PER_ATOMIC || bytes > BUDGET_BYTES;
      group = plainGroup(oversized);
      this.#openPlain = oversized ? null : group;
      this.#push(group);
    }
    for (const mutation of mutations) group.mutations.push(mutation);
    group.count += mutations.length;
    group.bytes += bytes;
    return group;
  }

  /**
   * Queues mutations that must land only if `checks` hold (at most {@link MAX_CHECKS_PER_ATOMIC} checks
   * and {@link MAX_MUTATIONS_PER_ATOMIC} mutations and checks together); committed together with other
   * checked writes. Resolves with the versionstamp of the commit once committed (every key it wrote has
   * it), null when a check failed (nothing of this write landed). A failed check does not fail the other
   * writes of its batch: after such a failure each checked write is committed on its own.
   */
  writeChecked(checks: Deno.AtomicCheck[], mutations: Deno.KvMutation[]): Promise<string | null> {
    return new Promise((resolve, reject) => {
      const write: CheckedWrite = { checks, mutations, resolve, reject };
      let bytes = checks.length * MUTATION_OVERHEAD;
      for (const mutation of mutations) bytes += estimateMutationBytes(mutation);
      const size = checks.length + mutations.length;
      let group = this.#openChecked;
      if (
        group === null || group.count + size > MAX_MUTATIONS_PER_ATOMIC ||
        group.bytes + bytes > BUDGET_BYTES ||
        group.checkCount + checks.length > MAX_CHECKS_PER_ATOMIC
      ) {
        group = checkedGroup();
        this.#openChecked = group;
        this.#push(group);
      }
      this.#addChecked(group, write, size, bytes);
    });
  }

  #addChecked(group: Group, write: CheckedWrite, size: number, bytes: number): void {
    group.checked!.push(write);
    for (const mutation of write.mutations) group.mutations.push(mutation);
    group.count += size;
    group.bytes += bytes;
    group.checkCount += write.checks.length;
  }

  #push(group: Group): void {
    this.#queue.push(group);
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
    while (this.#inFlight < this.#maxInFlight && this.#head < this.#queue.length) {
      this.#commit(this.#queue[this.#head++]);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
      if (this.#inFlight === 0) {
        const waiters = this.#drainWaiters;
        this.#drainWaiters = [];
        for (const wake of waiters) wake();
      }
    }
  }

  #commit(group: Group): void {
    if (group === this.#openPlain) this.#openPlain = null;
    if (group === this.#openChecked) this.#openChecked = null;
    this.#inFlight++;
    const committing = group.checked !== null
      ? this.#commitChecked(group, group.checked)
      : (group.oversized ? this.#commitInChunks(group.mutations) : this.#commitOnce(group.mutations)).then(
        group.resolve,
        (error) => group.reject(error instanceof Error ? error : new Error(String(error))),
      );
    committing.finally(() => {
      this.#inFlight--;
      this.#pump();
    });
  }

  /** Commits a checked group; when a check fails, each of its writes is queued again on its own. */
  async #commitChecked(group: Group, writes: CheckedWrite[]): Promise<void> {
    const checks: Deno.AtomicCheck[] = [];
    for (const write of writes) for (const check of write.checks) checks.push(check);
    let result: Deno.KvCommitResult | Deno.KvCommitError;
    try {
      result = await this.#kv.atomic().check(...checks).mutate(...group.mutations).commit();
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      for (const write of writes) write.reject(failure);
      return;
    }
    if (result.ok) {
      for (const write of writes) write.resolve(result.versionstamp);
    } else if (writes.length === 1) {
      writes[0].resolve(null);
    } else {
      // A check of one write failed the whole operation: commit again, each checked write on its own.
      const alone = writes.map((write) => {
        const single = checkedGroup();
        this.#addChecked(single, write, write.checks.length + write.mutations.length, 0);
        return single;
      });
      this.#queue.splice(this.#head, 0, ...alone);
    }
  }

  async #commitOnce(mutations: Deno.KvMutation[]): Promise<string> {
    const result = await this.#kv.atomic().mutate(...mutations).commit();
    if (!result.ok) throw new Error("the store refused a commit");
    return result.versionstamp;
  }

  /** Commits one oversized write in order, in chunks within the limits. */
  async #commitInChunks(mutations: Deno.KvMutation[]): Promise<string> {
    const sizes = mutations.map(estimateMutationBytes);
    let versionstamp = "";
    let start = 0;
    while (start < mutations.length) {
      let end = start;
      let bytes = 0;
      while (
        end < mutations.length && end - start < MAX_MUTATIONS_PER_ATOMIC &&
        (end === start || bytes + sizes[end] <= BUDGET_BYTES)
      ) {
        bytes += sizes[end];
        end++;
      }
      versionstamp = await this.#commitOnce(mutations.slice(start, end));
      start = end;
    }
    return versionstamp;
  }
}
