/**
 * A tiny Prometheus registry: counters, gauges (set directly or read from a callback at scrape time) and
 * histograms with fixed buckets, rendered in the text exposition format 0.0.4.
 *
 * It holds the four classes together in one file (unlike the one-public-thing-per-file rule of the style
 * guide) because they share the label and rendering helpers and are only ever used through
 * {@linkcode MetricsRegistry}.
 *
 * @module
 */

/**
 * Label values of one series, by label name.
 *
 * @example
 * ```ts
 * import type { Labels } from "./metrics.ts";
 * const labels: Labels = { server: "https://rtcv.example.com", result: "ok" };
 * ```
 */
export type Labels = Readonly<Record<string, string>>;

/**
 * What a counter, gauge or histogram is called and what it means.
 *
 * @example
 * ```ts
 * import type { MetricOptions } from "./metrics.ts";
 * const options: MetricOptions = { name: "jobs_total", help: "Jobs done.", labelNames: ["result"] };
 * ```
 */
export interface MetricOptions {
  /** The metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
  readonly name: string;
  /** One line saying what it counts or measures (the `# HELP` line). */
  readonly help: string;
  /** The label names every series of it has, in this order; none by default. */
  readonly labelNames?: readonly string[];
}

/**
 * A gauge's options; `collect` makes it a callback gauge read at every scrape.
 *
 * @example
 * ```ts
 * import type { GaugeOptions } from "./metrics.ts";
 * const options: GaugeOptions = { name: "queue_size", help: "Items waiting.", collect: () => 3 };
 * ```
 */
export interface GaugeOptions extends MetricOptions {
  /**
   * Reads the value at scrape time (only for a gauge without labels). `undefined` (or a throw) means "unknown
   * now": the sample is left out of that scrape.
   */
  readonly collect?: GaugeCollector;
}

/**
 * Reads a gauge's value when the registry is rendered.
 *
 * @example
 * ```ts
 * import type { GaugeCollector } from "./metrics.ts";
 * const collect: GaugeCollector = () => Promise.resolve(42);
 * ```
 */
export type GaugeCollector = () => number | undefined | Promise<number | undefined>;

/**
 * A histogram's options: the upper bounds of its buckets (`+Inf` is added).
 *
 * @example
 * ```ts
 * import type { HistogramOptions } from "./metrics.ts";
 * const options: HistogramOptions = { name: "took_seconds", help: "Time taken.", buckets: [0.1, 1, 10] };
 * ```
 */
export interface HistogramOptions extends MetricOptions {
  /** Strictly increasing finite upper bounds, e.g. `[0.1, 0.5, 1, 5]`. */
  readonly buckets: readonly number[];
}

/**
 * The content type of the text exposition format this registry renders.
 *
 * @example
 * ```ts
 * import { MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from "./metrics.ts";
 * const page = new Response(await new MetricsRegistry().render(), {
 *   headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
 * });
 * ```
 */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Formats a sample value as Prometheus parses it (`+Inf`, `-Inf`, `NaN`, or a JS number).
 *
 * @example
 * ```ts
 * import { formatValue } from "./metrics.ts";
 * console.assert(formatValue(Infinity) === "+Inf" && formatValue(0.25) === "0.25");
 * ```
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/**
 * Escapes a label value: backslash, double quote and line feed.
 *
 * @example
 * ```ts
 * import { escapeLabelValue } from "./metrics.ts";
 * console.assert(escapeLabelValue('say "hi"\n') === 'say \\"hi\\"\\n');
 * ```
 */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}

/** Escapes `# HELP` text: backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => c === "\n" ? "\\n" : "\\\\");
}

function renderLabels(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return "";
  return `{${names.map((name, i) => `${name}="${escapeLabelValue(values[i])}"`).join(",")}}`;
}

/**
 * What every metric has: a name, a help text, label names, and a rendering of its series. The registry
 * creates the concrete ones ({@linkcode Counter}, {@linkcode Gauge}, {@linkcode Histogram}).
 *
 * @example
 * ```ts
 * import { type Metric, MetricsRegistry } from "./metrics.ts";
 * const metric: Metric = new MetricsRegistry().counter({ name: "jobs_total", help: "Jobs." });
 * await metric.render(); // "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total 0\n"
 * ```
 */
