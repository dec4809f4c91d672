/**
 * The line replay prints for one command.
 *
 * @module
 */

import type { Answer } from "../protocol/answers.ts";

/** What one replayed command is printed from. */
export interface ReplayLine {
  /** How long the answer took, in milliseconds (rounded to whole milliseconds when printed). */
  readonly durationMs: number;
  /** The line's `type`, or `null` when the line is not a command (not JSON, no `type`, not UTF-8, ...). */
  readonly type: string | null;
  /** The client's answer. */
  readonly answer: Answer;
}

/** Longest command type printed; longer ones are cut (a log line can hold any junk as its type). */
const MAX_TYPE_CHARS = 64;

/** Types that print as they are; anything else is printed as a JSON string, so a line stays one line. */
const PLAIN_TYPE = /^[A-Za-z0-9_.-]+$/;

/** How a command type is shown after `IN:`. */
function showType(type: string | null): string {
  if (type === null) return "(invalid)";
  if (type.length <= MAX_TYPE_CHARS && PLAIN_TYPE.test(type)) return type;
  const cut = type.length > MAX_TYPE_CHARS ? type.slice(0, MAX_TYPE_CHARS) + "..." : type;
  return JSON.stringify(cut);
}

/** Formats a duration as replay prints it: whole milliseconds, e.g. `12ms`. */
export function formatDuration(ms: number): string {
  return `${Math.max(0, Math.round(ms))}ms`;
}

/**
 * Formats one replayed command as `<duration>ms IN: <type> OUT: <answer type>[: <content JSON>]`, the
 * format the README promises. Lines that are not commands show `IN: (invalid)`; a type that is not a
 * plain word is shown as a (cut) JSON string. The content is compact JSON, as on the wire.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatReplayLine } from "./format_replay_line.ts";
 * const line = formatReplayLine({ durationMs: 12.3, type: "send_cv", answer: { type: "ok", content: true } });
 * assert.equal(line, "12ms IN: send_cv OUT: ok: true");
 * assert.equal(
 *   formatReplayLine({ durationMs: 0, type: null, answer: { type: "error", content: "bad" } }),
 *   '0ms IN: (invalid) OUT: error: "bad"',
 * );
 * ```
 */
export function formatReplayLine(line: ReplayLine): string {
  const { answer } = line;
  let out: string = answer.type;
  if (answer.type !== "pong" && answer.content !== undefined) {
    let content: string;
    try {
      content = JSON.stringify(answer.content) ?? String(answer.content);
    } catch (error) {
      content = `(content not encodable as JSON: ${error instanceof Error ? error.message : String(error)})`;
    }
    out += `: ${content}`;
  }
  return `${formatDuration(line.durationMs)} IN: ${showType(line.type)} OUT: ${out}`;
}
