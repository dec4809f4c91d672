/**
 * The reader's last step: one input line (text, or why it could not be read) becomes a parsed command or
 * the problem with it. The command registry dispatches what comes out of here; it never sees raw text.
 *
 * @module
 */
import type { InputLine } from "./line_splitter.ts";

/** The id a scraper gave a line (protocol section 9): its answer carries it and comes as soon as it is ready. */
export type AnswerId = string | number;

/** A line parsed as far as the dispatcher needs: its `type`, its `content` untouched, and its `id` if any. */
export interface CommandLine {
  readonly type: string;
  readonly content: unknown;
  /** Present when the line carried a valid `"id"`. */
  readonly id?: AnswerId;
}

/** A line that is not a command: why, in words for the scraper author (never quoting the line). */
export interface BadLine {
  readonly problem: string;
}

/** What the registry dispatches: a command, or a line that could not be one. */
export type ParsedLine = CommandLine | BadLine;

/** True when `line` is a {@link BadLine}. */
export function isBadLine(line: ParsedLine): line is BadLine {
  return (line as BadLine).problem !== undefined;
}

const PING_LINE = '{"type":"ping"}';
/** The type of the last line read by the fast path (see {@link parseCommandLine}), and its line's start. */
let lastType = "";
let lastPrefix = "";
/** What a fast-path content must not contain: a quote, a backslash or a control character. */
// deno-lint-ignore no-control-regex -- control characters are what must not match (JSON forbids them raw)
const NOT_PLAIN = /["\\\u0000-\u001f]/;
const LINE_END = '"}';
/**
 * The shape of most lines under load, `{"type":"<name>","content":"<plain string>"}` (cache commands): read
 * without JSON.parse. Only strings without escapes or quotes match, so the result is what JSON.parse gives.
 */
// deno-lint-ignore no-control-regex -- control characters are what must not match (JSON forbids them raw)
const STRING_COMMAND = /^\{"type":"([a-z_]{1,64})","content":"([^"\\\u0000-\u001f]*)"\}$/;

/**
 * Turns one input line into what the registry dispatches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCommandLine } from "./command_line.ts";
 * assert.deepEqual(readCommandLine({ kind: "text", text: '{"type":"ping","id":7}' }), {
 *   type: "ping",
 *   content: undefined,
 *   id: 7,
 * });
 * ```
 */
export function readCommandLine(line: InputLine): ParsedLine {
  switch (line.kind) {
    case "text": {
      const parsed = parseCommandLine(line.text);
      return typeof parsed === "string" ? { problem: parsed } : parsed;
    }
    case "too_long":
      return {
        problem:
          `input line of ${line.bytes} bytes is longer than the limit of RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES; it was skipped`,
      };
    case "invalid_utf8":
      return { problem: "input line is not valid UTF-8; send one JSON object per line" };
  }
}

/**
 * Parses one input line's text, or returns the error message for it (never quoting the line).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandLine } from "./command_line.ts";
 * assert.deepEqual(parseCommandLine('{"type":"has_cached_reference","content":"a1"}'), {
 *   type: "has_cached_reference",
 *   content: "a1",
 * });
 * assert.equal(typeof parseCommandLine("not json"), "string");
 * ```
 */
export function parseCommandLine(text: string): CommandLine | string {
  if (text === PING_LINE) return { type: "ping", content: undefined };
  // Pipelined lines mostly repeat the type of the line before: compared as the whole start of the line,
  // the content is cut out without a regular expression, and the type is the same string object as
  // before (the maps it is looked up in hash it once, not once a line).
  if (
    lastPrefix !== "" && text.length >= lastPrefix.length + LINE_END.length && text.startsWith(lastPrefix) &&
    text.endsWith(LINE_END)
  ) {
    const content = text.slice(lastPrefix.length, text.length - LINE_END.length);
    if (!NOT_PLAIN.test(content)) return { type: lastType, content };
  }
  const simple = STRING_COMMAND.exec(text);
  if (simple !== null) {
    if (simple[1] !== lastType) {
      lastType = simple[1];
      lastPrefix = `{"type":"${lastType}","content":"`;
    }
    return { type: lastType, content: simple[2] };
  }
  if (text.trim() === "") {
    return 'input line is empty; expected a JSON object like {"type":"ping"}';
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `input line is not valid JSON (${
      jsonErrorPlace(error, text)
    }); expected one JSON object per line like {"type":"ping"}`;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return `input line must be a JSON object with a "type" field, got ${describeJsonValue(value)}`;
  }
  const record = value as Record<string, unknown>;
  const id = record.id;
  if (id !== undefined && typeof id !== "string" && (typeof id !== "number" || !Number.isFinite(id))) {
    return `input line's "id" must be a string or a number, got ${describeJsonValue(id)}`;
  }
  const type = record.type;
  if (typeof type !== "string") {
    return type === undefined
      ? 'input line has no "type" field; expected {"type":"<command>","content":...}'
      : `input line's "type" must be a string, got ${describeJsonValue(type)}`;
  }
  return id === undefined ? { type, content: record.content } : { type, content: record.content, id };
}

/** A JSON value's kind, for messages: never the value itself (it may be a secret). */
export function describeJsonValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return value.length === 0 ? "an empty array" : "an array";
  if (typeof value === "string") return value === "" ? "an empty string" : "a string";
  return /^[aeiou]/.test(typeof value) ? `an ${typeof value}` : `a ${typeof value}`;
}

/** Says where JSON.parse failed without repeating the text (V8's messages quote an excerpt). */
function jsonErrorPlace(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : "";
  const position = /position (\d+)/.exec(message);
  if (position) {
    const offset = Number(position[1]);
    if (offset >= text.length) return "the line ends before the JSON value does";
    return `unexpected character at column ${offset + 1} of ${text.length}`;
  }
  if (/end of (JSON )?input|Unterminated/i.test(message)) return "the line ends before the JSON value does";
  if (/Unexpected non-whitespace/i.test(message)) return "extra characters after the JSON value";
  return "unexpected token";
}
