/**
 * Puts the real api key back into a credentials line of an input log, where the log redacted it.
 *
 * @module
 */

import { REDACTED } from "../debug/redact.ts";

/** The command types whose `content` carries `api_key` fields that replay restores. */
export const CREDENTIAL_COMMANDS: ReadonlySet<string> = new Set([
  "set_credentials",
  "set_multiple_credentials",
]);

/** How the redaction marker looks inside a logged line (a JSON string). */
const REDACTED_JSON = JSON.stringify(REDACTED);

/** The result of {@linkcode restoreRedactedKey}. */
export interface RestoredLine {
  /** The line to replay: the input line, or (when a key was given and put back) the line re-encoded. */
  readonly text: string;
  /** How many `api_key` values in the line were the redaction marker (restored or not). */
  readonly redactedKeys: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Finds the `api_key` values that the input log replaced by {@linkcode REDACTED} in a `set_credentials` or
 * `set_multiple_credentials` line (content an object, or an array of objects) and, when `key` is given,
 * puts `key` in their place.
 *
 * Any other line, a line that is not valid JSON, and an `api_key` that was not redacted are left as they
 * are. A line that changed is re-encoded with `JSON.stringify`, which keeps its `type` and `content` (all the
 * client reads of a line). Never throws.
 *
 * @param line One line of an input log.
 * @param key The api key to put back (from `RTCV_SCRAPER_CLIENT_API_KEY`); `undefined` only counts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { restoreRedactedKey } from "./restore_redacted_key.ts";
 * const line = '{"type":"set_credentials","content":{"server_location":"https://rtcv.example.com",' +
 *   '"api_key_id":"aaaaaaaaaaaaaaaaaaaaaaaa","api_key":"<redacted>"}}';
 * const restored = restoreRedactedKey(line, "the-real-key");
 * assert.equal(restored.redactedKeys, 1);
 * assert.equal(JSON.parse(restored.text).content.api_key, "the-real-key");
 * assert.equal(restoreRedactedKey(line, undefined).text, line);
 * ```
 */
export function restoreRedactedKey(line: string, key: string | undefined): RestoredLine {
  const unchanged: RestoredLine = { text: line, redactedKeys: 0 };
  if (!line.includes(REDACTED_JSON)) return unchanged;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return unchanged;
  }
  if (!isRecord(value) || typeof value.type !== "string" || !CREDENTIAL_COMMANDS.has(value.type)) {
    return unchanged;
  }
  const servers: unknown[] = Array.isArray(value.content) ? value.content : [value.content];
  let redactedKeys = 0;
  for (const server of servers) {
    if (!isRecord(server) || server.api_key !== REDACTED) continue;
    redactedKeys++;
    if (key !== undefined) server.api_key = key;
  }
  if (redactedKeys === 0 || key === undefined) return { text: line, redactedKeys };
  return { text: JSON.stringify(value), redactedKeys };
}
