/**
 * Rows of the benchmark report, the few statistics the scenarios need, and the table / JSON output.
 *
 * @module
 */

/** `pass`/`fail` against a target, `info` for a figure without one, `skip` when it could not be measured. */
export type Status = "pass" | "fail" | "info" | "skip";

/** The unit a figure is kept and shown in. */
export type Unit = "ms" | "µs" | "s" | "MiB" | "lines/s" | "" | "%";

/** One measured figure of one program (the client or the peer). */
export interface Measurement {
  /** The figure, or null when skipped or failed before it could be measured. */
  readonly value: number | null;
  readonly unit: Unit;
  readonly status: Status;
  /** Why it was skipped or failed, or extra context (percentiles, counts). */
  readonly note?: string;
}

/** One line of the report. */
export interface Row extends Measurement {
  /** Scenario id, e.g. `ping`. */
  readonly scenario: string;
  /** What was measured, unique within the scenario, e.g. `round trip median`. */
  readonly metric: string;
  /** The figure must be at most this (same unit); absent for `info` rows. */
  readonly max?: number;
  /** The same metric measured on `RTCV_BENCH_PEER`, when it ran. */
  peer?: Measurement;
}

/** A figure checked against `max`: pass when `value <= max`. */
export function measured(
  scenario: string,
  metric: string,
  value: number,
  unit: Unit,
  max: number,
  note?: string,
): Row {
  return { scenario, metric, value, unit, max, status: value <= max ? "pass" : "fail", note };
}

/** A figure without a target. */
export function info(scenario: string, metric: string, value: number, unit: Unit, note?: string): Row {
  return { scenario, metric, value, unit, status: "info", note };
}

/** A metric that could not be measured here; not a failure. `max` keeps the target visible. */
export function skipped(
  scenario: string,
  metric: string,
  reason: string,
  unit: Unit = "",
  max?: number,
): Row {
  return { scenario, metric, value: null, unit, max, status: "skip", note: `skipped: ${reason}` };
}

/** A check without a number (e.g. answers verified); fails with `note` as the reason. */
export function check(scenario: string, metric: string, ok: boolean, note: string): Row {
  return { scenario, metric, value: null, unit: "", status: ok ? "pass" : "fail", note };
}

/** A failure: the figure was not obtained, or a verification failed. */
export function failed(scenario: string, metric: string, reason: string, unit: Unit = "", max?: number): Row {
  return { scenario, metric, value: null, unit, max, status: "fail", note: reason };
}

/** Order statistics of a sample. */
export interface Summary {
  readonly count: number;
  readonly min: number;
  readonly median: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Sorts a copy of `sample` and picks the nearest-rank percentiles. */
export function summarize(sample: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(sample).sort();
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  return {
    count: sorted.length,
    min: sorted[0],
    median: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted[sorted.length - 1],
  };
}

/** Shows a number with about three significant digits. */
export function formatNumber(value: number): string {
  const abs = Math.abs(value);
  if (value === 0) return "0";
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function formatValue(measurement: Measurement | undefined): string {
  if (measurement === undefined) return "";
  if (measurement.value === null) return "-";
  return `${formatNumber(measurement.value)} ${measurement.unit}`.trim();
}

const STATUS_TEXT: Record<Status, string> = { pass: "pass", fail: "FAIL", info: "info", skip: "skip" };

/** The report as an aligned text table; a peer column pair appears when any row has a peer figure. */
export function formatTable(rows: readonly Row[], peerLabel?: string): string {
  const withPeer = peerLabel !== undefined;
  const header = ["scenario", "metric", "value", "target", "result"];
  if (withPeer) header.push(`peer (${peerLabel})`, "peer result");
  header.push("note");
  const lines = rows.map((row) => {
    const cells = [
      row.scenario,
      row.metric,
      formatValue(row),
      row.max === undefined ? "" : `≤ ${formatNumber(row.max)} ${row.unit}`.trim(),
      STATUS_TEXT[row.status],
    ];
    if (withPeer) cells.push(formatValue(row.peer), row.peer ? STATUS_TEXT[row.peer.status] : "");
    const peerNote = row.peer?.note && row.peer.note !== row.note ? `peer: ${row.peer.note}` : undefined;
    const notes = [row.note, peerNote].filter(Boolean);
    cells.push(notes.join("; "));
    return cells;
  });
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((cells) => column === header.length - 1 ? 0 : cells[column].length))
  );
  const render = (cells: string[]) =>
    cells.map((cell, column) => column === cells.length - 1 ? cell : cell.padEnd(widths[column])).join("  ")
      .trimEnd();
  const rule = widths.map((width, column) => "-".repeat(column === widths.length - 1 ? 4 : width)).join("  ");
  return [render(header), rule, ...lines.map(render)].join("\n") + "\n";
}

/** Counts rows by status, e.g. `12 pass, 1 FAIL, 3 info, 2 skip`, and the peer's the same way when it ran. */
export function formatTotals(rows: readonly Row[]): string {
  const count = (statuses: (Status | undefined)[]) => {
    const counts: Record<Status, number> = { pass: 0, fail: 0, info: 0, skip: 0 };
    for (const status of statuses) if (status) counts[status]++;
    return `${counts.pass} pass, ${counts.fail} FAIL, ${counts.info} info, ${counts.skip} skip`;
  };
  const peer = rows.some((row) => row.peer) ? `; peer: ${count(rows.map((row) => row.peer?.status))}` : "";
  return count(rows.map((row) => row.status)) + peer;
}
