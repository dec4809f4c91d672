/**
 * The input log (`LOG_SCRAPER_CLIENT_INPUT`): every raw input line, with credentials redacted, appended to a
 * file that only its owner can read. `replay` reads it back.
 *
 * @module
 */

import { redactSecrets } from "./redact.ts";

/** Writes larger than this many UTF-16 code units start at once instead of waiting for the timer. */
const EAGER_WRITE_CHARS = 1 << 20;

/** A log file could not be opened, written or closed. `cause` holds the underlying error. */
export class LogWriteError extends Error {
  /** The log file. */
  readonly path: string;

  /** `action` says what failed, e.g. `cannot write log file`; the message is `<action> <path>: <reason>`. */
  constructor(action: string, path: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`${action} ${path}: ${reason}`, { cause });
    this.name = "LogWriteError";
    this.path = path;
  }
}

/**
 * An append-only text file with mode 0600 whose writes are batched: {@linkcode BatchedFileWriter.write}
 * only buffers, and the buffer goes to the file in one write when a timer fires (or at once when it grows
 * large), so a burst of lines costs one syscall, not one per line. Order is kept. Used by
 * {@linkcode InputLog} and `DebugLog`; call {@linkcode BatchedFileWriter.close} before exiting or the last
 * lines are lost.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BatchedFileWriter } from "./input_log.ts";
 * const path = await Deno.makeTempFile();
 * const writer = await BatchedFileWriter.open(path);
 * writer.write("one\n");
 * writer.write("two\n");
 * await writer.close();
 * assert.equal(Deno.readTextFileSync(path), "one\ntwo\n");
 * await Deno.remove(path);
 * ```
 */
export class BatchedFileWriter {
  readonly #path: string;
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();
  #pending: string[] = [];
  #pendingChars = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #draining: Promise<void> | null = null;
  #error: unknown = undefined;
  #closing: Promise<void> | null = null;

  private constructor(path: string, file: Deno.FsFile) {
    this.#path = path;
    this.#file = file;
  }

  /**
   * Opens `path` for appending, creating it with mode 0600. An existing file readable or writable by others
   * is changed to 0600 (not on Windows, which has no such modes).
   *
   * @throws {LogWriteError} when the file cannot be opened or its mode cannot be changed.
   */
  static async open(path: string): Promise<BatchedFileWriter> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { append: true, create: true, mode: 0o600 });
    } catch (err) {
      throw new LogWriteError("cannot open log file", path, err);
    }
    if (Deno.build.os !== "windows") {
      try {
        const info = await file.stat();
        if (info.mode !== null && (info.mode & 0o077) !== 0) await Deno.chmod(path, 0o600);
      } catch (err) {
        file.close();
        throw new LogWriteError("cannot set mode 0600 on log file", path, err);
      }
    }
    return new BatchedFileWriter(path, file);
  }

  /** The file this writer appends to. */
  get path(): string {
    return this.#path;
  }

  /** Whether {@linkcode BatchedFileWriter.close} has been called. */
  get closed(): boolean {
    return this.#closing !== null;
  }

  /** Buffers `text` for appending. Ignored after {@linkcode BatchedFileWriter.close}. Never throws. */
  write(text: string): void {
    if (this.#closing !== null || text === "") return;
    this.#pending.push(text);
    this.#pendingChars += text.length;
    if (this.#pendingChars >= EAGER_WRITE_CHARS) this.#startDrain();
    else this.#schedule();
  }

  /**
   * Writes everything buffered so far to the file.
   *
   * @throws {LogWriteError} when a write since the last flush failed (the lines of that write are lost).
   */
  async flush(): Promise<void> {
    this.#cancelTimer();
    while (this.#pending.length > 0 || this.#draining !== null) await this.#startDrain();
    this.#throwStoredError();
  }

  /**
   * Flushes and closes the file. Calling it again returns the same promise.
   *
   * @throws {LogWriteError} when a write failed since the last flush or the file cannot be closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    try {
      this.#cancelTimer();
      while (this.#pending.length > 0 || this.#draining !== null) await this.#startDrain();
    } finally {
      try {
        this.#file.close();
      } catch (err) {
        this.#error ??= new LogWriteError("cannot close log file", this.#path, err);
      }
    }
    this.#throwStoredError();
  }

  #throwStoredError(): void {
    const err = this.#error;
    if (err === undefined) return;
    this.#error = undefined;
    throw err;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#draining !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#startDrain();
    }, 0);
  }

  #cancelTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Starts writing the buffer unless a write is running (which picks up new text itself). */
  #startDrain(): Promise<void> {
    this.#cancelTimer();
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = null;
      // Text written between the end of the loop and now would otherwise wait for the next write.
      if (this.#pending.length > 0 && this.#closing === null) this.#schedule();
    });
    return this.#draining;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const chunk = this.#encoder.encode(this.#pending.join(""));
      this.#pending = [];
      this.#pendingChars = 0;
      try {
        let written = 0;
        while (written < chunk.length) written += await this.#file.write(chunk.subarray(written));
      } catch (err) {
        this.#error ??= new LogWriteError("cannot write log file", this.#path, err);
      }
    }
  }
}

/**
 * The input log: {@linkcode InputLog.append} takes each raw input line as read (decoded leniently by the
 * caller, so invalid UTF-8 arrives as U+FFFD), replaces credential values with `"<redacted>"` and appends it
 * with `\n` to the file. The file has mode 0600. Writes are batched; {@linkcode InputLog.close} flushes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InputLog } from "./input_log.ts";
 * const path = await Deno.makeTempFile();
 * const log = await InputLog.open(path);
 * log.append('{"type":"set_credentials","content":{"api_key":"secret"}}');
 * await log.close();
 * assert.equal(Deno.readTextFileSync(path), '{"type":"set_credentials","content":{"api_key":"<redacted>"}}\n');
 * await Deno.remove(path);
 * ```
 */
export class InputLog {
  readonly #writer: BatchedFileWriter;

  private constructor(writer: BatchedFileWriter) {
    this.#writer = writer;
  }

  /**
   * Opens (creating if needed) the input log at `path` for appending; see {@linkcode BatchedFileWriter.open}.
   *
   * @throws {LogWriteError} when the file cannot be opened or made private.
   */
  static async open(path: string): Promise<InputLog> {
    return new InputLog(await BatchedFileWriter.open(path));
  }

  /** The log file. */
  get path(): string {
    return this.#writer.path;
  }

  /**
   * Queues one raw input line (without its line ending) for the log, redacted. Ignored after
   * {@linkcode InputLog.close}. Never throws.
   */
  append(line: string): void {
    if (this.#writer.closed) return;
    this.#writer.write(redactSecrets(line) + "\n");
  }

  /**
   * Writes all queued lines to the file.
   *
   * @throws {LogWriteError} when a write failed since the last flush.
   */
  flush(): Promise<void> {
    return this.#writer.flush();
  }

  /**
   * Flushes and closes the file.
   *
   * @throws {LogWriteError} when a write failed since the last flush or the file cannot be closed.
   */
  close(): Promise<void> {
    return this.#writer.close();
  }
}
