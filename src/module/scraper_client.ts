import { fileURLToPath } from "node:url";
import { LineSplitter } from "../protocol/line_splitter.ts";
import { ScraperClientError } from "./scraper_client_error.ts";
import type {
  Cv,
  CvDocument,
  CvsListResult,
  MockOptions,
  SecretRequest,
  ServerCredentials,
  ServerRequest,
  ServerResponse,
  SpawnOptions,
  UserSecret,
  UserSecretRequest,
} from "./types.ts";

/** A command sent and not answered yet. */
interface Pending {
  readonly type: string;
  readonly resolve: (content: unknown) => void;
  readonly reject: (error: ScraperClientError) => void;
}

/** Longest answer line read from the client (a secret or a list of users can be large, not this large). */
const MAX_ANSWER_BYTES = 256 * 1024 * 1024;

/**
 * The argv that runs this package's `main.ts` under the running Deno, wherever this module was loaded from:
 * the client's own import map and the Kv flag are passed, so neither depends on the caller's `deno.json`.
 * From a file, `--config` names the `deno.json` beside `main.ts` (its lock file applies too); from a URL,
 * `deno run` fetches `main.ts` and its modules, with the `deno.json` beside it as the import map.
 */
export function defaultCommand(base: string | URL = import.meta.url): string[] {
  const main = new URL("../../main.ts", base);
  const config = new URL("../../deno.json", base);
  const flags = main.protocol === "file:"
    ? ["--config", fileURLToPath(config)]
    : ["--no-config", "--import-map", config.href];
  const entry = main.protocol === "file:" ? fileURLToPath(main) : main.href;
  return [Deno.execPath(), "run", "-A", "--unstable-kv", ...flags, entry];
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function exitText(status: Deno.CommandStatus): string {
  return status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
}

function toWireServer(server: ServerCredentials): Record<string, unknown> {
  return {
    server_location: server.serverLocation,
    api_key_id: server.apiKeyId,
    api_key: server.apiKey,
    ...(server.primary === undefined ? {} : { primary: server.primary }),
  };
}

function toWireUserSecret(request: UserSecretRequest): Record<string, unknown> {
  return {
    ...(request.key === undefined ? {} : { key: request.key }),
    encryption_key: request.encryptionKey,
  };
}

/**
 * Drives `rtcv_scraper_client` from a Deno scraper: starts it as a child process, writes one JSON command
 * per line to its stdin, each with an `id`, and matches the answers on its stdout to the calls by that `id`
 * (or in order, from a client that answers in input order), so calls may be made concurrently and a slow
 * one does not hold up the others. An error answer rejects the call with a
 * {@linkcode ScraperClientError} carrying the client's message; if the process dies, every call still
 * waiting rejects.
 *
 * The scraper needs `--allow-run` (to start the client) and, when it imports this module from a URL outside
 * Deno's default list, `--allow-import=<host>`; the client runs with its own permissions (`-A` by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ScraperClient } from "./scraper_client.ts";
 *
 * const client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
 * await client.setMock({ secrets: { user: { username: "foo", password: "bar" } } });
 * const [first, again] = await Promise.all([
 *   client.sendCv({ referenceNumber: "job-1", presentation: "Hello" }),
 *   client.sendCv({ referenceNumber: "job-1" }),
 * ]);
 * assert.deepEqual([first, again], [true, false]); // sent, then already cached
 * assert.deepEqual(await client.getUserSecret({ encryptionKey: "x" }), { username: "foo", password: "bar" });
 * assert.equal((await client.close()).code, 0);
 * ```
 */
export class ScraperClient {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #encoder = new TextEncoder();
  /** Calls waiting for their answer by id, in the order they were sent (a Map keeps insertion order). */
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  readonly #ready = Promise.withResolvers<void>();
  #isReady = false;
  /** Once set, the client cannot be used any more and new calls reject with it. */
  #broken: ScraperClientError | null = null;
  #closing: Promise<Deno.CommandStatus> | null = null;
  readonly #readDone: Promise<void>;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#ready.promise.catch(() => {}); // spawn() awaits it; never an unhandled rejection
    this.#readDone = this.#readAnswers(child.stdout);
  }

  /**
   * Starts the client and waits until it has written its ready line.
   *
   * Rejects with a {@linkcode ScraperClientError} of kind `spawn` when the command cannot be started or the
   * client exits before it is ready (an invalid configuration, say: the client's stderr says why).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * // The default runs main.ts from source; a compiled binary: { command: ["/bin/rtcv_scraper_client"] }.
   * const client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.ping();
   * assert.equal((await client.close()).code, 0);
   * ```
   */
  static async spawn(options: SpawnOptions = {}): Promise<ScraperClient> {
    const argv = options.command ? [...options.command] : defaultCommand();
    if (argv.length === 0) throw new TypeError("Cannot spawn the client: command is an empty array");
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        env: options.env ? { ...options.env } : undefined,
        cwd: options.cwd,
        stdin: "piped",
        stdout: "piped",
        stderr: options.stderr ?? "inherit",
      }).spawn();
    } catch (error) {
      throw new ScraperClientError(`Cannot start the client ${argv[0]}: ${describe(error)}`, {
        kind: "spawn",
        cause: error,
      });
    }
    const client = new ScraperClient(child);
    await client.#ready.promise;
    return client;
  }

  /** The process id of the client. */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * Sets the RT-CV servers (`set_credentials`): one server, or several with exactly one `primary: true`.
   * Rejects when a server cannot be reached or the key is not a scraper key (the message names the server).
   *
   * @example
   * ```ts ignore
   * await client.setCredentials({
   *   serverLocation: "https://rtcv.example.com",
   *   apiKeyId: "aaaaaaaaaaaaaaaaaaaaaaaa",
   *   apiKey: Deno.env.get("RTCV_API_KEY")!,
   * });
   * ```
   */
  async setCredentials(servers: ServerCredentials | readonly ServerCredentials[]): Promise<void> {
    const content = Array.isArray(servers)
      ? (servers as readonly ServerCredentials[]).map(toWireServer)
      : toWireServer(servers as ServerCredentials);
    await this.#call("set_credentials", content);
  }

  /**
   * Switches to mock mode (`set_mock`): no server is contacted, CVs are "sent" to an in-memory cache.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.setMock({ secrets: { users: [{ username: "foo", password: "bar" }] } });
   * assert.equal(await client.sendCv({ referenceNumber: "job-1" }), true); // nothing was sent anywhere
   * ```
   */
  async setMock(options: MockOptions = {}): Promise<void> {
    await this.#call("set_mock", options.secrets === undefined ? {} : { secrets: options.secrets });
  }

  /**
   * Sends a CV (`send_cv`). Resolves true when the primary server matched it; false when it did not, or when
   * its reference number was already cached (then nothing is sent).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.setMock();
   * const matched = await client.sendCv({ referenceNumber: "job-1", presentation: "Hello" });
   * assert.equal(matched, true); // mock mode matches every new CV
   * ```
   */
  async sendCv(cv: Cv): Promise<boolean> {
    return this.#expectBoolean("send_cv", await this.#call("send_cv", cv));
  }

  /**
   * Sends a list of CVs in one request (`send_cvs_list`); duplicates of a reference number in the list are
   * dropped (the first copy is kept). Resolves with how many were sent and how many were dropped.
   *
   * @example
   * ```ts ignore
   * const { sent, duplicates } = await client.sendCvsList([{ referenceNumber: "a" }, { referenceNumber: "a" }]);
   * ```
   */
  async sendCvsList(cvs: readonly Cv[]): Promise<CvsListResult> {
    return await this.#call("send_cvs_list", cvs) as CvsListResult;
  }

  /**
   * Sends a CV document, a file with the CV as its metadata (`send_cv_document`). Resolves true when the
   * primary server matched it; false when it did not or its reference number was already cached.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.setMock();
   * const document = { cv: { referenceNumber: "doc-1" }, fileBase64: btoa("%PDF-1.4") };
   * assert.equal(await client.sendCvDocument(document), true);
   * assert.equal(await client.sendCvDocument(document), false); // cached
   * ```
   */
  async sendCvDocument(document: CvDocument): Promise<boolean> {
    const content: Record<string, unknown> = { cv: document.cv };
    if (document.file !== undefined) content.file = document.file;
    if (document.fileBase64 !== undefined) content.file_base64 = document.fileBase64;
    if (document.contentType !== undefined) content.content_type = document.contentType;
    return this.#expectBoolean("send_cv_document", await this.#call("send_cv_document", content));
  }

  /**
   * The login users RT-CV stores for this scraper, their passwords opened with the scraper's key pair
   * (`get_login_users`); in mock mode the mock users.
   *
   * @example
   * ```ts ignore
   * for (const { username, password } of await client.getLoginUsers()) await logIn(username, password);
   * ```
   */
  async getLoginUsers(): Promise<UserSecret[]> {
    return await this.#call("get_login_users") as UserSecret[];
  }

  /**
   * Reads a secret from the primary server (`get_secret`); mock mode answers the mock secret or null.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.setMock({ secrets: { api: { token: "abc" } } });
   * const { token } = await client.getSecret<{ token: string }>({ key: "api", encryptionKey: "x" });
   * assert.equal(token, "abc");
   * ```
   */
  async getSecret<T = unknown>(request: SecretRequest): Promise<T> {
    return await this.#call("get_secret", { key: request.key, encryption_key: request.encryptionKey }) as T;
  }

  /**
   * Reads a `{username, password}` secret (`get_user_secret`; `key` defaults to `user`).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.setMock({ secrets: { user: { username: "foo", password: "bar" } } });
   * const { username, password } = await client.getUserSecret({ encryptionKey: "x" });
   * assert.deepEqual([username, password], ["foo", "bar"]);
   * ```
   */
  async getUserSecret(request: UserSecretRequest): Promise<UserSecret> {
    return await this.#call("get_user_secret", toWireUserSecret(request)) as UserSecret;
  }

  /**
   * Reads an array of `{username, password}` secrets (`get_users_secret`; `key` defaults to `users`).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.setMock({ secrets: { users: [{ username: "foo", password: "bar" }] } });
   * const logins = await client.getUsersSecret({ encryptionKey: "x" });
   * assert.deepEqual(logins, [{ username: "foo", password: "bar" }]);
   * ```
   */
  async getUsersSecret(request: UserSecretRequest): Promise<UserSecret[]> {
    return await this.#call("get_users_secret", toWireUserSecret(request)) as UserSecret[];
  }

  /**
   * Caches a reference number for 72 hours (`set_cached_reference`).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.setCachedReference("job-1");
   * assert.equal(await client.hasCachedReference("job-1"), true);
   * ```
   */
  async setCachedReference(reference: string): Promise<void> {
    await this.#call("set_cached_reference", reference);
  }

  /**
   * Caches a reference number for 12 hours (`set_short_cached_reference`).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.setShortCachedReference("job-1");
   * assert.equal(await client.hasCachedReference("job-1"), true);
   * ```
   */
  async setShortCachedReference(reference: string): Promise<void> {
    await this.#call("set_short_cached_reference", reference);
  }

  /**
   * Whether a reference number is cached and not expired (`has_cached_reference`).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * assert.equal(await client.hasCachedReference("job-1"), false); // not scraped yet
   * ```
   */
  async hasCachedReference(reference: string): Promise<boolean> {
    return this.#expectBoolean("has_cached_reference", await this.#call("has_cached_reference", reference));
  }

  /**
   * Checks that the client answers (`ping` → `pong`).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.ping(); // rejects unless the client answers pong
   * assert.ok(client.pid > 0);
   * ```
   */
  async ping(): Promise<void> {
    await this.#call("ping");
  }

  /**
   * Sends any command and resolves with the `content` of its ok answer (undefined when it has none): for
   * commands without a typed method, such as the ingestion sink's `store_data`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * const answer = await client.command("has_cached_reference", "job-1");
   * assert.equal(answer, false);
   * ```
   */
  command(type: string, content?: unknown): Promise<unknown> {
    return this.#call(type, content);
  }

  /**
   * Waits for the next request an RT-CV server sends over its websocket (`next_server_request`); null after
   * `timeoutMs` (default: no limit) or when the client stops.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * await client.setMock();
   * assert.equal(await client.nextServerRequest({ timeoutMs: 10 }), null); // no server in mock mode
   * ```
   */
  async nextServerRequest(options: { timeoutMs?: number } = {}): Promise<ServerRequest | null> {
    const content = options.timeoutMs === undefined ? undefined : { timeout_ms: options.timeoutMs };
    return await this.#call("next_server_request", content) as ServerRequest | null;
  }

  /** Answers a {@link ServerRequest} to the server that sent it (`server_response`). */
  async serverResponse(response: ServerResponse): Promise<void> {
    await this.#call("server_response", response);
  }

  /**
   * Ends the client's stdin, so it answers what is in flight, closes its store and exits; resolves with its
   * exit status (code 0 after a clean end). Calls made before `close()` still get their answers; calls made
   * after it reject. Calling it again returns the same promise.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * const client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * const pong = client.ping(); // answered before the client exits
   * const { code } = await client.close();
   * assert.equal(code, 0);
   * await pong;
   * ```
   */
  close(): Promise<Deno.CommandStatus> {
    this.#closing ??= (async () => {
      await this.#writer.close().catch(() => {});
      await this.#readDone;
      return await this.#child.status;
    })();
    return this.#closing;
  }

  /**
   * Sends the client a signal (default SIGTERM: it answers what is in flight and exits 0). Use
   * {@linkcode close} to wait for it.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * const client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   * client.kill();
   * const status = await client.close();
   * assert.deepEqual({ ...status }, { success: true, code: 0, signal: null }); // SIGTERM ends the client cleanly
   * ```
   */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.#child.kill(signal);
    } catch {
      // it has exited already
    }
  }

  /**
   * Closes the client at the end of an `await using` scope.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ScraperClient } from "./scraper_client.ts";
   * let pid: number;
   * {
   *   await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
   *   pid = client.pid;
   *   await client.ping();
   * } // closed here
   * assert.throws(() => Deno.kill(pid, "SIGCONT")); // the process is gone
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #call(type: string, content?: unknown): Promise<unknown> {
    if (this.#closing !== null) {
      return Promise.reject(
        new ScraperClientError(`Cannot send ${type}: the client is closed`, {
          kind: "closed",
          command: type,
        }),
      );
    }
    if (this.#broken !== null) return Promise.reject(this.#errorFor(this.#broken, type));
    const id = this.#nextId++;
    let line: string;
    try {
      line = JSON.stringify(content === undefined ? { type, id } : { type, id, content });
    } catch (error) {
      return Promise.reject(
        new TypeError(`Cannot send ${type}: its content cannot be encoded as JSON: ${describe(error)}`, {
          cause: error,
        }),
      );
    }
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { type, resolve, reject });
      // A failed write means the process is gone or unusable: stop it; its exit rejects what is pending.
      this.#writer.write(this.#encoder.encode(line + "\n")).catch(() => this.kill("SIGKILL"));
    });
  }

  #expectBoolean(type: string, content: unknown): boolean {
    if (typeof content === "boolean") return content;
    throw new ScraperClientError(`${type}: expected true or false from the client, got ${typeof content}`, {
      kind: "protocol",
      command: type,
    });
  }

  async #readAnswers(stdout: ReadableStream<Uint8Array>): Promise<void> {
    const splitter = new LineSplitter(MAX_ANSWER_BYTES);
    try {
      for await (const chunk of stdout) {
        for (const line of splitter.push(chunk)) this.#onInputLine(line);
      }
      for (const line of splitter.end()) this.#onInputLine(line);
    } catch {
      // the pipe broke: treated like the end of output
    }
    const status = await this.#child.status;
    this.#onExit(status);
  }

  #onInputLine(line: ReturnType<LineSplitter["push"]>[number]): void {
    if (line.kind === "text") this.#onLine(line.text);
    else if (line.kind === "invalid_utf8") this.#fail("the client wrote a line that is not valid UTF-8");
    else this.#fail(`the client wrote a line of ${line.bytes} bytes, longer than ${MAX_ANSWER_BYTES}`);
  }

  #onLine(line: string): void {
    if (this.#broken !== null) return;
    let answer: { type?: unknown; content?: unknown; id?: unknown } | null = null;
    try {
      const value: unknown = JSON.parse(line);
      if (value !== null && typeof value === "object" && !Array.isArray(value)) {
        answer = value as { type?: unknown; content?: unknown; id?: unknown };
      }
    } catch {
      // answer stays null
    }
    if (!this.#isReady) {
      if (answer?.type === "ready") {
        this.#isReady = true;
        this.#ready.resolve();
      } else {
        this.#fail(`the client's first line is not the ready line (${this.#shape(answer, line)})`);
      }
      return;
    }
    const pending = this.#take(answer?.id);
    if (pending === undefined) {
      const what = answer?.id === undefined
        ? "when no command was waiting"
        : "with an id no command was sent with";
      this.#fail(`the client wrote a line ${what} (${this.#shape(answer, line)})`);
      return;
    }
    switch (answer?.type) {
      case "ok":
      case "pong":
        pending.resolve(answer.content);
        return;
      case "error":
        pending.reject(
          new ScraperClientError(
            typeof answer.content === "string" ? answer.content : JSON.stringify(answer.content),
            { kind: "answer", command: pending.type },
          ),
        );
        return;
      default: {
        const message = `the client answered ${pending.type} with ${this.#shape(answer, line)}`;
        pending.reject(new ScraperClientError(message, { kind: "protocol", command: pending.type }));
        this.#fail(message);
      }
    }
  }

  /** Says what a bad line looked like without quoting it (it could hold a secret). */
  #shape(answer: { type?: unknown } | null, line: string): string {
    if (answer === null) return `a line of ${line.length} characters that is not a JSON object`;
    return `an answer of type ${JSON.stringify(String(answer.type)).slice(0, 40)}`;
  }

  /** The protocol broke: the client is unusable. Reject everything waiting and stop the process. */
  #fail(message: string): void {
    this.#broken ??= new ScraperClientError(message, { kind: "protocol" });
    this.#ready.reject(new ScraperClientError(message, { kind: "spawn" }));
    this.#rejectAll(this.#broken);
    this.kill("SIGKILL");
  }

  #onExit(status: Deno.CommandStatus): void {
    const how = exitText(status);
    const exitCode = status.signal ? null : status.code;
    if (!this.#isReady) {
      this.#ready.reject(
        new ScraperClientError(`the client ${how} before it was ready (its stderr says why)`, {
          kind: "spawn",
          exitCode,
        }),
      );
    }
    this.#broken ??= new ScraperClientError(`the client ${how}`, { kind: "exited", exitCode });
    this.#rejectAll(this.#broken);
  }

  #rejectAll(cause: ScraperClientError): void {
    const waiting = [...this.#pending.values()];
    this.#pending.clear();
    for (const pending of waiting) pending.reject(this.#errorFor(cause, pending.type));
  }

  /** The same failure, named for one command: `the client exited with code 1 before answering send_cv`. */
  #errorFor(cause: ScraperClientError, type: string): ScraperClientError {
    const message = cause.kind === "exited"
      ? `${cause.message} before answering ${type}`
      : `Cannot send ${type}: ${cause.message}`;
    return new ScraperClientError(message, { kind: cause.kind, command: type, exitCode: cause.exitCode });
  }

  /**
   * The call an answer belongs to: the one with its `id` when it carries one (a client that answers ids,
   * PROTOCOL.md section 9), else the oldest waiting call (a client that answers in input order).
   */
  #take(id: unknown): Pending | undefined {
    let key: number | undefined;
    if (id === undefined) {
      key = this.#pending.keys().next().value;
    } else if (typeof id === "number" && this.#pending.has(id)) {
      key = id;
    }
    if (key === undefined) return undefined;
    const pending = this.#pending.get(key);
    this.#pending.delete(key);
    return pending;
  }
}
