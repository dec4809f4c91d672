/** The most mutations Deno.Kv accepts in one atomic operation. */
export const MAX_MUTATIONS_PER_ATOMIC = 1000;

interface PendingWrite {
  readonly mutations: Deno.KvMutation[];
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * Group commit for Deno.Kv: writes queued in the same turn of the event loop are committed together,
 * up to {@link MAX_MUTATIONS_PER_ATOMIC} mutations per atomic operation and a few operations in flight.
 *
 * A promise from {@link write} resolves only once its mutations are committed, so an `ok` answered after
 * it means the data is in the store. One commit per line would cost ~40 times more on the store's thread.
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
    this.#maxInFlight = maxInFlight;
  }

  /** Queues mutations that must commit together; resolves when they are committed. */
  write(mutations: Deno.KvMutation[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ mutations, resolve, reject });
      this.#schedule();
    });
  }

  /** Resolves once nothing is queued or committing. */
  drained(): Promise<void> {
    if (this.#queued === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  get #queued(): number {
    return this.#queue.length - this.#head;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#queued > 0) {
      this.#commitNext();
    }
    if (this.#queued === 0 && this.#inFlight === 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  #commitNext(): void {
    const batch: PendingWrite[] = [];
    const mutations: Deno.KvMutation[] = [];
    while (this.#queued > 0) {
      const next = this.#queue[this.#head];
      if (mutations.length > 0 && mutations.length + next.mutations.length > MAX_MUTATIONS_PER_ATOMIC) break;
      this.#head++;
      batch.push(next);
      for (const mutation of next.mutations) mutations.push(mutation);
    }
    if (this.#queued === 0) {
      this.#queue = [];
      this.#head = 0;
    }
    this.#inFlight++;
    this.#commitInChunks(mutations).then(
      () => {
        for (const write of batch) write.resolve();
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

  /** Commits; a single write larger than one atomic operation is split (it is then not atomic). */
  async #commitInChunks(mutations: Deno.KvMutation[]): Promise<void> {
    for (let start = 0; start < mutations.length; start += MAX_MUTATIONS_PER_ATOMIC) {
      const chunk = mutations.slice(start, start + MAX_MUTATIONS_PER_ATOMIC);
      const result = await this.#kv.atomic().mutate(...chunk).commit();
      if (!result.ok) throw new Error("the store refused a commit");
    }
  }
}
