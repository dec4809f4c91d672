/**
 * Test helper: runs `rtcv_scraper_client` the way a scraper does, as a child process (`deno run -A main.ts`)
 * with piped stdin, stdout and stderr, and talks the line protocol to it.
 *
 * Two ways to use it:
 *
 * - {@link spawnClient} for a conversation: send lines, read answers one by one, send signals.
 *   Always bind it with `await using`, so the process, its pipes and its temp dir are released even when an
 *   assertion fails (Deno's test sanitizers report leaked processes and streams otherwise).
 * - {@link runSession} for a batch: write all lines, close stdin, collect every answer, stderr and the exit code.
 *
 * The child never inherits this process's client settings: every `RTCV_SCRAPER_CLIENT_*` variable,
 * `LOG_SCRAPER_CLIENT_INPUT`, `ENABLE_SCRAPER_CLIENT_LOG` and `DENO_KV_ACCESS_TOKEN` are removed from the
 * environment, then `env` is added. Without `cwd`, the client runs in a fresh temp dir (removed when the client
 * is closed), so its default store (`rtcv_scraper_client.kv` in the working directory) and its log files never
 * land in the repository.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { READY_LINE, spawnClient } from "./helpers/spawn_client.ts";
 *
 * Deno.test("ping", async () => {
 *   await using client = spawnClient({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
 *   assert.equal(await client.readLine(), READY_LINE);
 *   assert.deepEqual(await client.request({ type: "ping" }), { type: "pong" });
 *   const { status } = await client.finish();
 *   assert.equal(status.code, 0);
 * });
 * ```
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

/** The path of the client's entry point (`main.ts` at the repository root). */
export const MAIN_TS: string = fileURLToPath(new URL("../../main.ts", import.meta.url));

/** The repository root (where `deno.json` and `fixtures/` are). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** The first line the client writes, exactly. */
export const READY_LINE = '{"type":"ready","content":"waiting for credentials"}';
/** The answer lines a session expects most, exactly as the client writes them. */
export const PONG = '{"type":"pong"}';
/** `ok` without content. */
export const OK = '{"type":"ok"}';
/** `ok` with `true`. */
export const OK_TRUE = '{"type":"ok","content":true}';
/** `ok` with `false`. */
export const OK_FALSE = '{"type":"ok","content":false}';

/** How long {@link ClientProcess.readLine} and the other waits give the client by default. */
export const DEFAULT_TIMEOUT_MS = 15_000;

/** The answer types a protocol line may carry on stdout. */
export const ANSWER_TYPES: readonly string[] = ["ready", "ok", "pong", "error"];

/** One parsed protocol line from the client's stdout. */
export interface ProtocolAnswer {
  /** `ready`, `ok`, `pong` or `error`. */
  readonly type: string;
  /** Present on `ok` with a value, `error` (a string) and `ready`. */
  readonly content?: unknown;
}

/** What {@link spawnClient} and {@link runSession} start the client with. */
export interface SpawnClientOptions {
  /** Added to the client's environment (after the client's own variables were removed from the inherited one). */
  readonly env?: Record<string, string>;
  /** The working directory; default: a fresh temp dir that is removed when the client is closed. */
  readonly cwd?: string;
  /** Arguments after `main.ts` (e.g. `["--version"]`). */
  readonly args?: readonly string[];
  /** Timeout of each wait (a line, the exit, the end of a stream), in ms; default {@link DEFAULT_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
}

/** How the client ended, and what it wrote after the lines already read. */
export interface FinishedClient {
  /** The exit status (`code`, `signal`). */
  readonly status: Deno.CommandStatus;
  /** The stdout lines not read before (without their `\n`); a last line without `\n` is included as is. */
  readonly rest: string[];
  /** The same unread stdout, as the text it was. */
  readonly restText: string;
  /** Everything the client wrote on stderr. */
  readonly stderr: string;
}

const CLIENT_ENV_PREFIXES = ["RTCV_SCRAPER_CLIENT_"];
const CLIENT_ENV_NAMES = ["LOG_SCRAPER_CLIENT_INPUT", "ENABLE_SCRAPER_CLIENT_LOG", "DENO_KV_ACCESS_TOKEN"];

/** The inherited environment without any variable that changes what the client does. */
function scrubbedEnv(extra: Record<string, string> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (CLIENT_ENV_NAMES.includes(name) || CLIENT_ENV_PREFIXES.some((prefix) => name.startsWith(prefix))) {
      continue;
    }
    env[name] = value;
  }
  return { ...env, ...extra };
}

