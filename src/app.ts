// What the ready line does not need (the core and its commands, the ingest sink, the RT-CV client, the
// health server) is imported when it is first used, after the ready line where the configuration allows:
// see `runClient`. Only types are imported statically from there.
import { DEFAULT_KV_FILE } from "./cache/kv_store.ts";
import { classifyStoreLocation } from "./store/store_location.ts";
import type { ClientCore as Core } from "./client_core.ts";
import type { ServerCredentials } from "./commands/session_commands.ts";
import { ClientMetrics } from "./health/client_metrics.ts";
import type { HealthServer } from "./health/health_server.ts";
import type { InstalledIngest } from "./ingest/install_ingest.ts";
import { ConnectError } from "./rtcv/connect_error.ts";
import type { OutboxCount } from "./outbox/outbox_status.ts";
import { InFlightLimiter } from "./http/in_flight_limiter.ts";
import { defaultRequestPolicy, type RequestPolicy } from "./http/request_policy.ts";
import type { ServerRequests } from "./rtcv/server_requests.ts";
import type { Clock } from "./clock.ts";
import { type ClientConfig, ConfigError } from "./config/config.ts";
import { type Dispatch, withCommandLog } from "./debug/command_log.ts";
import { DebugLog } from "./debug/debug_log.ts";
import { InputLog } from "./debug/input_log.ts";
import { AnswerWriter, type ByteSink } from "./protocol/answer_writer.ts";
import { type Answer, READY_ANSWER } from "./protocol/answers.ts";
import type { InputLine } from "./protocol/line_splitter.ts";
import { type ByteSource, serveLines } from "./protocol/serve_lines.ts";

/** The name of the input log, in the working directory (the Go client's name). */
export const INPUT_LOG_FILE = "scraper_client_input.log";
/** The name of the debug log, in the working directory (the Go client's name). */
export const DEBUG_LOG_FILE = "scraper_client.log";

/** Everything the line server runs with; `main.ts` fills it from the real process. */
export interface RunClientOptions extends RuntimeOptions {
  readonly config: ClientConfig;
  readonly stdin: ByteSource;
  readonly stdout: ByteSink;
  /** Aborted by SIGTERM / SIGINT: stop reading, answer what is in flight, exit 0. */
  readonly stop?: AbortSignal;
}

/**
 * The commands of the job-data ingestion sink, registered to load it on first use (see
 * `src/ingest/ingest_commands.ts`; a test holds this list to the sink's own).
 */
export const INGEST_COMMAND_TYPES: readonly string[] = [
  "set_ingest",
  "store_data",
  "flush_data",
  "ingest_status",
  "next_keyword",
  "get_tokens",
];

/**
 * The commands of requests from RT-CV (`src/commands/server_request_commands.ts`) and of CV documents
 * (`src/commands/document_commands.ts`), registered to load on first use (a test holds these lists to theirs).
 */
export const SERVER_REQUEST_COMMAND_TYPES: readonly string[] = ["next_server_request", "server_response"];
/** See {@link SERVER_REQUEST_COMMAND_TYPES}. */
export const DOCUMENT_COMMAND_TYPES: readonly string[] = ["send_cv_document", "send_cv_document_outcome"];

/** Exit code when configured servers fail their start-up checks (containers restart the client). */
export const EXIT_STARTUP_FAILED = 1;
/** Exit code when the scraper closed the client's stdout while it was serving. */
export const EXIT_STDOUT_CLOSED = 1;

/** `dir/name` (node:path costs ~5 ms of start-up for this one join). */
function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/** Where the store lives for this configuration. */
export function resolveKvLocation(config: ClientConfig, cwd: string): string {
  return config.kvPath ?? join(cwd, DEFAULT_KV_FILE);
}

/** What the client runs with besides stdio: the core, its logs, and how to close them. */
export interface ClientRuntime {
  /** The registry, session and store. */
  readonly core: Core;
  /** Answers an input line through the registry; with the debug log on, each answer is logged too. */
  readonly dispatch: Dispatch;
  /** The debug log (`ENABLE_SCRAPER_CLIENT_LOG`), disabled when not asked for. */
  readonly debugLog: DebugLog;
  /** The Prometheus metrics of this process. */
  readonly metrics: ClientMetrics;
  /** The job-data ingestion sink, once loaded (by the config, or by its first command); null before. */
  readonly ingest: InstalledIngest | null;
  /**
   * Ends the waits for requests from RT-CV (`next_server_request`), now and from then on: at SIGTERM, end
   * of input, or when the wrapped scraper exited.
   */
  stopWaitingForServerRequests(): void;
  /** Closes the core (drains mirrors, commits writes) and the logs. */
  close(deadline?: number): Promise<void>;
}

