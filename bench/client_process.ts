/**
 * A spawned scraper client seen from the scraper's side: write lines to its stdin, read answer lines from its
 * stdout, read its memory from /proc. Built to stay out of the way of what it measures: stdin is written in
 * large chunks, stdout is consumed chunk by chunk without decoding (see {@linkcode LineConsumer}).
 *
 * @module
 */

const NEWLINE = 0x0a;
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How many bytes of stderr are kept for error messages. */
const STDERR_TAIL_BYTES = 4096;
/** Linux reports thread CPU time in clock ticks of 10 ms (USER_HZ = 100). */
const TICK_MS = 10;
/** Bytes asked for per read of stdout. */
const READ_BUFFER_BYTES = 256 * 1024;

/** Consumes answer bytes as they arrive (see {@linkcode ClientProcess.consume}). */
export interface LineConsumer {
  /**
   * Takes `chunk` from `start`; returns the index just after the last byte it needs when it is done, or -1
   * when it wants more. Bytes after the returned index stay for the next reader.
   */
  feed(chunk: Uint8Array, start: number): number;
}

/** What to start: the argv, its working directory and its whole environment. */
export interface SpawnOptions {
  readonly command: readonly string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
  /**
   * Exit codes after end of input that count as a clean shutdown, with a note for each besides 0 (the Go
   * client exits 1 at end of input).
   */
  readonly cleanExits?: ReadonlyMap<number, string>;
}

/** The times of a pipelined exchange, from `performance.now()`. */
export interface PipelineTiming {
  /** Just before the first byte was written. */
  readonly startedAt: number;
  /** When the last input byte was accepted by the pipe. */
  readonly writtenAt: number;
  /** When the consumer said it was done (the last expected answer was read). */
  readonly finishedAt: number;
}

/** The client exited or closed stdout while an answer was awaited. */
export class ClientGoneError extends Error {
  override name = "ClientGoneError";
}

/** One running client process. Create with {@linkcode ClientProcess.spawn}; every method is for this child only. */
export class ClientProcess {
  /** `performance.now()` just before the spawn. */
  readonly spawnedAt: number;
  /** The child's process id. */
  readonly pid: number;
  /** Resolves with the exit status (also after a kill). */
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stdout: ReadableStreamBYOBReader;
  /** The buffer reads go into; a read hands it back (transferred) as the chunk's buffer. */
  #readBuffer: ArrayBuffer = new ArrayBuffer(READ_BUFFER_BYTES);
  #buffered: Uint8Array = EMPTY;
  #stderrTail: Uint8Array = EMPTY;
  #exited = false;
  #stdinClosed = false;
  /** Exit codes that count as a clean end (see {@linkcode SpawnOptions.cleanExits}). */
  readonly cleanExits: ReadonlyMap<number, string>;

  private constructor(child: Deno.ChildProcess, spawnedAt: number, cleanExits: ReadonlyMap<number, string>) {
    this.cleanExits = cleanExits;
    this.#child = child;
    this.spawnedAt = spawnedAt;
    this.pid = child.pid;
    this.#stdin = child.stdin.getWriter();
    // A BYOB reader reuses one buffer instead of allocating a chunk per read: a few µs less per round trip.
    this.#stdout = child.stdout.getReader({ mode: "byob" });
    this.status = child.status.then((status) => {
      this.#exited = true;
      return status;
    });
    void this.#drainStderr(child.stderr);
  }

