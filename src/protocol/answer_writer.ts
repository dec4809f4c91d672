import { type Answer, encodeAnswer, errorAnswer } from "./answers.ts";
import type { AnswerId } from "./command_line.ts";

/** Where answer bytes go: stdout in the program, a buffer in tests. */
export interface ByteSink {
  /** Writes some of `bytes`, returning how many were written (like `Deno.stdout.write`). */
  write(bytes: Uint8Array): Promise<number>;
}

/** Optional parts of an {@link AnswerWriter}. */
export interface AnswerWriterOptions {
  /**
   * Told when an answer promise rejects (a bug: the registry's answers never do). That line is answered
   * with an error and the other answers keep flowing.
   */
  readonly onInternalError?: (error: unknown) => void;
}

/**
 * Writes answers: those of lines without an id in the order their lines arrived, however the handlers
 * finish; those of lines with an id as soon as they are ready (protocol section 9), never holding up the others.
 *
 * Every answer that is ready when a write starts goes out in that one write, so a pipelining scraper
 * costs one syscall per batch, while a lockstep scraper gets its answer as soon as it exists.
 * Only one write is in flight at a time; stdout is never written by anything else. An answer promise that
 * rejects becomes an error answer for its line. Once a write fails (stdout closed), nothing more is
 * written, but answers are still awaited, so {@link idle} still means "every command has finished".
 */
export class AnswerWriter {
  readonly #sink: ByteSink;
  readonly #encoder = new TextEncoder();
  readonly #onInternalError: (error: unknown) => void;
  /**
   * The answer lines of lines without an id, in input order (null while awaited), and what each line counts
   * against the pending bytes: two flat arrays instead of an object per line. Index `i` here is line
   * `#dropped + i`; `#head` is the first not yet written.
   */
  #lines: (string | null)[] = [];
  #lineBytes: number[] = [];
  #head = 0;
  #dropped = 0;
  /** Answers of lines with an id that are ready and not yet written. */
  #unordered: string[] = [];
  /** Lines with an id whose answer is not yet written. */
  #unorderedPending = 0;
  #pendingBytes = 0;
  #writing: Promise<void> | null = null;
  #idleWaiters: (() => void)[] = [];
  #roomWaiters: { answers: number; bytes: number; wake: () => void }[] = [];
  #failure: Error | null = null;
  #failureWaiters: (() => void)[] = [];
  /** The last answer promise pushed without an id, while unsettled, and the lines (numbers) waiting for it. */
  #sharedPromise: Promise<Answer> | null = null;
  #sharedLines: number[] = [];

  /** Creates a writer over `sink`. */
  constructor(sink: ByteSink, options: AnswerWriterOptions = {}) {
    this.#sink = sink;
    this.#onInternalError = options.onInternalError ?? (() => {});
  }

  /** How many answers are queued or awaited and not yet written. */
  get pending(): number {
    return this.#lines.length - this.#head + this.#unorderedPending;
  }

  /** The bytes (see {@link PushOptions.bytes}) of the lines whose answers are not yet written. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** The error that stopped writing (stdout closed), if any. */
  get failure(): Error | null {
    return this.#failure;
  }

