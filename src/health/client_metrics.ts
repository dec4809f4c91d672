import { type Counter, type Gauge, type Histogram, MetricsRegistry } from "./metrics.ts";
import type { OutboxCount } from "../outbox/outbox_status.ts";

/**
 * Bucket bounds (seconds) of the request duration histogram: 10 ms up to the 20 s default timeout and more.
 *
 * @example
 * ```ts
 * import { REQUEST_DURATION_BUCKETS } from "./client_metrics.ts";
 * console.assert(REQUEST_DURATION_BUCKETS.includes(20));
 * ```
 */
export const REQUEST_DURATION_BUCKETS: readonly number[] = [
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  20,
  30,
];

/**
 * How the metrics are built; everything has a default.
 *
 * @example
 * ```ts
 * import { ClientMetrics } from "./client_metrics.ts";
 * let now = 0;
 * const metrics = new ClientMetrics({ now: () => now });
 * now = 1500;
 * console.assert(metrics.uptimeSeconds() === 1.5);
 * ```
 */
export interface ClientMetricsOptions {
  /** Milliseconds now, for the uptime; default `Date.now`. */
  readonly now?: () => number;
}

/**
 * The request hooks of `RequestPolicy` that feed the retry and duration metrics.
 *
 * @example
 * ```ts
 * import { ClientMetrics, type RequestMetricHooks } from "./client_metrics.ts";
 * const hooks: RequestMetricHooks = new ClientMetrics().requestHooks();
 * hooks.onRequest({ origin: "https://rtcv.example.com", ms: 120 });
 * ```
 */
export interface RequestMetricHooks {
  /** Counts a retry of a request to `origin`. */
  onRetry(info: { origin: string }): void;
  /** Records how long one attempt to `origin` took. */
  onRequest(info: { origin: string; ms: number }): void;
}

/**
 * The metrics of one client process, served on `GET /metrics` of the health server:
 *
 * - `rtcv_scraper_client_commands_total{type,result}`: answered input lines; `result` is `ok` or `error`
 *   (`pong` counts as `ok`); `type` is the command type, or `(line)` / `(unknown)` as the command registry
 *   names lines without a known type, so the label set stays small.
 * - `rtcv_scraper_client_cv_sent_total{server,result}`: CVs posted to each server (origin), `ok` or `error`.
 * - `rtcv_scraper_client_retries_total{server}`: HTTP retries.
 * - `rtcv_scraper_client_request_duration_seconds{server}`: a histogram of HTTP attempt durations.
 * - `rtcv_scraper_client_outbox_size`: items waiting in the durable outbox, all servers and streams.
 * - `rtcv_scraper_client_outbox_items{kind,target,state}`: per server (`kind="cv"`, the origin) and ingest
 *   stream (`kind="ingest"`, e.g. `job/boss`), `state` `pending` or `dead`.
 * - `rtcv_scraper_client_cache_lookups_total{result}`: reference cache lookups, `hit` or `miss`.
 * - `rtcv_scraper_client_cache_entries`: reference numbers this process cached or found cached, when a
 *   callback is set (counting a shared store of millions per scrape would load it).
 * - `rtcv_scraper_client_uptime_seconds`: seconds since the metrics were created.
 *
 * Server labels are origins (`https://rtcv.example.com`), never keys.
 *
 * @example
 * ```ts
 * import { ClientMetrics } from "./client_metrics.ts";
 * const metrics = new ClientMetrics();
 * metrics.commandAnswered("send_cv", "ok");
 * metrics.cvSent("https://rtcv.example.com", true);
 * metrics.setOutboxSize(() => 0);
 * const text = await metrics.render();
 * // rtcv_scraper_client_commands_total{type="send_cv",result="ok"} 1
 * ```
 */
export class ClientMetrics {
  /** The registry holding these metrics (add more to it if needed; render renders them all). */
  readonly registry: MetricsRegistry = new MetricsRegistry();
  readonly #commands: Counter;
  readonly #cvSent: Counter;
  readonly #retries: Counter;
  readonly #requestDuration: Histogram;
  readonly #outboxSize: Gauge;
  readonly #outboxItems: Gauge;
  #readOutbox: (() => Promise<OutboxCount[]>) | null = null;
  readonly #cacheLookups: Counter;
  readonly #cacheEntries: Gauge;
  readonly #now: () => number;
  readonly #startedAt: number;