export abstract class Metric {
  /** The metric name. */
  readonly name: string;
  /** The `# HELP` text. */
  readonly help: string;
  /** The label names of every series, in order. */
  readonly labelNames: readonly string[];
  /** The `# TYPE`. */
  abstract readonly type: "counter" | "gauge" | "histogram";

  /** Checks the name and label names (`reserved` are names this kind of metric keeps for itself). */
  constructor(options: MetricOptions, reserved: readonly string[] = []) {
    if (!METRIC_NAME.test(options.name)) {
      throw new TypeError(`Cannot create metric ${JSON.stringify(options.name)}: not a valid metric name`);
    }
    const labelNames = options.labelNames ?? [];
    const seen = new Set<string>();
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || reserved.includes(label) || seen.has(label)) {
        throw new TypeError(
          `Cannot create metric ${options.name}: label name ${
            JSON.stringify(label)
          } is invalid, reserved or repeated`,
        );
      }
      seen.add(label);
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = [...labelNames];
  }

  /** The values of `labels` in label-name order; throws a TypeError when a label is missing or extra. */
  protected valuesOf(labels: Labels): string[] {
    const given = Object.keys(labels);
    if (
      given.length !== this.labelNames.length || !this.labelNames.every((name) => Object.hasOwn(labels, name))
    ) {
      throw new TypeError(
        `Cannot record ${this.name}: expected labels {${this.labelNames.join(", ")}}, got {${
          given.join(", ")
        }}`,
      );
    }
    return this.labelNames.map((name) => String(labels[name]));
  }

  /** The map key of a series. */
  protected keyOf(values: readonly string[]): string {
    return JSON.stringify(values);
  }

  /** The `# HELP` and `# TYPE` lines followed by the samples. */
  async render(): Promise<string> {
    const head = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
    return head + (await this.samples()).join("");
  }

  /** The sample lines, each ending in `\n`. */
  protected abstract samples(): string[] | Promise<string[]>;
}

/**
 * One number per label set, kept in a map: what counters and settable gauges share.
 *
 * @example
 * ```ts
 * import { MetricsRegistry, type ValueMetric } from "./metrics.ts";
 * const metric: ValueMetric = new MetricsRegistry().gauge({ name: "level", help: "Level." });
 * metric.get(); // 0
 * ```
 */
export abstract class ValueMetric extends Metric {
  readonly #values = new Map<string, { labels: string[]; value: number }>();

  /** Adds `amount` to the series with these labels. */
  protected add(labels: Labels, amount: number): void {
    const values = this.valuesOf(labels);
    const key = this.keyOf(values);
    const entry = this.#values.get(key);
    if (entry) entry.value += amount;
    else this.#values.set(key, { labels: values, value: amount });
  }

  /** Sets the series with these labels to `value`. */
  protected put(labels: Labels, value: number): void {
    const values = this.valuesOf(labels);
    this.#values.set(this.keyOf(values), { labels: values, value });
  }

  /** The current value of the series with these labels (0 when it was never touched). */
  get(labels: Labels = {}): number {
    return this.#values.get(this.keyOf(this.valuesOf(labels)))?.value ?? 0;
  }

