/**
 * The summary lines replay prints after each round and at the end.
 *
 * @module
 */

import { formatDuration } from "./format_replay_line.ts";

/** What replay counts, for one round or for all of them. */
export interface ReplayCounts {
  /** Lines run through the client (also lines that are not commands: they are answered too). */
  run: number;
  /** Commands not run because their type is in `-replaySkipCommands`. */
  skipped: number;
  /** Lines whose answer was an error. */
  errors: number;
  /** Time spent, in milliseconds. */
  durationMs: number;
}

/** Counts of nothing yet. */
export function emptyCounts(): ReplayCounts {
  return { run: 0, skipped: 0, errors: 0, durationMs: 0 };
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** `16 commands run, 2 skipped, 3 errors` */
function describeCounts(counts: ReplayCounts): string {
  return `${plural(counts.run, "command", "commands")} run, ${counts.skipped} skipped, ${
    plural(counts.errors, "error", "errors")
  }`;
}

/**
 * The line that ends a replay: `replay: 16 commands run, 2 skipped, 3 errors, total 45ms`; with several
 * rounds it starts `replay: 3 rounds, ...`, and `stopped` says the replay was interrupted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatReplaySummary } from "./replay_summary.ts";
 * const line = formatReplaySummary({ run: 16, skipped: 2, errors: 3, durationMs: 45.2 }, { rounds: 1 });
 * assert.equal(line, "replay: 16 commands run, 2 skipped, 3 errors, total 45ms");
 * ```
 */
export function formatReplaySummary(
  counts: ReplayCounts,
  options: { rounds: number; stopped?: boolean },
): string {
  const rounds = options.rounds === 1 ? "" : `${options.rounds} rounds, `;
  const stopped = options.stopped ? " (stopped before the end)" : "";
  return `replay: ${rounds}${describeCounts(counts)}, total ${formatDuration(counts.durationMs)}${stopped}`;
}

/**
 * The line that ends one round of several: `round 2 of 3: 16 commands run, 2 skipped, 3 errors, 45ms`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatRoundSummary } from "./replay_summary.ts";
 * const line = formatRoundSummary({ run: 1, skipped: 0, errors: 0, durationMs: 3 }, 2, 3);
 * assert.equal(line, "round 2 of 3: 1 command run, 0 skipped, 0 errors, 3ms");
 * ```
 */
export function formatRoundSummary(counts: ReplayCounts, round: number, rounds: number): string {
  return `round ${round} of ${rounds}: ${describeCounts(counts)}, ${formatDuration(counts.durationMs)}`;
}