  /** Resolves once a write has failed (stdout closed); never, while writing works. */
  failed(): Promise<"failed"> {
    if (this.#failure) return Promise.resolve("failed");
    return new Promise((resolve) => this.#failureWaiters.push(() => resolve("failed")));
  }

  /**
   * Queues the answer to the next input line; a promise holds its place (without an id) until it settles.
   * `id` is the line's id: its answer carries it and is written as soon as it is ready, out of input
   * order. `bytes` is what the line counts against the bound of pending input (its size).
   */
  push(answer: Answer | Promise<Answer>, id?: AnswerId, bytes = 0): void {
    this.#pendingBytes += bytes;
    if (id !== undefined) {
      this.#unorderedPending++;
      const write = (settled: Answer) => {
        this.#unorderedPending--;
        this.#pendingBytes -= bytes;
        this.#unordered.push(encodeWithId(settled, id));
        this.flush();
      };
      if (answer instanceof Promise) answer.then(write, (error) => write(this.#internalError(error)));
      else write(answer);
      return;
    }
    this.#lineBytes.push(bytes);
    if (!(answer instanceof Promise)) {
      this.#lines.push(encodeAnswer(answer));
      return;
    }
    const line = this.#dropped + this.#lines.length;
    this.#lines.push(null);
    if (answer === this.#sharedPromise) {
      this.#sharedLines.push(line); // pipelined lines answered by one promise: one reaction for them all
      return;
    }
    const waiting = [line];
    this.#sharedPromise = answer;
    this.#sharedLines = waiting;
    const settle = (settled: Answer) => {
      if (this.#sharedPromise === answer) this.#sharedPromise = null;
      const text = encodeAnswer(settled);
      const dropped = this.#dropped;
      for (const number of waiting) this.#lines[number - dropped] = text;
      if (this.#head + dropped === line) this.flush();
    };
    answer.then(settle, (error) => settle(this.#internalError(error)));
  }

  /** Starts writing whatever is ready, unless a write is already running. */
  flush(): void {
    if (this.#writing !== null) return;
    const text = this.#takeReady();
    if (text === "") {
      if (this.pending === 0) this.#wakeIdle();
      return;
    }
    const bytes = COMMON_LINES.get(text) ?? this.#encoder.encode(text);
    this.#writing = this.#writeAll(bytes).then(() => {
      this.#writing = null;
      this.flush();
    });
  }

  /**
   * Resolves once fewer than `answers` answers and fewer than `bytes` bytes are waiting (or writing has
   * failed): a reader applies backpressure with it without draining the pipeline completely.
   */
  room(answers: number, bytes: number = Infinity): Promise<void> {
    if (this.#hasRoom(answers, bytes)) return Promise.resolve();
    return new Promise((wake) => this.#roomWaiters.push({ answers, bytes, wake }));
  }

  /** Resolves once every queued answer has been written (after a failed write: once every one is settled). */
  idle(): Promise<void> {
    if (this.pending === 0 && this.#writing === null) return Promise.resolve();
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      this.flush();
    });
  }

  #hasRoom(answers: number, bytes: number): boolean {
    return (this.pending < answers && this.#pendingBytes < bytes) || this.#failure !== null;
  }

  #internalError(error: unknown): Answer {
    try {
      this.#onInternalError(error);
    } catch {
      // Reporting a bug must not become a second one.
    }
    const reason = error instanceof Error ? error.message : String(error);
    return errorAnswer(`the command failed unexpectedly (a bug in the client): ${reason}`);
  }

  #takeReady(): string {
    const parts = this.#unordered;
    this.#unordered = [];
    const lines = this.#lines;
    while (this.#head < lines.length) {
      const line = lines[this.#head];
      if (line === null) break;
      parts.push(line);
      this.#pendingBytes -= this.#lineBytes[this.#head];
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > lines.length) {
      this.#lines = lines.slice(this.#head);
      this.#lineBytes = this.#lineBytes.slice(this.#head);
      this.#dropped += this.#head;
      this.#head = 0;
    }
    if (this.#roomWaiters.length > 0) this.#wakeRoom();
    return parts.length === 1 ? parts[0] : parts.join("");
  }

  #wakeRoom(): void {
    const waiting = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const waiter of waiting) {
      if (this.#hasRoom(waiter.answers, waiter.bytes)) waiter.wake();
      else this.#roomWaiters.push(waiter);
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    if (this.#failure) return; // stdout is gone: the answers are dropped, the commands still finish
    try {
      let offset = 0;
      while (offset < bytes.length) offset += await this.#sink.write(bytes.subarray(offset));
    } catch (error) {
      this.#failure = error instanceof Error ? error : new Error(String(error));
      const waiters = this.#failureWaiters;
      this.#failureWaiters = [];
      for (const wake of waiters) wake();
      this.#wakeRoom();
    }
  }

  #wakeIdle(): void {
    this.#wakeRoom();
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

/** The bytes of the answers a lockstep scraper gets most, encoded once (they are never changed). */
const COMMON_LINES: ReadonlyMap<string, Uint8Array> = new Map(
  [{ type: "pong" }, { type: "ok" }, { type: "ok", content: true }, { type: "ok", content: false }].map((
    answer,
  ) => {
    const line = encodeAnswer(answer as Answer);
    return [line, new TextEncoder().encode(line)];
  }),
);

/** Encodes an answer with the id of its line (`"id"` after the answer's own fields). */
function encodeWithId(answer: Answer, id: AnswerId): string {
  const line = encodeAnswer(answer); // compact JSON object + "\n"; the common ones are constants
  return `${line.slice(0, -2)},"id":${JSON.stringify(id)}}\n`;
}