  /** The sample lines of the stored values. */
  protected storedSamples(): string[] {
    // A metric without labels always has its one series, 0 until touched, like the official clients.
    if (this.labelNames.length === 0 && this.#values.size === 0) return [`${this.name} 0\n`];
    return [...this.#values.values()]
      .sort((a, b) => compareLabels(a.labels, b.labels))
      .map(({ labels, value }) =>
        `${this.name}${renderLabels(this.labelNames, labels)} ${formatValue(value)}\n`
      );
  }
}

function compareLabels(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

/**
 * A number that only goes up (requests, errors). Create it with {@linkcode MetricsRegistry.counter}.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * const sent = registry.counter({ name: "cv_sent_total", help: "CVs sent.", labelNames: ["result"] });
 * sent.inc({ result: "ok" });
 * sent.get({ result: "ok" }); // 1
 * ```
 */
export class Counter extends ValueMetric {
  /** Always `counter`. */
  readonly type = "counter";

  /** Adds `amount` (default 1, never negative) to the series with these labels. */
  inc(labels: Labels = {}, amount = 1): void {
    if (!(amount >= 0)) {
      throw new RangeError(`Cannot increase ${this.name} by ${amount}: counters only go up`);
    }
    this.add(labels, amount);
  }

  /** The sample lines. */
  protected samples(): string[] {
    return this.storedSamples();
  }
}

/**
 * A number that goes up and down. Set it directly, or give it a `collect` callback that is read at every
 * scrape. Create it with {@linkcode MetricsRegistry.gauge}.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * const queue: string[] = ["a", "b"];
 * registry.gauge({ name: "queue_size", help: "Items waiting.", collect: () => queue.length });
 * const text = await registry.render(); // contains "queue_size 2"
 * ```
 */
export class Gauge extends ValueMetric {
  /** Always `gauge`. */
  readonly type = "gauge";
  #collect: GaugeCollector | null;

  /** Use {@linkcode MetricsRegistry.gauge}. */
  constructor(options: GaugeOptions) {
    super(options);
    if (options.collect && this.labelNames.length > 0) {
      throw new TypeError(
        `Cannot create gauge ${options.name}: a collect callback needs a gauge without labels`,
      );
    }
    this.#collect = options.collect ?? null;
  }

  /** Sets the series with these labels to `value`. */
  set(value: number, labels: Labels = {}): void {
    this.put(labels, value);
  }

  /** Adds `amount` (default 1) to the series with these labels. */
  inc(labels: Labels = {}, amount = 1): void {
    this.add(labels, amount);
  }

  /** Subtracts `amount` (default 1) from the series with these labels. */
  dec(labels: Labels = {}, amount = 1): void {
    this.add(labels, -amount);
  }

  /** Makes this a callback gauge (or replaces its callback); `null` goes back to the set value. */
  setCollector(collect: GaugeCollector | null): void {
    if (collect && this.labelNames.length > 0) {
      throw new TypeError(
        `Cannot collect gauge ${this.name}: a collect callback needs a gauge without labels`,
      );
    }
    this.#collect = collect;
  }

  /** The value now: the callback's when there is one (`undefined` when it has none or fails), else the set one. */
  async read(): Promise<number | undefined> {
    if (this.#collect === null) return this.get();
    try {
      return await this.#collect();
    } catch {
      return undefined;
    }
  }

  /** The sample line of the callback, or of the set values. */
  protected async samples(): Promise<string[]> {
    if (this.#collect === null) return this.storedSamples();
    const value = await this.read();
    return value === undefined ? [] : [`${this.name} ${formatValue(value)}\n`];
  }
}

/**
 * Counts observations (durations, sizes) into fixed buckets, with their sum and count. Create it with
 * {@linkcode MetricsRegistry.histogram}.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * const took = registry.histogram({ name: "took_seconds", help: "Time taken.", buckets: [0.1, 1] });
 * took.observe(0.5);
 * const text = await registry.render(); // took_seconds_bucket{le="1"} 1, took_seconds_count 1, ...
 * ```
 */
export class Histogram extends Metric {
  /** Always `histogram`. */
  readonly type = "histogram";
  /** The finite upper bounds, increasing (`+Inf` is implied). */
  readonly buckets: readonly number[];
  readonly #series = new Map<string, { labels: string[]; counts: number[]; sum: number; count: number }>();

  /** Use {@linkcode MetricsRegistry.histogram}. */
  constructor(options: HistogramOptions) {
    super(options, ["le"]);
    const buckets = [...options.buckets];
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
        throw new TypeError(
          `Cannot create histogram ${options.name}: buckets must be finite and strictly increasing`,
        );
      }
    }
    this.buckets = buckets;
  }

  /** Records one observation in the series with these labels. */
  observe(value: number, labels: Labels = {}): void {
    const values = this.valuesOf(labels);
    const key = this.keyOf(values);
    let series = this.#series.get(key);
    if (!series) {
      series = { labels: values, counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    const index = this.buckets.findIndex((bound) => value <= bound);
    if (index !== -1) series.counts[index]++;
    series.sum += value;
    series.count++;
  }

  /** The number of observations and their sum in the series with these labels. */
  get(labels: Labels = {}): { count: number; sum: number } {
    const series = this.#series.get(this.keyOf(this.valuesOf(labels)));
    return { count: series?.count ?? 0, sum: series?.sum ?? 0 };
  }

  /** The `_bucket`, `_sum` and `_count` lines of every series. */
  protected samples(): string[] {
    const all = [...this.#series.values()];
    if (all.length === 0 && this.labelNames.length === 0) {
      all.push({ labels: [], counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 });
    }
    const lines: string[] = [];
    for (const series of all.sort((a, b) => compareLabels(a.labels, b.labels))) {
      const names = [...this.labelNames, "le"];
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += series.counts[i];
        lines.push(
          `${this.name}_bucket${renderLabels(names, [...series.labels, formatValue(bound)])} ${cumulative}\n`,
        );
      });
      lines.push(`${this.name}_bucket${renderLabels(names, [...series.labels, "+Inf"])} ${series.count}\n`);
      const plain = renderLabels(this.labelNames, series.labels);
      lines.push(`${this.name}_sum${plain} ${formatValue(series.sum)}\n`);
      lines.push(`${this.name}_count${plain} ${series.count}\n`);
    }
    return lines;
  }
}

/**
 * Holds metrics and renders them all, in the order they were created, as one Prometheus text page.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * const commands = registry.counter({
 *   name: "commands_total",
 *   help: "Commands answered.",
 *   labelNames: ["type", "result"],
 * });
 * commands.inc({ type: "ping", result: "ok" });
 * const text = await registry.render();
 * // # HELP commands_total Commands answered.
 * // # TYPE commands_total counter
 * // commands_total{type="ping",result="ok"} 1
 * ```
 */
export class MetricsRegistry {
  readonly #metrics: Metric[] = [];
  readonly #taken = new Set<string>();

  /** Creates and registers a counter. Throws a TypeError for a bad or taken name. */
  counter(options: MetricOptions): Counter {
    return this.#add(new Counter(options));
  }

  /** Creates and registers a gauge (a callback gauge when `collect` is given). */
  gauge(options: GaugeOptions): Gauge {
    return this.#add(new Gauge(options));
  }

  /** Creates and registers a histogram with these bucket bounds. */
  histogram(options: HistogramOptions): Histogram {
    return this.#add(new Histogram(options));
  }

  /** Renders every metric in the text exposition format 0.0.4 (serve it as {@linkcode PROMETHEUS_CONTENT_TYPE}). */
  async render(): Promise<string> {
    const parts = await Promise.all(this.#metrics.map((metric) => metric.render()));
    return parts.join("");
  }

  #add<M extends Metric>(metric: M): M {
    // A histogram's series names end in _bucket/_sum/_count; keep those free too, so no two metrics clash.
    const names = metric instanceof Histogram
      ? [metric.name, `${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`]
      : [metric.name];
    for (const name of names) {
      if (this.#taken.has(name)) {
        throw new TypeError(`Cannot register metric ${metric.name}: the name ${name} is taken`);
      }
    }
    for (const name of names) this.#taken.add(name);
    this.#metrics.push(metric);
    return metric;
  }
}
