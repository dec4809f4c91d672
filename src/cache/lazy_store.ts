import { type OpenKvOptions, openKvStore } from "./kv_store.ts";

/**
 * A Deno.Kv store opened on first use and closed once at exit. The reference cache and the outboxes
 * share it, so there is one file and one SQLite thread.
 */
export class LazyStore {
  readonly #location: string;
  readonly #options: OpenKvOptions;
  #opening: Promise<Deno.Kv> | null = null;
  #closed = false;

  /** Describes the store at `location` (a path, `:memory:` or a KV Connect URL); nothing is opened yet. */
  constructor(location: string, options: OpenKvOptions = {}) {
    this.#location = location;
    this.#options = options;
  }

  /** Where the store lives, as configured. */
  get location(): string {
    return this.#location;
  }

  /** True once {@link open} has been called (the store may still be opening). */
  get isOpen(): boolean {
    return this.#opening !== null;
  }

  /** Opens the store, or returns the store already opened; a failed open is tried again next time. */
  open(): Promise<Deno.Kv> {
    if (this.#closed) return Promise.reject(new Error("the store is closed"));
    if (this.#opening === null) {
      this.#opening = openKvStore(this.#location, this.#options);
      this.#opening.catch(() => {
        this.#opening = null;
      });
    }
    return this.#opening;
  }

  /** Closes the store if it was opened. */
  async close(): Promise<void> {
    this.#closed = true;
    const kv = await this.#opening?.catch(() => null);
    kv?.close();
  }
}
