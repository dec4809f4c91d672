import type { CachedReferences } from "../cache/cached_references.ts";
import { ClientError } from "../errors.ts";
import type { RtcvBackend } from "./backend.ts";

/** A command needs a backend before `set_credentials` or `set_mock` installed one; the message says so. */
export class NoSessionError extends ClientError {
  override name = "NoSessionError";
  /** The message every such command answers. */
  constructor() {
    super(
      "no RT-CV server is set: call set_credentials first (or set_mock to try things out without a server)",
    );
  }
}

/** Opens a reference cache on first use. */
export type CacheOpener = () => Promise<CachedReferences>;

/**
 * The state one scraper session builds up: which backend (live servers or mock) is active, and the
 * persistent reference cache, opened on first use so a mock session never touches the store.
 */
export class Session {
  #backend: RtcvBackend | null = null;
  readonly #openPersistent: CacheOpener;
  #persistent: Promise<CachedReferences> | null = null;
  #persistentOpened: CachedReferences | null = null;
  readonly #sending = new Map<string, Promise<unknown>>();

  /** `openPersistent` opens the store named by `RTCV_SCRAPER_CLIENT_KV` (or the default file). */
  constructor(openPersistent: CacheOpener) {
    this.#openPersistent = openPersistent;
  }

  /** The active backend; throws {@link NoSessionError} before credentials or mock mode are set. */
  get backend(): RtcvBackend {
    if (this.#backend === null) throw new NoSessionError();
    return this.#backend;
  }

  /** The active backend, or null before credentials or mock mode are set. */
  get currentBackend(): RtcvBackend | null {
    return this.#backend;
  }

  /**
   * Installs a new backend. The previous one stops at once (no drain: what it had not delivered stays in
   * the outbox), and only then does the new one start its background work, so two backends never
   * deliver the same outbox entries.
   */
  async replaceBackend(backend: RtcvBackend): Promise<void> {
    const previous = this.#backend;
    this.#backend = backend;
    if (previous && previous !== backend) await previous.close({ drainMs: 0 });
    backend.start();
  }

  /** The persistent reference cache (opened on first call). */
  persistentCache(): Promise<CachedReferences> {
    if (this.#persistent === null) {
      this.#persistent = this.#openPersistent();
      this.#persistent.then((cache) => {
        this.#persistentOpened = cache;
      }, () => {
        this.#persistent = null; // let a later command try again
      });
    }
    return this.#persistent;
  }

  /**
   * The cache that the cache commands use now: the mock's in mock mode, else the persistent one. It is
   * returned directly once open, so a pipelined write reaches the cache before the commands after it.
   */
  cacheForCommands(): CachedReferences | Promise<CachedReferences> {
    if (this.#backend?.kind === "mock") return this.#backend.references;
    return this.#persistentOpened ?? this.persistentCache();
  }

  /**
   * Runs `send` for a reference number once no other send of it is in flight, so a CV pipelined twice
   * is sent once, and cache questions about it wait for the answer (see {@link sendSettled}).
   */
  async sendOnce<T>(reference: string, send: () => Promise<T>): Promise<T> {
    while (this.#sending.has(reference)) await this.sendSettled(reference);
    const attempt = send();
    this.#sending.set(reference, attempt);
    try {
      return await attempt;
    } finally {
      if (this.#sending.get(reference) === attempt) this.#sending.delete(reference);
    }
  }

  /** Resolves once no send of `reference` is in flight (at once when none is). */
  async sendSettled(reference: string): Promise<void> {
    const inFlight = this.#sending.get(reference);
    if (inFlight) await inFlight.catch(() => {});
  }

  /** True while a CV with this reference number is being sent. */
  isSending(reference: string): boolean {
    return this.#sending.size !== 0 && this.#sending.has(reference);
  }

  /** Closes the backend, giving its background deliveries their drain budget (the store closes after). */
  async close(): Promise<void> {
    await this.#backend?.close();
  }
}