  /** Starts `options.command` with piped stdio. */
  static spawn(options: SpawnOptions): ClientProcess {
    const [program, ...args] = options.command;
    const command = new Deno.Command(program, {
      args,
      cwd: options.cwd,
      env: options.env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
    const spawnedAt = performance.now();
    return new ClientProcess(command.spawn(), spawnedAt, options.cleanExits ?? new Map([[0, ""]]));
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** The last few KiB the client wrote to stderr, for error messages. */
  get stderrTail(): string {
    return decoder.decode(this.#stderrTail).trim();
  }

  /** Writes bytes (or a string) to stdin; resolves once the pipe took them. */
  async write(data: Uint8Array | string): Promise<void> {
    await this.#stdin.write(typeof data === "string" ? encoder.encode(data) : data);
  }

  /** Reads one answer line (without its `\n`) as text; throws {@linkcode ClientGoneError} at end of output. */
  async readLine(): Promise<string> {
    for (;;) {
      const newline = this.#buffered.indexOf(NEWLINE);
      if (newline !== -1) {
        const line = decoder.decode(this.#buffered.subarray(0, newline));
        this.#buffered = this.#buffered.subarray(newline + 1);
        return line;
      }
      const chunk = await this.#readChunk();
      this.#buffered = this.#buffered.length === 0 ? chunk : concat(this.#buffered, chunk);
    }
  }

  /** Writes one line and reads one answer line: a lockstep round trip. */
  async request(line: Uint8Array | string): Promise<string> {
    const written = this.write(line);
    const answer = await this.readLine();
    await written;
    return answer;
  }

  /** Feeds stdout to `consumer` until it is done; the bytes after its end stay buffered. */
  async consume(consumer: LineConsumer): Promise<void> {
    let chunk = this.#buffered;
    this.#buffered = EMPTY;
    for (;;) {
      if (chunk.length > 0) {
        const end = consumer.feed(chunk, 0);
        if (end !== -1) {
          this.#buffered = chunk.subarray(end);
          return;
        }
      }
      chunk = await this.#readChunk();
    }
  }

  /**
   * Writes `input` in chunks of `chunkBytes` while `consumer` reads the answers concurrently, as a
   * pipelining scraper does. Resolves when the consumer is done and every byte is written.
   */
  async pipeline(
    input: Uint8Array,
    consumer: LineConsumer,
    chunkBytes = 256 * 1024,
  ): Promise<PipelineTiming> {
    const startedAt = performance.now();
    let writtenAt = startedAt;
    const writing = (async () => {
      for (let offset = 0; offset < input.length; offset += chunkBytes) {
        await this.#stdin.write(input.subarray(offset, offset + chunkBytes));
      }
      writtenAt = performance.now();
    })();
    // If the write fails (the client died), the read below ends too and reports it.
    writing.catch(() => {});
    await this.consume(consumer);
    const finishedAt = performance.now();
    await writing;
    return { startedAt, writtenAt, finishedAt };
  }

  /** Closes stdin (end of input: the client should finish and exit 0). */
  async closeStdin(): Promise<void> {
    if (this.#stdinClosed) return;
    this.#stdinClosed = true;
    await this.#stdin.close().catch(() => {});
  }

  /** Closes stdin and waits for the exit; kills the process if it is still running after `graceMs`. */
  async stop(graceMs = 10_000): Promise<Deno.CommandStatus> {
    await this.closeStdin();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) =>
      timer = setTimeout(() => resolve("timeout"), graceMs)
    );
    const result = await Promise.race([this.status, timeout]);
    clearTimeout(timer);
    if (result === "timeout") this.kill();
    return await this.status;
  }

  /** Sends `signal` (default SIGKILL) to this child, if it still runs. */
  kill(signal: Deno.Signal = "SIGKILL"): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch {
      // It exited in between.
    }
  }

  /** Resident and peak resident memory in MiB from /proc/<pid>/status (Linux). */
  memory(): { rssMiB: number; peakMiB: number } {
    const status = Deno.readTextFileSync(`/proc/${this.pid}/status`);
    const kib = (field: string) => {
      const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
      if (!match) throw new Error(`/proc/${this.pid}/status has no ${field}`);
      return Number(match[1]);
    };
    return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 };
  }

  /**
   * CPU time (user + system, ms) used so far by each thread of the process, summed by thread name
   * (`deno` is the JS main thread, `tokio-runtime-w` the I/O workers, ...). Linux; 10 ms resolution.
   */
  cpuByThread(): Map<string, number> {
    const byName = new Map<string, number>();
    for (const task of Deno.readDirSync(`/proc/${this.pid}/task`)) {
      let stat: string;
      try {
        stat = Deno.readTextFileSync(`/proc/${this.pid}/task/${task.name}/stat`);
      } catch {
        continue; // the thread ended
      }
      const open = stat.indexOf("(");
      const close = stat.lastIndexOf(")");
      const name = stat.slice(open + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
      byName.set(name, (byName.get(name) ?? 0) + ticks * TICK_MS);
    }
    return byName;
  }

  /** Reads the next chunk; it stays valid until the next read (bytes kept longer are copied first). */
  async #readChunk(): Promise<Uint8Array> {
    if (this.#buffered.length > 0 && this.#buffered.buffer === this.#readBuffer) {
      this.#buffered = this.#buffered.slice();
    }
    const { value, done } = await this.#stdout.read(new Uint8Array(this.#readBuffer));
    if (value) this.#readBuffer = value.buffer as ArrayBuffer;
    if (done || !value) {
      const status = await Promise.race([
        this.status,
        new Promise<null>((r) => setTimeout(() => r(null), 200)),
      ]);
      const how = status === null ? "closed its stdout" : `exited with code ${status.code}`;
      const tail = this.stderrTail;
      throw new ClientGoneError(
        `the client ${how} while an answer was awaited${tail ? `; stderr: ${tail}` : ""}`,
      );
    }
    return value;
  }

  async #drainStderr(stream: ReadableStream<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of stream) {
        const joined = concat(this.#stderrTail, chunk);
        this.#stderrTail = joined.subarray(Math.max(0, joined.length - STDERR_TAIL_BYTES));
      }
    } catch {
      // The process is gone.
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a, 0);
  joined.set(b, a.length);
  return joined;
}
