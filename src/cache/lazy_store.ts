import { CommitBatcher } from "./commit_batcher.ts";
import { type OpenKvOptions, openKvStore } from "./kv_store.ts";

/** An open store and the one group-commit writer every part of the client writes it through. */
export interface OpenedStore {
  /** The Deno.Kv store. */
  readonly kv: Deno.Kv;
  /** Commits writes of the reference cache, the CV outbox and the ingest outbox together. */
  readonly batcher: CommitBatcher;
}

/**
 * A Deno.Kv store opened on first use and closed once at exit. The reference cache and the outboxes
 * share it and its one {@link CommitBatcher}: the store has one SQLite thread, so writes from every part
 * are best committed together, with one bound on the commits in flight.
 */
export class LazyStore {
  readonly #location: string;
  readonly #options: OpenKvOptions;
  #opening: Promise<OpenedStore> | null = null;
  #closed = false;

  /** Describes the store at `location` (a path, `:memory:` or a KV Connect URL); nothing is opened yet. */
  constructor(location: string, options: OpenKvOptions = {}) {
    this.#location = location;
    this.#options = options;
  }

  /** True once {@link open} has been called (the store may still be opening). */
  get isOpen(): boolean {
    return this.#opening !== null;
  }

  /** Opens the store, or returns the store already opened; a failed open is tried again next time. */
  open(): Promise<OpenedStore> {
    if (this.#closed) return Promise.reject(new Error("the store is closed"));
    if (this.#opening === null) {
      this.#opening = openKvStore(this.#location, this.#options).then((kv) => ({
        kv,
        batcher: new CommitBatcher(kv),
      }));
      this.#opening.catch(() => {
        this.#opening = null;
      });
    }
    return this.#opening;
  }

  /** Waits for the writes queued so far, then closes the store if it was opened. */
  async close(): Promise<void> {
    this.#closed = true;
    const store = await this.#opening?.catch(() => null);
    if (!store) return;
    await store.batcher.drained();
    store.kv.close();
  }
}