/** How {@link createRuntime} reaches the process. */
export interface RuntimeOptions {
  /** Decides what has expired. */
  readonly clock: Clock;
  /** The working directory for the logs and the default store. */
  readonly cwd: string;
  /** Prints a line for a person on stderr. */
  readonly stderr: (message: string) => void;
  /** Aborted at SIGTERM / SIGINT (and, in the line server, at end of input): waits (`flush_data`) end at once. */
  readonly stop?: AbortSignal;
}

/**
 * Builds the client's core from the configuration: the store, the live connector with its request policy,
 * and the debug log. The line server and replay both run on it.
 */
export async function createRuntime(config: ClientConfig, options: RuntimeOptions): Promise<ClientRuntime> {
  const { ClientCore } = await import("./client_core.ts");
  // The logs are debugging aids: one that cannot be opened is reported, and the client serves without it.
  const debugLog = config.debugLog
    ? await DebugLog.open(join(options.cwd, DEBUG_LOG_FILE)).catch((error) => {
      options.stderr(`rtcv_scraper_client: no debug log: ${describeError(error)}`);
      return DebugLog.disabled();
    })
    : DebugLog.disabled();
  const metrics = new ClientMetrics();
  const onRetry: RequestPolicy["onRetry"] = (info) => {
    metrics.retried(info.origin);
    debugLog.log(`retry ${info.attempt} of ${info.origin}${info.path} in ${info.delayMs} ms: ${info.reason}`);
  };
  const onRequest: RequestPolicy["onRequest"] = (info) =>
    metrics.requestFinished(info.origin, info.ms / 1000);
  // One bound on the requests in flight per server, shared by the RT-CV and ingest clients.
  const limiter = new InFlightLimiter(config.maxInFlight);
  const policy: RequestPolicy = {
    ...defaultRequestPolicy(config.timeoutMs),
    onRetry,
    onRequest,
    limiter,
  };
  const warn = (message: string) => {
    options.stderr(`rtcv_scraper_client: ${message}`);
    debugLog.log(`warning: ${message}`);
  };
  // Requests from RT-CV's websockets: loaded with live mode or the first server-request command.
  let serverRequests: Promise<ServerRequests> | null = null;
  let stoppedWaiting = false;
  const requestsHub = () =>
    serverRequests ??= import("./rtcv/server_requests.ts").then(({ ServerRequests }) => {
      const hub = new ServerRequests({
        warn,
        log: (message) => debugLog.log(message),
        socket: { handshakeTimeoutMs: config.timeoutMs },
      });
      if (stoppedWaiting) hub.stopWaiting();
      return hub;
    });
  const stopWaitingForServerRequests = () => {
    stoppedWaiting = true;
    serverRequests?.then((hub) => hub.stopWaiting());
  };
  // The config loader has checked the location: classifying it cannot fail here.
  const location = classifyStoreLocation(resolveKvLocation(config, options.cwd));
  if (location.kind === "redis") await warnKvLeftovers(join(options.cwd, DEFAULT_KV_FILE), warn);
  const core = new ClientCore({
    // On Redis, nothing opens the Deno.Kv store; should anything, it is the default file, never a URL.
    kvLocation: location.kind === "kv" ? location.location : join(options.cwd, DEFAULT_KV_FILE),
    redis: location.kind === "redis" ? location.redis : undefined,
    timeoutMs: config.timeoutMs,
    clock: options.clock,
    warn,
    onCacheLookup: (hit) => metrics.cacheLookup(hit),
    outbox: {
      leaseMs: config.outboxLeaseMs,
      maxInFlight: config.maxInFlight,
      retry: {
        retryMs: config.outboxRetryMs,
        maxAttempts: config.outboxMaxAttempts,
        maxAgeMs: config.outboxMaxAgeMs,
      },
      log: debugLog.enabled ? (message) => debugLog.log(message) : undefined,
      onResult: (channel, ok) => {
        if (!channel.startsWith("ingest/")) metrics.cvSent(originOf(channel), ok);
      },
    },
    connectLive: async (servers, deps) =>
      (await import("./rtcv/connect_live.ts")).connectLive(servers, deps, {
        serverRequests: await requestsHub(),
        policy,
        log: (message) => debugLog.log(message),
        onCvResult: (origin, ok) => metrics.cvSent(origin, ok),
        warn,
        keyPair: config.keyPair,
      }),
  });
  core.registry
    .registerLazy(SERVER_REQUEST_COMMAND_TYPES, async () => {
      const { serverRequestCommands } = await import("./commands/server_request_commands.ts");
      core.registry.registerAll(serverRequestCommands(await requestsHub()));
    })
    .registerLazy(DOCUMENT_COMMAND_TYPES, async () => {
      const { documentCommands } = await import("./commands/document_commands.ts");
      core.registry.registerAll(documentCommands({ session: core.session, maxBytes: config.maxLineBytes }));
    });
  core.registry.observe(metrics.commandObserver());
  const dispatch: Dispatch = (line) => core.registry.dispatch(line);
  let ingest: InstalledIngest | null = null;
  const install = async () => {
    const { installIngest } = await import("./ingest/install_ingest.ts");
    const installed = installIngest({
      openStore: () => core.store.open(),
      openOutbox: () => core.outbox(),
      clock: core.clock,
      // On a fleet's Redis the dedupe index lives there.
      openDedupe: core.redis ? async () => await (await core.redis!).dedupeIndex() : undefined,
    }, {
      timeoutMs: config.timeoutMs,
      ingest: config.ingest,
      warn,
      debugLog: debugLog.enabled ? (message) => debugLog.log(message) : undefined,
      policy: { onRetry, onRequest, limiter },
      // flush_data waits for one batch's retry schedule: a hung first attempt, the first wait, a retry.
      tuning: { flushTimeoutMs: 2 * config.timeoutMs + 2 * config.outboxRetryMs + 1000 },
      stop: options.stop,
    });
    core.registry.registerAll(installed.commands);
    ingest = installed;
  };
  if (config.ingest === null) {
    // Nothing to deliver until a scraper names a server: the sink loads with its first command.
    core.registry.registerLazy(INGEST_COMMAND_TYPES, install, ["set_ingest"]);
  } else {
    try {
      await install();
    } catch (error) {
      // The configured ingest server is malformed (e.g. a token that cannot go in a header).
      await core.close();
      await debugLog.close();
      if (error instanceof TypeError) throw new ConfigError("configuration", "", error.message);
      throw error;
    }
  }
  metrics.setOutboxCounts(() => outboxCounts(core));
  metrics.setCacheEntries(async () => {
    const backend = core.session.currentBackend;
    if (backend?.kind === "mock") return backend.references.rememberedCount;
    return core.store.isOpen ? (await core.session.persistentCache()).rememberedCount : 0;
  });
  return {
    core,
    dispatch: debugLog.enabled ? withCommandLog(dispatch, (message) => debugLog.log(message)) : dispatch,
    debugLog,
    metrics,
    get ingest() {
      return ingest;
    },
    stopWaitingForServerRequests,
    close: async (deadline = options.clock.now() + config.drainMs) => {
      stopWaitingForServerRequests();
      // One shared deadline for every delivery (CV copies and job data, all servers at once).
      await core.drainOutbox(deadline);
      await (ingest as InstalledIngest | null)?.close(); // needs the store open
      await core.close();
      await debugLog.close();
    },
  };
}

