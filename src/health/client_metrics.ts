import {
  CounterSeries,
  type Family,
  HistogramSeries,
  renderFamilies,
  type Sample,
} from "./prometheus_text.ts";
import type { OutboxCount } from "../outbox/outbox_status.ts";

/** Reads a gauge at scrape time; `undefined` (or a throw) leaves the sample out of that scrape. */
export type GaugeReader = () => number | undefined | Promise<number | undefined>;

/**
 * Bucket bounds (seconds) of the request duration histogram: 10 ms up to the 20 s default timeout and more.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { REQUEST_DURATION_BUCKETS } from "./client_metrics.ts";
 * assert.ok(REQUEST_DURATION_BUCKETS.includes(20));
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
 * import assert from "node:assert/strict";
 * import { ClientMetrics } from "./client_metrics.ts";
 * let now = 0;
 * const metrics = new ClientMetrics({ now: () => now });
 * now = 1500;
 * assert.equal(metrics.uptimeSeconds(), 1.5);
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
 * import assert from "node:assert/strict";
 * import { ClientMetrics, type RequestMetricHooks } from "./client_metrics.ts";
 * const metrics = new ClientMetrics();
 * const hooks: RequestMetricHooks = metrics.requestHooks();
 * hooks.onRequest({ origin: "https://rtcv.example.com", ms: 120 });
 * assert.ok((await metrics.render()).includes('_count{server="https://rtcv.example.com"} 1\n'));
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
 * - `rtcv_scraper_client_outbox_size`: CVs waiting in the durable outbox (a callback gauge).
 * - `rtcv_scraper_client_cache_lookups_total{result}`: reference cache lookups, `hit` or `miss`.
 * - `rtcv_scraper_client_cache_entries`: reference numbers this process cached or found cached, when a
 *   callback is set (counting a shared store of millions per scrape would load it).
 * - `rtcv_scraper_client_uptime_seconds`: seconds since the metrics were created.
 *
 * Server labels are origins (`https://rtcv.example.com`), never keys.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientMetrics } from "./client_metrics.ts";
 * const metrics = new ClientMetrics();
 * metrics.commandAnswered("send_cv", "ok");
 * metrics.cvSent("https://rtcv.example.com", true);
 * metrics.setOutboxSize(() => 0);
 * const text = await metrics.render();
 * assert.ok(text.includes('rtcv_scraper_client_commands_total{type="send_cv",result="ok"} 1\n'));
 * ```
 */
export class ClientMetrics {
  /** Answered lines by command type: `[ok, error]` (counted for every line, so without labels objects). */
  readonly #commands = new Map<string, [number, number]>();
  readonly #cvSent = new CounterSeries();
  readonly #retries = new CounterSeries();
  readonly #requestDuration = new HistogramSeries(REQUEST_DURATION_BUCKETS);
  #cacheHits = 0;
  #cacheMisses = 0;
  #outboxSize: GaugeReader = () => 0;
  #readOutbox: (() => Promise<OutboxCount[]>) | null = null;
  #cacheEntries: GaugeReader = () => undefined;
  readonly #gauges: { name: string; help: string; read: GaugeReader }[] = [];
  readonly #now: () => number;
  readonly #startedAt: number;

  /** Creates the metrics; the uptime counts from now. */
  constructor(options: ClientMetricsOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#startedAt = this.#now();
  }

  /**
   * Adds a gauge read at every scrape, e.g. `metrics.addGauge("rtcv_scraper_client_x", "X.", () => n)`: for
   * a further metric without its own method.
   */
  addGauge(name: string, help: string, read: GaugeReader): void {
    this.#gauges.push({ name, help, read });
  }

  /** Counts one answered input line; `answerType` is the answer's `type` (`ok`, `pong` or `error`). */
  commandAnswered(type: string, answerType: string): void {
    let counts = this.#commands.get(type);
    if (counts === undefined) this.#commands.set(type, counts = [0, 0]);
    counts[answerType === "error" ? 1 : 0]++;
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
    this.#requestDuration.observe({ server }, seconds);
  }