/** Rejects with `message` (built late, so it can hold the latest stderr) when `promise` takes too long. */
async function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const encoder = new TextEncoder();

/** Encodes what a test sends: an object becomes compact JSON, a string is taken as it is. */
function lineText(line: string | object): string {
  return typeof line === "string" ? line : JSON.stringify(line);
}

/**
 * Parses one stdout line and checks it is a protocol line: compact JSON (exactly what `JSON.stringify`
 * writes), an object with a known `type`, and for `error` a string `content`. Throws an assertion error
 * naming the line otherwise.
 */
export function parseAnswer(line: string): ProtocolAnswer {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    assert.fail(`stdout line is not JSON: ${JSON.stringify(line.slice(0, 300))}`);
  }
  assert.ok(
    value !== null && typeof value === "object" && !Array.isArray(value),
    `stdout line is not a JSON object: ${line.slice(0, 300)}`,
  );
  const answer = value as ProtocolAnswer;
  assert.ok(ANSWER_TYPES.includes(answer.type), `stdout line has an unknown type: ${line.slice(0, 300)}`);
  assert.equal(JSON.stringify(value), line, "stdout line is not compact JSON");
  const keys = Object.keys(answer);
  assert.ok(
    keys.every((key) => key === "type" || key === "content"),
    `stdout line has fields other than type and content: ${line.slice(0, 300)}`,
  );
  if (answer.type === "error" || answer.type === "ready") {
    assert.equal(typeof answer.content, "string", `${answer.type} content must be a string: ${line}`);
  }
  if (answer.type === "pong") assert.deepEqual(keys, ["type"], `pong carries no content: ${line}`);
  return answer;
}

/**
 * A running client. Build it with {@link spawnClient}. Reading stdout and stderr runs in the background
 * from the start, so the client never blocks on a full pipe while a test is still writing.
 */
export class ClientProcess implements AsyncDisposable {
  /** The exit status; resolves when the process has exited. */
  readonly status: Promise<Deno.CommandStatus>;
  /** The working directory the client runs in. */
  readonly cwd: string;
  /** The process id. */
  readonly pid: number;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #timeoutMs: number;
  readonly #ownsCwd: boolean;
  readonly #stdoutDone: Promise<void>;
  readonly #stderrDone: Promise<void>;
  #stdout = ""; // stdout text; what is before #stdoutRead has been read
  #stdoutRead = 0;
  #stdoutEnded = false;
  #stdoutWaiters: (() => void)[] = [];
  #stderr = "";
  #stdinClosed = false;
  #exited = false;
  #disposed = false;