/**
 * On Redis: says on stderr what still waits for delivery in the local Kv file of before the switch (the
 * default file; nothing to say, and nothing opened, without it).
 */
async function warnKvLeftovers(path: string, warn: (message: string) => void): Promise<void> {
  try {
    if (!(await Deno.stat(path)).isFile) return;
  } catch {
    return; // no such file: nothing waits there
  }
  try {
    const { kvLeftoversWarning } = await import("./outbox/kv_leftovers.ts");
    const message = await kvLeftoversWarning(path);
    if (message !== null) warn(message);
  } catch (error) {
    warn(
      `could not check ${path} for entries waiting from before the switch to Redis: ${describeError(error)}`,
    );
  }
}

/**
 * Runs the line protocol on stdin/stdout until end of input or a stop signal, then drains and closes
 * everything. Resolves with the exit code.
 */
export async function runClient(options: RunClientOptions): Promise<number> {
  const { config } = options;
  const internalError = (error: unknown) =>
    options.stderr(
      `rtcv_scraper_client: internal error (answered as an error, kept serving): ${
        error instanceof Error ? error.stack ?? error.message : String(error)
      }`,
    );
  const writer = new AnswerWriter(options.stdout, { onInternalError: internalError });
  // Nothing configured can fail or change the mode before the ready line: write it at once and load the
  // rest while the scraper sends its first line (that line waits for the loading, in the pipe).
  const readyFirst = config.primaryServer === null && !config.mockMode && config.ingest === null &&
    config.healthCheckPort === null;
  if (readyFirst) {
    writer.push(READY_ANSWER);
    writer.flush();
  }
  // Waits (flush_data, next_server_request) end at a signal or at end of input: one signal for both.
  const waitsEnd = new AbortController();
  const ended = () => waitsEnd.abort();
  options.stop?.addEventListener("abort", ended, { once: true });
  if (options.stop?.aborted) ended();
  const stdin: ByteSource = {
    read: async (buffer) => {
      try {
        const read = await options.stdin.read(buffer);
        if (read === null) ended();
        return read;
      } catch (error) {
        ended();
        throw error;
      }
    },
  };
  const runtime = await createRuntime(config, { ...options, stop: waitsEnd.signal });
  const { core } = runtime;
  // Waits for server requests end too (answered null).
  waitsEnd.signal.addEventListener("abort", () => runtime.stopWaitingForServerRequests(), { once: true });
  if (waitsEnd.signal.aborted) runtime.stopWaitingForServerRequests();
  let health: HealthServer | null = null;
  let inputLog: InputLog | null = null;
  let stopDeadline: number | undefined;
  try {
    inputLog = await openInputLog(config, options);
    const startup = await untilStopped(applyStartupConfig(core, config), options.stop);
    if (startup === STOPPED) return 0; // a signal during the start-up checks
    if ("error" in startup) {
      options.stderr(`rtcv_scraper_client: ${startup.error}`);
      return EXIT_STARTUP_FAILED;
    }
    const started = await startConfiguredHealth(runtime, config, options.stderr);
    if (started === "failed") return EXIT_STARTUP_FAILED;
    health = started;
    if (!readyFirst) {
      writer.push(startup.ready);
      writer.flush();
    }
    const serving = serveLines(stdin, writer, {
      maxLineBytes: config.maxLineBytes,
      maxPendingBytes: config.maxPendingBytes,
      answer: runtime.dispatch,
      onLine: inputLog ? (line) => inputLog?.append(rawText(line)) : undefined,
      onReadError: (error) => options.stderr(`rtcv_scraper_client: reading stdin failed, stopping: ${error}`),
      onInternalError: internalError,
      stop: options.stop,
    });
    // After a signal, answers still in flight (e.g. a set_credentials whose server hangs) get the drain
    // time, the same deadline as the deliveries: the exit is bounded in every state.
    await untilStopped(serving, options.stop);
    if (options.stop?.aborted) {
      stopDeadline = options.clock.now() + config.drainMs;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const answered = await Promise.race([
        serving.then(() => true),
        new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), config.drainMs)),
      ]);
      clearTimeout(timer);
      if (!answered) {
        options.stderr("rtcv_scraper_client: stopping with commands still unanswered (drain time over)");
      }
    }
    if (writer.failure !== null) {
      // The scraper closed our stdout: its answers cannot reach it. Reading stopped; what was in flight
      // has finished (as at SIGTERM); the store is closed below.
      options.stderr(
        `rtcv_scraper_client: stdout was closed (${writer.failure.message}); stopped reading input, ` +
          "finished the commands in flight and closed the store",
      );
      return EXIT_STDOUT_CLOSED;
    }
  } finally {
    await health?.close();
    await runtime.close(stopDeadline);
    await inputLog?.close();
  }
  return 0;
}

