/**
 * The job-data ingestion sink as one service: the configured server, the 72-hour dedupe index, and the
 * stream channels of the client's one outbox, behind the operations the commands need.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import { ClientError } from "../errors.ts";
import type { OpenedStore } from "../cache/lazy_store.ts";
import type { Outbox } from "../outbox/outbox.ts";
import type { NewOutboxEntry } from "../outbox/outbox_store.ts";
import type { RequestPolicy } from "../http/request_policy.ts";
import { type DedupeDecision, DedupeIndex, itemId } from "./dedupe_index.ts";
import { ingestChannel, IngestSender, streamOfChannel } from "./ingest_channel.ts";
import { IngestClient, type IngestServer } from "./ingest_client.ts";
import { IngestClosedError, IngestNotConfiguredError, IngestStoreError } from "./ingest_errors.ts";
import { packRows } from "./item_rows.ts";
import { DATA_TYPES, type DataType, type Platform, PLATFORMS } from "./streams.ts";

/** The knobs of the sink; tests shorten the waits. */
export interface IngestTuning {
  /** Most items per request to the ingest server. Default 100. */
  readonly batchItems: number;
  /** How long a request that is not full waits for more items. Default 50 ms. */
  readonly lingerMs: number;
  /** How long `flush_data` waits at most, unless its content says `timeout_ms`. */
  readonly flushTimeoutMs: number;
}

/**
 * The default tuning. `flush_data` waits long enough for one batch's retry schedule: a first attempt
 * that hangs for the whole request timeout, the first wait (with its jitter), and a second attempt.
 */
export function defaultIngestTuning(timeoutMs: number, retryMs = 1000): IngestTuning {
  return { batchItems: 100, lingerMs: 50, flushTimeoutMs: 2 * timeoutMs + 2 * retryMs + 1000 };
}

/** What an {@link IngestService} is built from. */
export interface IngestServiceOptions {
  /** Opens the shared store (for the dedupe index); called on first use. */
  readonly openStore: () => Promise<OpenedStore>;
  /** The client's one outbox; called on first use. */
  readonly outbox: () => Promise<Outbox>;
  /** Decides what has expired in the dedupe index. */
  readonly clock: Clock;
  /** Timeout and retries of `next_keyword` / `get_tokens`; deliveries use its timeout. */
  readonly policy: RequestPolicy;
  /** A warning for a person (stderr). */
  readonly warn: (message: string) => void;
  /** A debug log line. */
  readonly log?: (message: string) => void;
  /** Overrides of {@link defaultIngestTuning}. */
  readonly tuning?: Partial<IngestTuning>;
  /** Opens the dedupe index when it lives elsewhere than the store (a fleet's Redis); default: in the store. */
  readonly openDedupe?: () => Promise<Pick<DedupeIndex, "decide">>;
  /** Aborted at SIGTERM / SIGINT or at end of input: `flush_data` stops waiting and answers its counts. */
  readonly stop?: AbortSignal;
}

/** One `store_data` line, validated. */
export interface StoreRequest {
  /** `job` or `company`. */
  readonly dataType: DataType;
  /** `boss`, `qcwy` or `zhilian`. */
  readonly platform: Platform;
  /** The items, JSON objects. */
  readonly items: readonly Record<string, unknown>[];
  /** A field whose value identifies an item; items whose id was stored in the last 72 h are skipped. */
  readonly dedupeKey?: string;
}

/** What `store_data` answers. */
export interface StoreResult {
  /** Items written to the outbox. */
  readonly queued: number;
  /** Items skipped as duplicates. */
  readonly skipped: number;
}

/** `ingest_status` / `flush_data` content: item counts over every stream in the store. */
export interface IngestStatus {
  /** Items the ingest server accepted, over the life of the store. */
  readonly delivered: number;
  /** Items waiting in the outbox (whoever holds their lease). */
  readonly pending: number;
  /** Items kept as dead letters. */
  readonly dead: number;
  /** The last delivery failure, while items wait. */
  readonly last_error?: string;
}

