/**
 * The debug log's line for each answered command: the command, its reference number (where it has one) and,
 * for a failure, the reason its error answer gives, e.g.
 * `send_cv ref=abc -> error: send_cv: primary https://x answered 500: invalid phone number`.
 *
 * @module
 */
import type { Answer } from "../protocol/answers.ts";
import { isBadLine, type ParsedLine } from "../protocol/command_line.ts";

/** Answers one parsed input line, as `CommandRegistry.dispatch` does. */
export type Dispatch = (line: ParsedLine) => Answer | Promise<Answer>;

const MAX_SHOWN = 100;

/** The reference number a command's content carries: the content string, or the CV's reference field. */
function referenceOf(content: unknown): string | null {
  if (typeof content === "string") return content;
  if (content === null || typeof content !== "object" || Array.isArray(content)) return null;
  const record = content as Record<string, unknown>;
  const cv = record.cv !== null && typeof record.cv === "object"
    ? record.cv as Record<string, unknown>
    : record;
  const reference = cv.referenceNumber ?? cv.reference_number;
  return typeof reference === "string" ? reference : null;
}

/** A reference number as shown: plain when it is a simple token, else quoted; long ones shortened. */
function showReference(reference: string): string {
  const short = reference.length > MAX_SHOWN ? `${reference.slice(0, MAX_SHOWN)}...` : reference;
  return /^[\w.:/@+-]+$/.test(short) ? short : JSON.stringify(short);
}

/**
 * One debug log line for `line` and its answer (never the line itself: it may hold secrets or a whole CV).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { commandLogLine } from "./command_log.ts";
 * const line = { type: "send_cv", content: { referenceNumber: "abc" } };
 * const answer = { type: "error", content: "send_cv: primary https://x answered 500: invalid phone number" } as const;
 * assert.equal(
 *   commandLogLine(line, answer),
 *   "send_cv ref=abc -> error: send_cv: primary https://x answered 500: invalid phone number",
 * );
 * assert.equal(commandLogLine({ type: "ping", content: undefined }, { type: "pong" }), "ping -> pong");
 * ```
 */
export function commandLogLine(line: ParsedLine, answer: Answer): string {
  let head = "(line)";
  if (!isBadLine(line)) {
    const reference = referenceOf(line.content);
    head = line.type.slice(0, 64) +
      (reference === null || reference === "" ? "" : ` ref=${showReference(reference)}`);
  }
  return answer.type === "error" ? `${head} -> error: ${answer.content}` : `${head} -> ${answer.type}`;
}

/**
 * Wraps `dispatch` so every answer also writes its {@linkcode commandLogLine} to `log`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withCommandLog } from "./command_log.ts";
 * const lines: string[] = [];
 * const dispatch = withCommandLog(() => ({ type: "ok", content: true }), (message) => lines.push(message));
 * await dispatch({ type: "has_cached_reference", content: "r-1" });
 * assert.deepEqual(lines, ["has_cached_reference ref=r-1 -> ok"]);
 * ```
 */
export function withCommandLog(dispatch: Dispatch, log: (message: string) => void): Dispatch {
  return (line) => {
    const answer = dispatch(line);
    if (!(answer instanceof Promise)) {
      log(commandLogLine(line, answer));
      return answer;
    }
    return answer.then((settled) => {
      log(commandLogLine(line, settled));
      return settled;
    });
  };
}