/** Opens the input log when `LOG_SCRAPER_CLIENT_INPUT` asks for it; null when not (or when it cannot be). */
export async function openInputLog(config: ClientConfig, options: RuntimeOptions): Promise<InputLog | null> {
  if (!config.logInput) return null;
  return await InputLog.open(join(options.cwd, INPUT_LOG_FILE)).catch((error) => {
    options.stderr(`rtcv_scraper_client: no input log: ${describeError(error)}`);
    return null;
  });
}

/**
 * Starts the health server when `RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT` asks for one (null when not);
 * `"failed"` (said on stderr) when it cannot listen.
 */
export async function startConfiguredHealth(
  runtime: ClientRuntime,
  config: ClientConfig,
  stderr: (message: string) => void,
): Promise<HealthServer | null | "failed"> {
  if (config.healthCheckPort === null) return null;
  try {
    const { startHealthServer } = await import("./health/health_server.ts");
    return await startHealthServer({
      host: config.healthCheckHost,
      port: config.healthCheckPort,
      metrics: runtime.metrics,
      status: () => healthStatus(runtime),
    });
  } catch (error) {
    stderr(`rtcv_scraper_client: ${error instanceof Error ? error.message : String(error)}`);
    return "failed";
  }
}

/** What `GET /` of the health server reports. */
async function healthStatus(runtime: ClientRuntime) {
  const backend = runtime.core.session.currentBackend;
  const counts = await outboxCounts(runtime.core).catch(() => []);
  const section = (kind: OutboxCount["kind"]) =>
    Object.fromEntries(
      counts.filter((row) => row.kind === kind).map((
        row,
      ) => [row.target, { pending: row.pending, dead: row.dead }]),
    );
  return {
    mode: backend?.kind ?? "none" as const,
    servers: [...backend?.origins ?? []],
    outbox: counts.reduce((sum, row) => sum + row.pending, 0),
    outbox_detail: { mirrors: section("cv"), ingest: section("ingest") },
    failing: backend?.failing ?? null,
  };
}