interface Started {
  readonly outbox: Outbox;
  readonly dedupe: Pick<DedupeIndex, "decide">;
}

/**
 * The ingestion sink. Items are committed to the outbox before `store_data` answers and delivered in the
 * background to the server configured at the time of delivery; what is left at exit is delivered after
 * the next start, once an ingest server is configured again. The token is held in memory only.
 */
export class IngestService {
  readonly #options: IngestServiceOptions;
  readonly #tuning: IngestTuning;
  readonly #log: (message: string) => void;
  #client: IngestClient | null = null;
  #started: Promise<Started> | null = null;
  #serving = false;
  #closed = false;
  /** `store_data` lines not yet committed, `flush_data` waits not over (a status after them waits for them). */
  readonly #storing = new Set<Promise<unknown>>();
  readonly #flushing = new Set<Promise<unknown>>();

  /** Creates the service; nothing is opened or sent until it is used. */
  constructor(options: IngestServiceOptions) {
    this.#options = options;
    this.#tuning = { ...defaultIngestTuning(options.policy.timeoutMs), ...options.tuning };
    this.#log = options.log ?? (() => {});
  }

  /** The origin of the configured ingest server, or null. */
  get origin(): string | null {
    return this.#client?.origin ?? null;
  }

  /**
   * Sets the ingest server (replacing an earlier one) at once, and starts delivering to it. Rejects with an
   * `IngestServerError` naming the field when the address or token is malformed (nothing changes then),
   * with an {@link IngestStoreError} when the store cannot be opened, an {@link IngestClosedError} after
   * {@link close}.
   */
  async configure(server: IngestServer): Promise<void> {
    if (this.#closed) throw new IngestClosedError();
    this.#client = IngestClient.create(server, this.#options.policy);
    this.#log(`ingest: delivering to ${this.#client.origin}`);
    const { outbox } = await this.#start();
    if (this.#serving || this.#closed) return;
    this.#serving = true;
    for (const dataType of DATA_TYPES) {
      for (const platform of PLATFORMS) {
        const stream = { dataType, platform };
        outbox.serve(
          ingestChannel(stream),
          new IngestSender(stream, () => this.#client, {
            batchItems: Math.max(1, Math.floor(this.#tuning.batchItems)),
            lingerMs: this.#tuning.lingerMs,
            policy: this.#options.policy,
            log: this.#log,
          }),
        );
      }
    }
  }

  #start(): Promise<Started> {
    if (this.#started === null) {
      this.#started = (async () => {
        try {
          // On a fleet's Redis the index lives there, and the Deno.Kv store is not opened at all.
          const openDedupe = this.#options.openDedupe ??
            (async () => new DedupeIndex((await this.#options.openStore()).kv, this.#options.clock));
          const [dedupe, outbox] = await Promise.all([openDedupe(), this.#options.outbox()]);
          return { outbox, dedupe };
        } catch (error) {
          throw new IngestStoreError(`cannot open the store for the ingest outbox: ${describe(error)}`);
        }
      })();
      this.#started.catch(() => this.#started = null);
    }
    return this.#started;
  }

  /**
   * Queues a line's items in the outbox; resolves once they are committed. Rejects with an
   * {@link IngestNotConfiguredError} before a server is set, an {@link IngestStoreError} when the items
   * cannot be written.
   */
  store(request: StoreRequest): Promise<StoreResult> {
    if (this.#closed) return Promise.reject(new IngestClosedError());
    if (this.#client === null) return Promise.reject(new IngestNotConfiguredError());
    const { items, dedupeKey } = request;
    const texts = items.map((item) => JSON.stringify(item));
    const ids = dedupeKey === undefined ? null : items.map((item) => itemId(item, dedupeKey));
    return track(this.#storing, this.#store(request, texts, ids));
  }

  async #store(request: StoreRequest, texts: string[], ids: (string | null)[] | null): Promise<StoreResult> {
    const stream = { dataType: request.dataType, platform: request.platform };
    const { outbox, dedupe } = await this.#start();
    let decision: DedupeDecision | null = null;
    try {
      if (ids !== null) decision = await dedupe.decide(stream, request.dedupeKey!, ids);
    } catch (error) {
      if (error instanceof ClientError) throw error; // e.g. the fleet's Redis is unavailable
      throw new IngestStoreError(`could not read the dedupe marks from the store: ${describe(error)}`);
    }
    try {
      const taken = decision?.accepted;
      const accepted = taken === undefined ? texts : texts.filter((_, index) => taken[index]);
      const channel = ingestChannel(stream);
      const entries: NewOutboxEntry[] = packRows(accepted, this.#tuning.batchItems).map((row) => ({
        channel,
        key: null,
        route: "ingest",
        label: request.dataType,
        count: row.count,
        payload: row.data,
      }));
      // The marks commit with the items, after them: an id is never marked without its item.
      await outbox.enqueue(entries, decision?.marks);
      decision?.settle(true);
      return { queued: accepted.length, skipped: texts.length - accepted.length };
    } catch (error) {
      decision?.settle(false);
      throw new IngestStoreError(`could not write the items to the store: ${describe(error)}`);
    }
  }

  /**
   * Waits until everything this process queued is delivered or dead, at most `timeoutMs` (default
   * {@link IngestTuning.flushTimeoutMs}) or until the client stops, and answers the counts.
   */
  flush(timeoutMs: number = this.#tuning.flushTimeoutMs): Promise<IngestStatus> {
    if (this.#client === null) return Promise.reject(new IngestNotConfiguredError());
    return track(this.#flushing, this.#flush(timeoutMs));
  }

  async #flush(timeoutMs: number): Promise<IngestStatus> {
    const { outbox } = await this.#start();
    const deadline = this.#options.clock.now() + timeoutMs;
    await Promise.allSettled([...this.#storing]);
    await outbox.flush((channel) => streamOfChannel(channel) !== null, deadline, this.#options.stop);
    return await this.#counts(outbox);
  }

  /** The item counts of every stream in the store. */
  async status(): Promise<IngestStatus> {
    const { outbox } = await this.#start();
    await Promise.allSettled([...this.#storing, ...this.#flushing]);
    return await this.#counts(outbox);
  }

  async #counts(outbox: Outbox): Promise<IngestStatus> {
    let delivered = 0;
    let pending = 0;
    let dead = 0;
    let lastError: string | null = null;
    for (const [channel, counts] of await outbox.store.status()) {
      if (streamOfChannel(channel) === null) continue;
      delivered += counts.delivered;
      pending += counts.pending;
      dead += counts.dead;
      lastError ??= counts.lastError;
    }
    return lastError === null || pending === 0
      ? { delivered, pending, dead }
      : { delivered, pending, dead, last_error: lastError };
  }

  /** `GET /api/v1/keyword/available`: the server's JSON. */
  nextKeyword(platform?: string): Promise<unknown> {
    return this.#call((client) => client.nextKeyword(platform));
  }

  /** `GET /api/v1/token/tokens`: the server's JSON. */
  getTokens(): Promise<unknown> {
    return this.#call((client) => client.getTokens());
  }

  /** A request to the configured server; its failure is the client's `IngestApiError`, as it is. */
  async #call(request: (client: IngestClient) => Promise<unknown>): Promise<unknown> {
    const client = this.#client;
    if (client === null) throw new IngestNotConfiguredError();
    return await request(client);
  }

  /** Stops delivering job data (the outbox's shared drain happens before); the store stays open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const started = await this.#started?.catch(() => null);
    if (!started || !this.#serving) return;
    await Promise.all(
      DATA_TYPES.flatMap((dataType) =>
        PLATFORMS.map((platform) => started.outbox.unserve(ingestChannel({ dataType, platform })))
      ),
    );
  }
}

/** Keeps `work` in `set` until it settles. */
function track<T>(set: Set<Promise<unknown>>, work: Promise<T>): Promise<T> {
  set.add(work);
  const forget = () => set.delete(work);
  work.then(forget, forget);
  return work;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
