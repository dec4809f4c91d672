import { DEFAULT_KV_FILE } from "./cache/kv_store.ts";
import { classifyStoreLocation } from "./store/store_location.ts";
import { ClientCore, type ClientCore as Core } from "./client_core.ts";
import { CommandError } from "./commands/command_error.ts";
import type { ServerCredentials } from "./commands/session_commands.ts";
import { ClientMetrics } from "./health/client_metrics.ts";
import { type HealthServer, startHealthServer } from "./health/health_server.ts";
import { type InstalledIngest, installIngest } from "./ingest/install_ingest.ts";
import { connectLive } from "./rtcv/connect_live.ts";
import { LiveBackend } from "./rtcv/live_backend.ts";
import { defaultRequestPolicy, type RequestPolicy } from "./rtcv/request_policy.ts";
import type { Clock } from "./clock.ts";
import { type ClientConfig, ConfigError } from "./config/config.ts";
import { DebugLog } from "./debug/debug_log.ts";
import { InputLog } from "./debug/input_log.ts";
import { AnswerWriter, type ByteSink } from "./protocol/answer_writer.ts";
import { READY_ANSWER } from "./protocol/answers.ts";
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

/** Exit code when configured servers fail their start-up checks (containers restart the client). */
export const EXIT_STARTUP_FAILED = 1;

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
  /** The debug log (`ENABLE_SCRAPER_CLIENT_LOG`), disabled when not asked for. */
  readonly debugLog: DebugLog;
  /** The Prometheus metrics of this process. */
  readonly metrics: ClientMetrics;
  /** The job-data ingestion sink (its commands are registered in the core). */
  readonly ingest: InstalledIngest;
  /** Closes the core (drains mirrors, commits writes) and the logs. */
  close(): Promise<void>;
}

/** How {@link createRuntime} reaches the process. */
export interface RuntimeOptions {
  /** Decides what has expired. */
  readonly clock: Clock;
  /** The working directory for the logs and the default store. */
  readonly cwd: string;
  /** Prints a line for a person on stderr. */
  readonly stderr: (message: string) => void;
}

/**
 * Builds the client's core from the configuration: the store, the live connector with its request policy,
 * and the debug log. The line server and replay both run on it.
 */
export async function createRuntime(config: ClientConfig, options: RuntimeOptions): Promise<ClientRuntime> {
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
  const policy: RequestPolicy = {
    ...defaultRequestPolicy(config.timeoutMs),
    onRetry,
    onRequest,
  };
  const warn = (message: string) => {
    options.stderr(`rtcv_scraper_client: ${message}`);
    debugLog.log(`warning: ${message}`);
  };
  // The config loader has checked the location: classifying it cannot fail here.
  const location = classifyStoreLocation(resolveKvLocation(config, options.cwd));
  const core = new ClientCore({
    // On Redis, nothing opens the Deno.Kv store; should anything, it is the default file, never a URL.
    kvLocation: location.kind === "kv" ? location.location : join(options.cwd, DEFAULT_KV_FILE),
    redis: location.kind === "redis" ? location.redis : undefined,
    timeoutMs: config.timeoutMs,
    clock: options.clock,
    warn,
    onCacheLookup: (hit) => metrics.cacheLookup(hit),
    connectLive: (servers, core) =>
      connectLive(servers, core, {
        policy,
        log: (message) => debugLog.log(message),
        outboxRetryMs: config.outboxRetryMs,
        drainBudgetMs: config.drainMs,
        onCvResult: (origin, ok) => metrics.cvSent(origin, ok),
      }),
  });
  core.registry.observe(metrics.commandObserver());
  if (debugLog.enabled) {
    core.registry.observe((type, answer) => debugLog.log(`${type} -> ${answer.type}`));
  }
  let ingest: InstalledIngest;
  try {
    ingest = installIngest(core, {
      timeoutMs: config.timeoutMs,
      ingest: config.ingest,
      warn,
      debugLog: debugLog.enabled ? (message) => debugLog.log(message) : undefined,
      policy: { onRetry, onRequest },
      tuning: { drainMs: config.drainMs },
    });
  } catch (error) {
    // The configured ingest server is malformed (e.g. a token that cannot go in a header).
    await core.close();
    await debugLog.close();
    if (error instanceof TypeError) throw new ConfigError("configuration", "", error.message);
    throw error;
  }
  metrics.setOutboxSize(async () => {
    const backend = core.session.currentBackend;
    return backend instanceof LiveBackend ? await backend.outboxSize() : 0;
  });
  metrics.setCacheEntries(async () => {
    const backend = core.session.currentBackend;
    if (backend?.kind === "mock") return backend.references.rememberedCount;
    return core.store.isOpen ? (await core.session.persistentCache()).rememberedCount : 0;
  });
  return {
    core,
    debugLog,
    metrics,
    ingest,
    close: async () => {
      await ingest.close(); // needs the store open
      await core.close();
      await debugLog.close();
    },
  };
}