/**
 * Pending and dead outbox items per server and stream: every entry in the store, also before credentials
 * are set (read by the health server and /metrics; opens the store on first use).
 */
async function outboxCounts(core: Core): Promise<OutboxCount[]> {
  const { readOutboxCounts } = await import("./outbox/outbox_status.ts");
  return readOutboxCounts((await core.outbox()).store);
}

/** What {@link untilStopped} resolves with when the signal came first. */
export const STOPPED: unique symbol = Symbol("stopped");

/** `work`'s result, or {@link STOPPED} as soon as `signal` aborts. */
export function untilStopped<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T | typeof STOPPED> {
  if (!signal) return work;
  if (signal.aborted) return Promise.resolve(STOPPED);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(STOPPED);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * The ready line: `waiting for credentials` when no configuration set the mode, else the mode it set
 * (`mock mode (configuration)`, `live: <primary origin>`). Scrapers test its `type` only.
 */
export function readyAnswer(config: ClientConfig): Answer {
  if (config.primaryServer !== null) {
    return { type: "ready", content: `live: ${originOf(config.primaryServer.serverLocation)}` };
  }
  if (config.mockMode) return { type: "ready", content: "mock mode (configuration)" };
  return READY_ANSWER;
}

function originOf(location: string): string {
  try {
    return new URL(location).origin;
  } catch {
    return location;
  }
}

/**
 * Enters the mode the config names (live servers or mock) before the ready line; returns the ready
 * answer, or an error message when configured servers fail their checks.
 */
export async function applyStartupConfig(
  core: Core,
  config: ClientConfig,
): Promise<{ ready: Answer } | { error: string }> {
  if (config.primaryServer !== null) {
    const servers: ServerCredentials[] = [
      { ...config.primaryServer, primary: true },
      ...config.alternativeServers.map((server) => ({ ...server, primary: false })),
    ];
    try {
      await core.session.replaceBackend(await core.connectLive(servers));
    } catch (error) {
      if (!(error instanceof ConnectError)) throw error;
      return { error: `the configured servers failed their start-up checks: ${error.message}` };
    }
  } else if (config.mockMode) {
    const secrets: Record<string, unknown> = {};
    if (config.mockUsers !== null) {
      secrets.users = config.mockUsers;
      if (config.mockUsers.length > 0) secrets.user = config.mockUsers[0];
    }
    await core.session.replaceBackend(
      await core.createMock({ ...secrets, ...config.mockSecrets }, config.mockUsers ?? []),
    );
  }
  return { ready: readyAnswer(config) };
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function rawText(line: InputLine): string {
  switch (line.kind) {
    case "text":
      return line.text;
    case "invalid_utf8":
      return line.lossyText;
    case "too_long":
      return `<a line of ${line.bytes} bytes was skipped: longer than RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES>`;
  }
}
