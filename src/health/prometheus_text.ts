/**
 * The Prometheus text format (0.0.4) for the client's few metrics: labelled counters, histograms with fixed
 * buckets, and rendering. Hand-written instead of npm `prom-client` because loading prom-client, even only
 * when the health port is set, made the client's start-up (spawn to ready line) go from ~60 ms to ~112 ms.
 *
 * @module
 */

/** The content type of a `GET /metrics` answer. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Label values of one series, by label name, in the order they are rendered. */
export type Labels = Readonly<Record<string, string>>;

/** One line of a metric family: `<name><suffix>{labels} value`. */
export interface Sample {
  /** Added to the family name (`_bucket`, `_sum`, `_count` of a histogram). */
  readonly suffix?: string;
  readonly labels?: Labels;
  readonly value: number;
}

/** A metric with its `# HELP` and `# TYPE` lines and its samples. */
export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  readonly samples: readonly Sample[];
}

const escapeLabel = (value: string) =>
  value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const formatValue = (n: number) =>
  Number.isNaN(n) ? "NaN" : n === Infinity ? "+Inf" : n === -Infinity ? "-Inf" : `${n}`;

/**
 * Renders metric families as Prometheus text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderFamilies } from "./prometheus_text.ts";
 * const text = renderFamilies([{ name: "jobs_total", help: "Jobs.", type: "counter", samples: [{ labels: { r: 'a"b' }, value: 2 }] }]);
 * assert.equal(text, '# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total{r="a\\"b"} 2\n');
 * ```
 */
export function renderFamilies(families: readonly Family[]): string {
  let out = "";
  for (const { name, help, type, samples } of families) {
    out += `# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n# TYPE ${name} ${type}\n`;
    for (const { suffix = "", labels = {}, value } of samples) {
      const pairs = Object.entries(labels).map(([key, v]) => `${key}="${escapeLabel(v)}"`);
      out += `${name}${suffix}${pairs.length > 0 ? `{${pairs.join(",")}}` : ""} ${formatValue(value)}\n`;
    }
  }
  return out;
}

/**
 * Counts by label values (the series of one counter).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CounterSeries } from "./prometheus_text.ts";
 * const counter = new CounterSeries();
 * counter.inc({ result: "ok" });
 * counter.inc({ result: "ok" }, 2);
 * assert.deepEqual(counter.samples(), [{ labels: { result: "ok" }, value: 3 }]);
 * ```
 */
export class CounterSeries {
  readonly #series = new Map<string, { labels: Labels; value: number }>();

  /** Adds `by` (default 1; 0 makes the series show up at 0) to the series of `labels`. */
  inc(labels: Labels, by = 1): void {
    const key = JSON.stringify(Object.values(labels));
    const series = this.#series.get(key);
    if (series) series.value += by;
    else this.#series.set(key, { labels, value: by });
  }

  /** One sample per series, in the order they first appeared. */
  samples(): Sample[] {
    return [...this.#series.values()].map(({ labels, value }) => ({ labels, value }));
  }
}

/**
 * Observations by label values, in cumulative buckets (the series of one histogram).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HistogramSeries } from "./prometheus_text.ts";
 * const histogram = new HistogramSeries([0.1, 1]);
 * histogram.observe({ server: "a" }, 0.5);
 * assert.deepEqual(histogram.samples().map((s) => `${s.suffix}${s.labels?.le ?? ""}=${s.value}`), [
 *   "_bucket0.1=0", "_bucket1=1", "_bucket+Inf=1", "_sum=0.5", "_count=1",
 * ]);
 * ```
 */
export class HistogramSeries {
  readonly #buckets: readonly number[];
  readonly #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  /** `buckets`: increasing upper bounds; `+Inf` is added. */
  constructor(buckets: readonly number[]) {
    this.#buckets = buckets;
  }

  /** Records one observation of `value` in the series of `labels`. */
  observe(labels: Labels, value: number): void {
    const key = JSON.stringify(Object.values(labels));
    let series = this.#series.get(key);
    if (!series) {
      this.#series.set(
        key,
        series = { labels, counts: this.#buckets.map(() => 0), sum: 0, count: 0 },
      );
    }
    this.#buckets.forEach((bound, i) => value <= bound && series.counts[i]++);
    series.sum += value;
    series.count++;
  }

  /** `_bucket` samples (with `le`), then `_sum` and `_count`, per series. */
  samples(): Sample[] {
    return [...this.#series.values()].flatMap(({ labels, counts, sum, count }) => [
      ...this.#buckets.map((bound, i) => ({
        suffix: "_bucket",
        labels: { ...labels, le: `${bound}` },
        value: counts[i],
      })),
      { suffix: "_bucket", labels: { ...labels, le: "+Inf" }, value: count },
      { suffix: "_sum", labels, value: sum },
      { suffix: "_count", labels, value: count },
    ]);
  }
}