  /** Starts the client; use {@link spawnClient}. */
  constructor(options: SpawnClientOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#ownsCwd = options.cwd === undefined;
    this.cwd = options.cwd ?? Deno.makeTempDirSync({ prefix: "rtcv_client_test_" });
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN_TS, ...(options.args ?? [])],
      cwd: this.cwd,
      clearEnv: true,
      env: scrubbedEnv(options.env),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    this.status = this.#child.status.then((status) => {
      this.#exited = true;
      return status;
    });
    this.#writer = this.#child.stdin.getWriter();
    this.#stdoutDone = this.#pump(this.#child.stdout, (text) => {
      this.#stdout += text;
      this.#wakeStdout();
    }).finally(() => {
      this.#stdoutEnded = true;
      this.#wakeStdout();
    });
    this.#stderrDone = this.#pump(this.#child.stderr, (text) => {
      this.#stderr += text;
    });
  }

  async #pump(stream: ReadableStream<Uint8Array>, onText: (text: string) => void): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) onText(decoder.decode(chunk, { stream: true }));
    onText(decoder.decode());
  }

  #wakeStdout(): void {
    const waiters = this.#stdoutWaiters;
    this.#stdoutWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Writes one line: a string as it is, an object as compact JSON; `\n` is added. */
  send(line: string | object): Promise<void> {
    return this.sendRaw(lineText(line) + "\n");
  }

  /** Writes bytes (or a string's UTF-8) exactly as given: no `\n` is added. */
  sendRaw(bytes: Uint8Array | string): Promise<void> {
    return this.#writer.write(typeof bytes === "string" ? encoder.encode(bytes) : bytes);
  }

  /**
   * The next stdout line, without its `\n`. Fails with the stderr seen so far when no line comes within the
   * timeout, or when stdout ends first.
   */
  async readLine(timeoutMs = this.#timeoutMs): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const newline = this.#stdout.indexOf("\n", this.#stdoutRead);
      if (newline !== -1) {
        const line = this.#stdout.slice(this.#stdoutRead, newline);
        this.#stdoutRead = newline + 1;
        if (this.#stdoutRead > 65_536) {
          // Drop what was read, now and then: reading many lines one by one stays linear.
          this.#stdout = this.#stdout.slice(this.#stdoutRead);
          this.#stdoutRead = 0;
        }
        return line;
      }
      if (this.#stdoutEnded) {
        const status = await this.status;
        assert.fail(
          `the client's stdout ended before a complete line (exit code ${status.code}, signal ${status.signal}); ` +
            `unread: ${JSON.stringify(this.#stdout.slice(this.#stdoutRead, this.#stdoutRead + 300))}; ` +
            `stderr: ${this.#stderr.slice(-2000)}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        assert.fail(
          `no line from the client within ${timeoutMs} ms; stderr so far: ${this.#stderr.slice(-2000)}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#stdoutWaiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Reads `count` lines. */
  async readLines(count: number, timeoutMs = this.#timeoutMs): Promise<string[]> {
    const lines: string[] = [];
    for (let i = 0; i < count; i++) lines.push(await this.readLine(timeoutMs));
    return lines;
  }

  /**
   * Reads the next line, checks it is a ready line and returns its content (`waiting for credentials`, or the
   * mode a configuration set, e.g. `live: http://127.0.0.1:1234`).
   */
  async ready(): Promise<string> {
    const line = await this.readLine();
    const parsed = JSON.parse(line);
    assert.equal(parsed.type, "ready", `the client's first line must be the ready line, not ${line}`);
    assert.equal(typeof parsed.content, "string", line);
    return parsed.content;
  }

  /** Sends one command and reads one answer, parsed and checked by {@link parseAnswer}. */
  async request(command: string | object): Promise<ProtocolAnswer> {
    await this.send(command);
    return parseAnswer(await this.readLine());
  }

  /** Closes the client's stdin (end of input); safe to call more than once or after the client died. */
  async closeStdin(): Promise<void> {
    if (this.#stdinClosed) return;
    this.#stdinClosed = true;
    await this.#writer.close().catch(() => {});
  }

  /** Sends a signal; does nothing if the process has already exited. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch {
      // It exited between the check and the kill.
    }
  }

  /** The stderr text received so far (the process may still be writing). */
  stderrSoFar(): string {
    return this.#stderr;
  }

  /** All of stderr: waits until the process closed it (normally when it exits). */
  async stderrText(timeoutMs = this.#timeoutMs): Promise<string> {
    await withTimeout(
      this.#stderrDone,
      timeoutMs,
      () => `the client did not close stderr within ${timeoutMs} ms`,
    );
    return this.#stderr;
  }

  /** The stdout text not read yet, once the process closed stdout (normally when it exits). */
  async stdoutRest(timeoutMs = this.#timeoutMs): Promise<string> {
    await withTimeout(
      this.#stdoutDone,
      timeoutMs,
      () => `the client did not close stdout within ${timeoutMs} ms; stderr: ${this.#stderr.slice(-2000)}`,
    );
    const rest = this.#stdout.slice(this.#stdoutRead);
    this.#stdout = "";
    this.#stdoutRead = 0;
    return rest;
  }

  /**
   * Closes stdin and waits for the client to exit on its own; then returns the status, the unread stdout lines
   * and stderr. Fails (after killing the client) when it does not exit within the timeout.
   */
  async finish(timeoutMs = this.#timeoutMs): Promise<FinishedClient> {
    // Not awaited first: closing waits for pending writes, which a stuck client would never take.
    const closing = this.closeStdin();
    const finished = await this.waitForExit(timeoutMs);
    await closing;
    return finished;
  }

  /** Waits for the client to exit (without closing stdin); like {@link finish} otherwise. */
  async waitForExit(timeoutMs = this.#timeoutMs): Promise<FinishedClient> {
    let status: Deno.CommandStatus;
    try {
      status = await withTimeout(
        this.status,
        timeoutMs,
        () => `the client did not exit within ${timeoutMs} ms; stderr: ${this.#stderr.slice(-2000)}`,
      );
    } catch (error) {
      this.kill("SIGKILL");
      throw error;
    }
    const restText = await this.stdoutRest(timeoutMs);
    const rest = restText === "" ? [] : restText.split("\n");
    if (rest.at(-1) === "") rest.pop();
    return { status, rest, restText, stderr: await this.stderrText(timeoutMs) };
  }

  /**
   * Releases everything: closes stdin, gives the client a moment to exit, kills it (SIGKILL) if it does not,
   * waits for its pipes to close and removes the temp dir it ran in (if the helper made it).
   */
  async close(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const closing = this.closeStdin();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.status.then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 3000)),
    ]);
    clearTimeout(timer);
    if (!exited) this.kill("SIGKILL");
    await this.status;
    await closing;
    await Promise.allSettled([this.#stdoutDone, this.#stderrDone]);
    if (this.#ownsCwd) await Deno.remove(this.cwd, { recursive: true }).catch(() => {});
  }

  /** `await using client = spawnClient()` calls {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts the client as a scraper does: `deno run -A main.ts` with piped stdio.
 * Bind the result with `await using`; read the ready line first (`await client.ready()`).
 */
export function spawnClient(options: SpawnClientOptions = {}): ClientProcess {
  return new ClientProcess(options);
}

/** The outcome of {@link runSession}. */
export interface SessionResult {
  /** The first stdout line if it is a `ready` answer, else null (then it is in `answers`). */
  readonly ready: string | null;
  /** Every stdout line after the ready line, without `\n`: `answers[i]` answers the i-th input line. */
  readonly answers: string[];
  /** Everything written on stdout. */
  readonly stdout: string;
  /** Everything written on stderr. */
  readonly stderr: string;
  /** The exit code. */
  readonly code: number;
  /** The signal that ended the process, if one did. */
  readonly signal: Deno.Signal | null;
}

/**
 * Runs a whole session: writes every line at once (objects as compact JSON, each followed by `\n`; or the bytes
 * of a `Uint8Array` exactly as given), closes stdin and collects all output once the client exited.
 *
 * @param input the lines to send, or raw bytes
 * @param env added to the client's environment (see {@link spawnClient})
 * @param options working directory, arguments, timeout
 */
export async function runSession(
  input: readonly (string | object)[] | Uint8Array,
  env?: Record<string, string>,
  options: Omit<SpawnClientOptions, "env"> = {},
): Promise<SessionResult> {
  await using client = spawnClient({ ...options, env });
  const bytes = input instanceof Uint8Array
    ? input
    : encoder.encode(input.map((line) => lineText(line) + "\n").join(""));
  // A client that exits early (bad config) closes its stdin: the write then fails, which is fine here.
  // Not awaited before finish(): a client that stops reading must end in finish()'s timeout, not hang here.
  const writing = client.sendRaw(bytes).catch(() => {});
  const finished = await client.finish();
  await writing;
  const stdoutLines = finished.rest;
  let ready: string | null = null;
  if (stdoutLines.length > 0) {
    try {
      if ((JSON.parse(stdoutLines[0]) as ProtocolAnswer).type === "ready") ready = stdoutLines[0];
    } catch {
      // Not JSON: leave it among the answers, where a test's checks will find it.
    }
  }
  const answers = ready === null ? stdoutLines : stdoutLines.slice(1);
  return {
    ready,
    answers,
    stdout: finished.restText,
    stderr: finished.stderr,
    code: finished.status.code,
    signal: finished.status.signal,
  };
}

/** A fresh temp dir for a test, removed by `await using`. */
export async function tempDir(prefix = "rtcv_test_"): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/**
 * Checks that `line` is an `error` answer whose message contains every fragment (case-sensitive), and returns
 * the message.
 */
export function assertErrorAnswer(line: string, ...fragments: string[]): string {
  const answer = parseAnswer(line);
  assert.equal(answer.type, "error", `expected an error answer, got ${line.slice(0, 300)}`);
  const message = answer.content as string;
  for (const fragment of fragments) {
    assert.ok(
      message.includes(fragment),
      `error message ${JSON.stringify(message)} lacks ${JSON.stringify(fragment)}`,
    );
  }
  return message;
}