  /** Creates the metrics; the uptime counts from now. */
  constructor(options: ClientMetricsOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#startedAt = this.#now();
    const r = this.registry;
    this.#commands = r.counter({
      name: "rtcv_scraper_client_commands_total",
      help: "Input lines answered, by command type and result (ok or error).",
      labelNames: ["type", "result"],
    });
    this.#cvSent = r.counter({
      name: "rtcv_scraper_client_cv_sent_total",
      help: "CVs posted to RT-CV servers, by server origin and result (ok or error).",
      labelNames: ["server", "result"],
    });
    this.#retries = r.counter({
      name: "rtcv_scraper_client_retries_total",
      help: "HTTP requests retried, by server origin.",
      labelNames: ["server"],
    });
    this.#requestDuration = r.histogram({
      name: "rtcv_scraper_client_request_duration_seconds",
      help: "Duration of HTTP request attempts, by server origin.",
      labelNames: ["server"],
      buckets: REQUEST_DURATION_BUCKETS,
    });
    this.#outboxSize = r.gauge({
      name: "rtcv_scraper_client_outbox_size",
      help: "Items waiting in the durable outbox (CV copies and job data).",
      collect: () => 0,
    });
    this.#outboxItems = r.gauge({
      name: "rtcv_scraper_client_outbox_items",
      help:
        "Outbox items by kind (cv, ingest), target (server origin or ingest stream) and state (pending, dead).",
      labelNames: ["kind", "target", "state"],
    });
    this.#cacheLookups = r.counter({
      name: "rtcv_scraper_client_cache_lookups_total",
      help: "Reference cache lookups, by result (hit or miss).",
      labelNames: ["result"],
    });
    this.#cacheLookups.inc({ result: "hit" }, 0);
    this.#cacheLookups.inc({ result: "miss" }, 0);
    this.#cacheEntries = r.gauge({
      name: "rtcv_scraper_client_cache_entries",
      help: "Reference numbers this process has cached or found cached (the store may hold more).",
      collect: () => undefined,
    });
    r.gauge({
      name: "rtcv_scraper_client_uptime_seconds",
      help: "Seconds since the client started.",
      collect: () => this.uptimeSeconds(),
    });
  }

  /** Counts one answered input line; `answerType` is the answer's `type` (`ok`, `pong` or `error`). */
  commandAnswered(type: string, answerType: string): void {
    this.#commands.inc({ type, result: answerType === "error" ? "error" : "ok" });
  }

  /** Counts one CV posted to `server` (an origin); `ok` is false when that server failed it. */
  cvSent(server: string, ok: boolean): void {
    this.#cvSent.inc({ server, result: ok ? "ok" : "error" });
  }

  /** Counts one retry of a request to `server`. */
  retried(server: string): void {
    this.#retries.inc({ server });
  }

  /** Records one HTTP attempt to `server` that took `seconds`, answered or not. */
  requestFinished(server: string, seconds: number): void {
    this.#requestDuration.observe(seconds, { server });
  }

  /** Counts one reference cache lookup. */
  cacheLookup(hit: boolean): void {
    this.#cacheLookups.inc({ result: hit ? "hit" : "miss" });
  }

  /** Sets how the outbox size is read at scrape time (it reads 0 until this is called). */
  setOutboxSize(read: () => number | Promise<number>): void {
    this.#outboxSize.setCollector(read);
  }

  /**
   * Sets how the outbox counts are read at scrape time (every entry in the store): they feed
   * `rtcv_scraper_client_outbox_items` and the total `rtcv_scraper_client_outbox_size`.
   */
  setOutboxCounts(read: () => Promise<OutboxCount[]>): void {
    this.#readOutbox = read;
    this.setOutboxSize(async () => (await read()).reduce((sum, row) => sum + row.pending, 0));
  }

  /** Sets how the number of cached references is read at scrape time (left out of scrapes until then). */
  setCacheEntries(read: () => number | undefined | Promise<number | undefined>): void {
    this.#cacheEntries.setCollector(read);
  }

  /** The outbox size as the callback reads it now (0 when it fails). */
  async outboxSize(): Promise<number> {
    return (await this.#outboxSize.read()) ?? 0;
  }

  /** Seconds since these metrics were created. */
  uptimeSeconds(): number {
    return Math.max(0, (this.#now() - this.#startedAt) / 1000);
  }

  /**
   * An observer for `CommandRegistry.observe`: `core.registry.observe(metrics.commandObserver())`.
   */
  commandObserver(): (type: string, answer: { readonly type: string }) => void {
    return (type, answer) => this.commandAnswered(type, answer.type);
  }

  /**
   * Hooks for a `RequestPolicy` that count retries and time attempts:
   * `{ ...defaultRequestPolicy(), ...metrics.requestHooks() }`.
   */
  requestHooks(): RequestMetricHooks {
    return {
      onRetry: (info) => this.retried(info.origin),
      onRequest: (info) => this.requestFinished(info.origin, info.ms / 1000),
    };
  }

  /** Renders every metric as Prometheus text (exposition format 0.0.4). */
  async render(): Promise<string> {
    if (this.#readOutbox !== null) {
      const rows = await this.#readOutbox().catch(() => []);
      for (const row of rows) {
        this.#outboxItems.set(row.pending, { kind: row.kind, target: row.target, state: "pending" });
        this.#outboxItems.set(row.dead, { kind: row.kind, target: row.target, state: "dead" });
      }
    }
    return await this.registry.render();
  }
}
