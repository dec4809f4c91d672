import type { DurableQueue, QueuedEntry } from "../outbox/durable_queue.ts";
import type { RtcvApiClient } from "./api_client.ts";
import { RtcvApiError } from "./api_client.ts";
import { decodeOutboxPayload, deliverTo, type OutboxDelivery } from "./outbox_route.ts";
import { abortableSleep, withDeadline } from "../http/request_policy.ts";

/** What a {@link MirrorDelivery} reports and how long it waits between background rounds. */
export interface MirrorDeliveryOptions {
  /** The CVs waiting for this mirror (keyed by the mirror's location). */
  readonly outbox: DurableQueue;
  /** Where CVs the mirror refuses for good (a 4xx other than 408/429) are kept. */
  readonly deadLetters: DurableQueue;
  /** The first wait after a failed background round; it doubles up to {@link maxRetryDelayMs}. */
  readonly retryDelayMs: number;
  /** The longest wait between background rounds. */
  readonly maxRetryDelayMs: number;
  /** Debug log lines. */
  readonly log: (message: string) => void;
  /** Told about every delivery attempt's outcome (metrics). */
  readonly onResult?: (delivered: boolean) => void;
}

/**
 * Delivers CVs to one mirror (a non-primary server) without ever holding up the scraper.
 *
 * Every CV for the mirror is written to the durable outbox before `send_cv` answers, and sent at once;
 * a success removes it, a failure leaves it for the background loop, which retries with backoff while
 * the process runs and resumes after a restart when credentials name the same server again.
 */
export class MirrorDelivery {
  readonly #client: RtcvApiClient;
  readonly #options: MirrorDeliveryOptions;
  readonly #stop = new AbortController();
  readonly #live = new Map<string, Promise<void>>();
  #background: Promise<void> | null = null;
  #failures = 0;

  /** Delivers to the mirror behind `client`. */
  constructor(client: RtcvApiClient, options: MirrorDeliveryOptions) {
    this.#client = client;
    this.#options = options;
  }

  /** The outbox channel of this mirror: its location (never its key). */
  get channel(): string {
    return this.#client.baseUrl;
  }

  /** The mirror's origin, for messages. */
  get origin(): string {
    return this.#client.origin;
  }

  /** Sends a CV (or list) now; `queued` settles when its outbox entry is committed. Never throws. */
  sendNow(entry: QueuedEntry, delivery: OutboxDelivery, queued: Promise<void>): void {
    const attempt = this.#deliver(entry, delivery, queued).catch((error) => this.#logFailure(entry.id, error))
      .finally(() => this.#live.delete(entry.id));
    this.#live.set(entry.id, attempt);
  }

  /** Starts the background loop if it is not running (after a failure, or at start-up for old entries). */
  resume(): void {
    if (this.#background !== null || this.#stop.signal.aborted) return;
    this.#background = this.#runBackground().catch((error) => this.#logFailure("background", error))
      .finally(() => {
        this.#background = null;
      });
  }

  /**
   * Waits up to `budgetMs` for CVs in flight and in the outbox to be delivered, then stops. What is
   * left stays in the outbox for the next start.
   */
  async close(budgetMs: number): Promise<void> {
    const everything = (async () => {
      await Promise.allSettled([...this.#live.values()]);
      if (budgetMs > 0 && this.#failures === 0) this.resume(); // one last round for older entries
      await this.#background;
    })();
    await withDeadline(everything, Date.now() + budgetMs);
    this.#stop.abort();
    await Promise.allSettled([...this.#live.values(), this.#background]);
  }

  /** The store failed under a delivery (closed, full): the entry stays in the outbox for the next round. */
  #logFailure(what: string, error: unknown): void {
    this.#options.log(
      `outbox: ${what} for mirror ${this.origin} stopped: ${error instanceof Error ? error.message : error}`,
    );
  }

  /** One delivery; on success the entry is removed, on a permanent refusal it becomes a dead letter. */
  async #deliver(entry: QueuedEntry, delivery: OutboxDelivery, queued: Promise<void>): Promise<void> {
    const { outbox, deadLetters, log } = this.#options;
    const id = entry.id;
    try {
      await deliverTo(this.#client, delivery, this.#stop.signal);
      await queued;
      await outbox.remove(this.channel, id, entry.parts);
      this.#failures = 0;
      this.#options.onResult?.(true);
      log(`outbox: delivered ${id} to mirror ${this.origin}`);
    } catch (error) {
      if (this.#stop.signal.aborted) return;
      this.#options.onResult?.(false);
      const reason = error instanceof Error ? error.message : String(error);
      if (error instanceof RtcvApiError && !error.retryable) {
        await queued.catch(() => {});
        await outbox.moveTo(deadLetters, this.channel, entry);
        log(`outbox: mirror refused ${id} for good, kept as a dead letter: ${reason}`);
        return;
      }
      this.#failures++;
      log(`outbox: mirror delivery of ${id} failed, will retry in the background: ${reason}`);
      queued.then(() => this.resume(), () => {});
    }
  }

  async #runBackground(): Promise<void> {
    const { outbox, retryDelayMs, maxRetryDelayMs } = this.#options;
    while (!this.#stop.signal.aborted) {
      if (this.#failures > 0) {
        const delay = Math.min(retryDelayMs * 2 ** (this.#failures - 1), maxRetryDelayMs);
        try {
          await abortableSleep(delay, this.#stop.signal);
        } catch {
          return;
        }
      }
      const entries = await outbox.list(this.channel, 50, new Set(this.#live.keys()));
      if (entries.length === 0) return;
      for (const entry of entries) {
        if (this.#stop.signal.aborted) return;
        if (this.#live.has(entry.id)) continue; // sent live meanwhile
        const failuresBefore = this.#failures;
        const attempt = this.#deliver(entry, decodeOutboxPayload(entry.payload), Promise.resolve())
          .catch((error) => this.#logFailure(entry.id, error));
        this.#live.set(entry.id, attempt);
        await attempt.finally(() => this.#live.delete(entry.id));
        if (this.#failures > failuresBefore) break; // the mirror is still down: back off
      }
    }
  }
}