/**
 * Runs the line protocol on stdin/stdout until end of input or a stop signal, then drains and closes
 * everything. Resolves with the exit code.
 */
export async function runClient(options: RunClientOptions): Promise<number> {
  const { config } = options;
  const runtime = await createRuntime(config, options);
  const { core } = runtime;
  const writer = new AnswerWriter(options.stdout);
  let health: HealthServer | null = null;
  let inputLog: InputLog | null = null;
  try {
    if (config.logInput) {
      inputLog = await InputLog.open(join(options.cwd, INPUT_LOG_FILE)).catch((error) => {
        options.stderr(`rtcv_scraper_client: no input log: ${describeError(error)}`);
        return null;
      });
    }
    const startupError = await applyStartupConfig(core, config);
    if (startupError !== null) {
      options.stderr(`rtcv_scraper_client: ${startupError}`);
      return EXIT_STARTUP_FAILED;
    }
    if (config.healthCheckPort !== null) {
      try {
        health = await startHealthServer({
          host: config.healthCheckHost,
          port: config.healthCheckPort,
          metrics: runtime.metrics,
          status: () => healthStatus(runtime),
        });
      } catch (error) {
        options.stderr(`rtcv_scraper_client: ${error instanceof Error ? error.message : String(error)}`);
        return EXIT_STARTUP_FAILED;
      }
    }
    writer.push(READY_ANSWER);
    writer.flush();
    await serveLines(options.stdin, writer, {
      maxLineBytes: config.maxLineBytes,
      answer: (line) => core.registry.dispatch(line),
      onLine: inputLog ? (line) => inputLog?.append(rawText(line)) : undefined,
      onReadError: (error) => options.stderr(`rtcv_scraper_client: reading stdin failed, stopping: ${error}`),
      stop: options.stop,
    });
  } finally {
    await health?.close();
    await runtime.close();
    await inputLog?.close();
  }
  return 0;
}

/** What `GET /` of the health server reports. */
async function healthStatus(runtime: ClientRuntime) {
  const backend = runtime.core.session.currentBackend;
  const live = backend instanceof LiveBackend ? backend : null;
  return {
    mode: backend?.kind ?? "none" as const,
    servers: live?.origins ?? [],
    outbox: await runtime.metrics.outboxSize(),
    failing: live?.failing ?? null,
  };
}

/**
 * Enters the mode the config names (live servers or mock) before the ready line; returns an error
 * message when configured servers fail their checks.
 */
async function applyStartupConfig(core: Core, config: ClientConfig): Promise<string | null> {
  if (config.primaryServer !== null) {
    const servers: ServerCredentials[] = [
      { ...config.primaryServer, primary: true },
      ...config.alternativeServers.map((server) => ({ ...server, primary: false })),
    ];
    try {
      await core.session.replaceBackend(await core.connectLive(servers));
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      return `the configured servers failed their start-up checks: ${error.message}`;
    }
  } else if (config.mockMode) {
    const secrets: Record<string, unknown> = {};
    if (config.mockUsers !== null) {
      secrets.users = config.mockUsers;
      if (config.mockUsers.length > 0) secrets.user = config.mockUsers[0];
    }
    await core.session.replaceBackend(await core.createMock({ ...secrets, ...config.mockSecrets }));
  }
  return null;
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
