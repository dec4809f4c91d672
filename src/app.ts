import { join } from "node:path";
import { DEFAULT_KV_FILE } from "./cache/kv_store.ts";
import { ClientCore, type ClientCore as Core, type LiveConnector } from "./client_core.ts";
import type { Clock } from "./clock.ts";
import type { ClientConfig } from "./config/config.ts";
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
export interface RunClientOptions {
  readonly config: ClientConfig;
  readonly clock: Clock;
  readonly stdin: ByteSource;
  readonly stdout: ByteSink;
  /** Prints a line for a person on stderr. */
  readonly stderr: (message: string) => void;
  /** Aborted by SIGTERM / SIGINT: stop reading, answer what is in flight, exit 0. */
  readonly stop?: AbortSignal;
  /** The working directory for the logs and the default store. */
  readonly cwd: string;
  /** Connects to live servers (the RT-CV layer). */
  readonly connectLive?: LiveConnector;
  /** Runs after the core is built and before the ready line (start-up config, health server). */
  readonly beforeReady?: (core: Core, debugLog: DebugLog) => Promise<void>;
}

/** Where the store lives for this configuration. */
export function resolveKvLocation(config: ClientConfig, cwd: string): string {
  return config.kvPath ?? join(cwd, DEFAULT_KV_FILE);
}

/**
 * Runs the line protocol on stdin/stdout until end of input or a stop signal, then drains and closes
 * everything. Resolves with the exit code.
 */
export async function runClient(options: RunClientOptions): Promise<number> {
  const { config } = options;
  const debugLog = config.debugLog
    ? await DebugLog.open(join(options.cwd, DEBUG_LOG_FILE))
    : DebugLog.disabled();
  const inputLog = config.logInput ? await InputLog.open(join(options.cwd, INPUT_LOG_FILE)) : null;
  const core = new ClientCore({
    kvLocation: resolveKvLocation(config, options.cwd),
    clock: options.clock,
    warn: (message) => {
      options.stderr(`rtcv_scraper_client: ${message}`);
      debugLog.log(`warning: ${message}`);
    },
    connectLive: options.connectLive,
  });
  if (debugLog.enabled) {
    core.registry.observe((type, answer) => debugLog.log(`${type} -> ${answer.type}`));
  }
  const writer = new AnswerWriter(options.stdout);
  try {
    await options.beforeReady?.(core, debugLog);
    writer.push(READY_ANSWER);
    writer.flush();
    await serveLines(options.stdin, writer, {
      maxLineBytes: config.maxLineBytes,
      answer: (line) => core.registry.dispatch(line),
      onLine: inputLog ? (line) => inputLog.append(rawText(line)) : undefined,
      stop: options.stop,
    });
  } finally {
    await core.close();
    await inputLog?.close();
    await debugLog.close();
  }
  return 0;
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
