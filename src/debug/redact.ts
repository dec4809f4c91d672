/**
 * Redaction of credentials in raw input lines before they are written to the input log.
 *
 * @module
 */

/**
 * The value that replaces a credential. In the redacted line it appears as the JSON string `"<redacted>"`, so
 * after `JSON.parse` the field's value is equal to `REDACTED` (replay uses that to put the real key back).
 */
export const REDACTED = "<redacted>";

const REDACTED_JSON = JSON.stringify(REDACTED);

/** Field names whose values are secrets, compared case-insensitively (Go's JSON decoder ignores case too). */
const SECRET_FIELDS = new Set(["api_key", "apikey", "token", "private_key", "privatekey"]);

/**
 * A secret field name written plainly, then the colon. Matched at every position (not only where a JSON
 * tokenizer would see a key), so that junk before it cannot hide it.
 */
const PLAIN_KEY = /"(?:api_key|apikey|token|private_key|privatekey)"[ \t\r\n]*:[ \t\r\n]*/gi;

const WHITESPACE = new Set([" ", "\t", "\r", "\n"]);

/** Scans a JSON string that starts at `start` (a `"`); returns the index after its closing quote or the end. */
function endOfString(line: string, start: number): number {
  let i = start + 1;
  while (i < line.length) {
    const c = line[i];
    if (c === "\\") i += 2;
    else if (c === '"') return i + 1;
    else i++;
  }
  return line.length;
}

/**
 * The end of the value token that starts at `start`: a string, a whole (possibly unterminated) object or
 * array, or a bare token such as a number, `null` or junk. Returns `start` when there is no value.
 */
function endOfValue(line: string, start: number): number {
  if (start >= line.length) return start;
  const first = line[start];
  if (first === '"') return endOfString(line, start);
  if (first === "{" || first === "[") {
    let depth = 0;
    let i = start;
    while (i < line.length) {
      const c = line[i];
      if (c === '"') {
        i = endOfString(line, i);
        continue;
      }
      if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return line.length;
  }
  let i = start;
  while (i < line.length && !WHITESPACE.has(line[i]) && !",}]".includes(line[i])) i++;
  return i;
}

/** Decodes the body of a JSON string leniently; `null` when it is not valid JSON string content. */
function decodeKey(body: string): string | null {
  try {
    const value: unknown = JSON.parse(`"${body}"`);
    return typeof value === "string" ? value : null;
  } catch {
    return null;
  }
}

/** Start and end (exclusive) of a value to replace. */
type Range = [number, number];

/** Index after the JSON whitespace starting at `i`. */
function skipWhitespace(line: string, i: number): number {
  while (i < line.length && WHITESPACE.has(line[i])) i++;
  return i;
}

/** Values of secret fields whose names are written plainly. Linear in the line length. */
function plainKeyRanges(line: string, ranges: Range[]): void {
  PLAIN_KEY.lastIndex = 0;
  for (let m = PLAIN_KEY.exec(line); m !== null; m = PLAIN_KEY.exec(line)) {
    const valueStart = m.index + m[0].length;
    const end = endOfValue(line, valueStart);
    if (end > valueStart) {
      ranges.push([valueStart, end]);
      // Anything inside the value is replaced with it: continue after it.
      PLAIN_KEY.lastIndex = end;
    } else {
      PLAIN_KEY.lastIndex = m.index + 1;
    }
  }
}

/**
 * Values of secret fields whose names contain escapes (`"api\u005fkey"`). Walks the line string by string
 * as a JSON tokenizer would; linear in the line length.
 */
function escapedKeyRanges(line: string, ranges: Range[]): void {
  let i = line.indexOf('"');
  while (i !== -1 && i < line.length) {
    const end = endOfString(line, i);
    const body = line.slice(i + 1, end - 1);
    const colon = skipWhitespace(line, end);
    if (end <= line.length && line[end - 1] === '"' && line[colon] === ":" && body.includes("\\")) {
      const key = decodeKey(body);
      if (key !== null && SECRET_FIELDS.has(key.toLowerCase())) {
        const valueStart = skipWhitespace(line, colon + 1);
        const valueEnd = endOfValue(line, valueStart);
        if (valueEnd > valueStart) {
          ranges.push([valueStart, valueEnd]);
          i = line.indexOf('"', valueEnd);
          continue;
        }
      }
    }
    i = line.indexOf('"', end);
  }
}

function collectRanges(line: string): Range[] {
  const ranges: Range[] = [];
  plainKeyRanges(line, ranges);
  if (line.includes("\\")) escapedKeyRanges(line, ranges);
  return ranges;
}

/**
 * Replaces the values of `api_key`, `apiKey`, `token` and `private_key` (`privateKey`) fields (any letter case, also when the name is
 * written with JSON escapes) in a raw input line with the JSON string `"<redacted>"`, leaving every other
 * character of the line as it was.
 *
 * It does not need valid JSON: truncated lines, junk around the fields, strings with escaped quotes,
 * non-string values (numbers, `null`, objects, arrays: the whole value is replaced) and several occurrences
 * (an array of credentials) are all handled. It errs on the side of redacting too much and never throws.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redactSecrets } from "./redact.ts";
 * const line = '{"type":"set_credentials","content":{"api_key_id":"abc","api_key":"s3cr\\"et"}}';
 * assert.equal(redactSecrets(line), '{"type":"set_credentials","content":{"api_key_id":"abc","api_key":"<redacted>"}}');
 * ```
 */
export function redactSecrets(line: string): string {
  try {
    const lower = line.toLowerCase();
    if (!lower.includes("key") && !lower.includes("token") && !line.includes("\\")) return line;
    const ranges = collectRanges(line);
    if (ranges.length === 0) return line;
    ranges.sort((a, b) => a[0] - b[0]);
    let out = "";
    let pos = 0;
    for (const [start, end] of ranges) {
      if (start < pos) {
        // Nested in (or overlapping) a value already replaced: widen that replacement if needed.
        pos = Math.max(pos, end);
        continue;
      }
      out += line.slice(pos, start) + REDACTED_JSON;
      pos = end;
    }
    return out + line.slice(pos);
  } catch {
    // Unreachable in practice; never let a log line with a possible secret through.
    return REDACTED_JSON;
  }
}
