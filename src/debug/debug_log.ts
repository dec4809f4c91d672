/**
 * The debug log (`ENABLE_SCRAPER_CLIENT_LOG`): timestamped diagnostic lines in a private (0600) file.
 *
 * @module
 */

import { BatchedFileWriter } from "./input_log.ts";
import { redactSecrets } from "./redact.ts";

/**
 * Debug log lines, each `<ISO 8601 UTC timestamp> <message>\n`, appended to a file with mode 0600 through
 * batched writes. A disabled log ({@linkcode DebugLog.disabled}) accepts the same calls and does nothing, so
 * callers never need to check; check {@linkcode DebugLog.enabled} only to skip building an expensive message.
 * Line breaks in a message are written as `\n` so every entry stays one line, and credential fields are
 * redacted as in the input log (a safety net: do not put secrets in messages).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DebugLog } from "./debug_log.ts";
 * const path = await Deno.makeTempFile();
 * const log = await DebugLog.open(path);
 * log.log("set_credentials: https://rtcv.example.com has no warm-up route (404), skipped");
 * await log.close();
 * assert.match(Deno.readTextFileSync(path), /^\d{4}-\d\d-\d\dT[\d:.]+Z set_credentials: .*skipped\n$/);
 * await Deno.remove(path);
 *
 * const off = DebugLog.disabled();
 * off.log("costs nothing");
 * assert.equal(off.enabled, false);
 * ```
 */
export class DebugLog {
  readonly #writer: BatchedFileWriter | null;

  private constructor(writer: BatchedFileWriter | null) {
    this.#writer = writer;
  }

  /** A log that writes nothing. */
  static disabled(): DebugLog {
    return new DebugLog(null);
  }

  /**
   * Opens (creating if needed, mode 0600) the debug log at `path` for appending.
   *
   * @throws {Error} `LogWriteError` (from `input_log.ts`) when the file cannot be opened or made private.
   */
  static async open(path: string): Promise<DebugLog> {
    return new DebugLog(await BatchedFileWriter.open(path));
  }

  /** Whether messages are written anywhere. */
  get enabled(): boolean {
    return this.#writer !== null && !this.#writer.closed;
  }

  /** Queues one message with the current time. A no-op when disabled or closed. Never throws. */
  log(message: string): void {
    const writer = this.#writer;
    if (writer === null || writer.closed) return;
    const oneLine = message.replace(/\r\n|\r|\n/g, "\\n");
    writer.write(`${new Date().toISOString()} ${redactSecrets(oneLine)}\n`);
  }

  /**
   * Writes all queued messages to the file.
   *
   * @throws {Error} `LogWriteError` (from `input_log.ts`) when a write failed since the last flush.
   */
  async flush(): Promise<void> {
    await this.#writer?.flush();
  }

  /**
   * Flushes and closes the file; a no-op when disabled.
   *
   * @throws {Error} `LogWriteError` (from `input_log.ts`) when a write failed or the file cannot be closed.
   */
  async close(): Promise<void> {
    await this.#writer?.close();
  }
}