  /** Counts one reference cache lookup. */
  cacheLookup(hit: boolean): void {
    if (hit) this.#cacheHits++;
    else this.#cacheMisses++;
  }

  /** Sets how the outbox size is read at scrape time (it reads 0 until this is called). */
  /**
   * Sets how the outbox counts are read at scrape time (every entry in the store): they feed
   * `rtcv_scraper_client_outbox_items{kind,target,state}` and the total `rtcv_scraper_client_outbox_size`.
   */
  setOutboxCounts(read: () => Promise<OutboxCount[]>): void {
    this.#readOutbox = read;
    this.setOutboxSize(async () => (await read()).reduce((sum, row) => sum + row.pending, 0));
  }

  setOutboxSize(read: () => number | Promise<number>): void {
    this.#outboxSize = read;
  }

  /** Sets how the number of cached references is read at scrape time (left out of scrapes until then). */
  setCacheEntries(read: GaugeReader): void {
    this.#cacheEntries = read;
  }

  /** The outbox size as the callback reads it now (0 when it fails). */
  async outboxSize(): Promise<number> {
    return (await readGauge(this.#outboxSize)) ?? 0;
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

  #commandSamples(): Sample[] {
    const samples: Sample[] = [];
    for (const [type, [ok, error]] of this.#commands) {
      if (ok > 0) samples.push({ labels: { type, result: "ok" }, value: ok });
      if (error > 0) samples.push({ labels: { type, result: "error" }, value: error });
    }
    return samples;
  }

  /** Renders every metric as Prometheus text (exposition format 0.0.4). */
  async render(): Promise<string> {
    const name = (suffix: string) => `rtcv_scraper_client_${suffix}`;
    const gauge = async (gaugeName: string, help: string, read: GaugeReader): Promise<Family> => {
      const value = await readGauge(read);
      return { name: gaugeName, help, type: "gauge", samples: value === undefined ? [] : [{ value }] };
    };
    return renderFamilies([
      {
        name: name("commands_total"),
        help: "Input lines answered, by command type and result (ok or error).",
        type: "counter",
        samples: this.#commandSamples(),
      },
      {
        name: name("cv_sent_total"),
        help: "CVs posted to RT-CV servers, by server origin and result (ok or error).",
        type: "counter",
        samples: this.#cvSent.samples(),
      },
      {
        name: name("retries_total"),
        help: "HTTP requests retried, by server origin.",
        type: "counter",
        samples: this.#retries.samples(),
      },
      {
        name: name("request_duration_seconds"),
        help: "Duration of HTTP request attempts, by server origin.",
        type: "histogram",
        samples: this.#requestDuration.samples(),
      },
      await gauge(
        name("outbox_size"),
        "Items waiting in the durable outbox (CV copies and job data).",
        this.#outboxSize,
      ),
      {
        name: name("outbox_items"),
        help:
          "Outbox items by kind (cv, ingest), target (server origin or ingest stream), state (pending, dead).",
        type: "gauge",
        samples: (await (this.#readOutbox?.() ?? Promise.resolve([])).catch(() => [])).flatMap((row) => [
          { labels: { kind: row.kind, target: row.target, state: "pending" }, value: row.pending },
          { labels: { kind: row.kind, target: row.target, state: "dead" }, value: row.dead },
        ]),
      },
      {
        name: name("cache_lookups_total"),
        help: "Reference cache lookups, by result (hit or miss).",
        type: "counter",
        samples: [
          { labels: { result: "hit" }, value: this.#cacheHits },
          { labels: { result: "miss" }, value: this.#cacheMisses },
        ],
      },
      await gauge(
        name("cache_entries"),
        "Reference numbers this process has cached or found cached (the store may hold more).",
        this.#cacheEntries,
      ),
      await gauge(name("uptime_seconds"), "Seconds since the client started.", () => this.uptimeSeconds()),
      ...await Promise.all(this.#gauges.map((g) => gauge(g.name, g.help, g.read))),
    ]);
  }
}

/** A gauge's value now, or `undefined` when it cannot be read (the sample is left out). */
async function readGauge(read: GaugeReader): Promise<number | undefined> {
  try {
    const value = await read();
    return typeof value === "number" && Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
