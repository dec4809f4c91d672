import { type Answer, encodeAnswer } from "./answers.ts";

/** Where answer bytes go: stdout in the program, a buffer in tests. */
export interface ByteSink {
  /** Writes some of `bytes`, returning how many were written (like `Deno.stdout.write`). */
  write(bytes: Uint8Array): Promise<number>;
}

interface Slot {
  line: string | null;
}

/**
 * Writes answers in the order their commands arrived, however the handlers finish.
 *
 * Every answer that is ready when a write starts goes out in that one write, so a pipelining scraper
 * costs one syscall per batch, while a lockstep scraper gets its answer as soon as it exists.
 * Only one write is in flight at a time; stdout is never written by anything else.
 */
export class AnswerWriter {
  readonly #sink: ByteSink;
  readonly #encoder = new TextEncoder();
  #slots: Slot[] = [];
  #head = 0;
  #writing: Promise<void> | null = null;
  #idleWaiters: (() => void)[] = [];
  #roomWaiters: { below: number; wake: () => void }[] = [];
  #failure: Error | null = null;

  /** Creates a writer over `sink`. */
  constructor(sink: ByteSink) {
    this.#sink = sink;
  }

  /** How many answers are queued or awaited and not yet written. */
  get pending(): number {
    return this.#slots.length - this.#head;
  }

  /** The error that stopped writing (stdout closed), if any. */
  get failure(): Error | null {
    return this.#failure;
  }

  /** Queues the answer to the next input line; a promise holds its place until it settles. */
  push(answer: Answer | Promise<Answer>): void {
    if (!(answer instanceof Promise)) {
      this.#slots.push({ line: encodeAnswer(answer) });
      return;
    }
    const slot: Slot = { line: null };
    this.#slots.push(slot);
    answer.then((settled) => {
      slot.line = encodeAnswer(settled);
      if (this.#slots[this.#head] === slot) this.flush();
    });
  }

  /** Starts writing whatever is ready at the head of the queue, unless a write is already running. */
  flush(): void {
    if (this.#writing !== null) return;
    const text = this.#takeReady();
    if (text === "") {
      if (this.pending === 0) this.#wakeIdle();
      return;
    }
    this.#writing = this.#writeAll(this.#encoder.encode(text)).then(() => {
      this.#writing = null;
      this.flush();
    });
  }

  /**
   * Resolves once fewer than `below` answers are waiting (or writing has failed): a reader applies
   * backpressure with it without draining the pipeline completely.
   */
  room(below: number): Promise<void> {
    if (this.pending < below || this.#failure) return Promise.resolve();
    return new Promise((wake) => this.#roomWaiters.push({ below, wake }));
  }

  /** Resolves once every queued answer has been written (or writing has failed). */
  idle(): Promise<void> {
    if ((this.pending === 0 && this.#writing === null) || this.#failure) return Promise.resolve();
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      this.flush();
    });
  }

  #takeReady(): string {
    const parts: string[] = [];
    while (this.#head < this.#slots.length) {
      const line = this.#slots[this.#head].line;
      if (line === null) break;
      parts.push(line);
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#slots.length) {
      this.#slots = this.#slots.slice(this.#head);
      this.#head = 0;
    }
    if (this.#roomWaiters.length > 0) this.#wakeRoom();
    return parts.length === 1 ? parts[0] : parts.join("");
  }

  #wakeRoom(): void {
    const waiting = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const waiter of waiting) {
      if (this.pending < waiter.below || this.#failure) waiter.wake();
      else this.#roomWaiters.push(waiter);
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    if (this.#failure) return;
    try {
      let offset = 0;
      while (offset < bytes.length) offset += await this.#sink.write(bytes.subarray(offset));
    } catch (error) {
      this.#failure = error instanceof Error ? error : new Error(String(error));
      this.#slots = [];
      this.#head = 0;
      this.#wakeIdle();
    }
  }

  #wakeIdle(): void {
    this.#wakeRoom();
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
