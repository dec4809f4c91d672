/**
 * rtcv_scraper_client: the program a scraper spawns. Reads flags and configuration, then either replays
 * an input log, serves the line protocol on stdin/stdout, or (given a command) runs the scraper itself and
 * serves it the Go client v2's HTTP routes (wrapper mode). Only this file calls `Deno.exit`.
 */
import denoJson from "./deno.json" with { type: "json" };
import { createRuntime, runClient } from "./src/app.ts";
import { DEFAULT_FLAGS } from "./src/cli/default_flags.ts";
import type { Flags } from "./src/cli/flags.ts";
import { helpText } from "./src/cli/help_text.ts";
import { systemClock } from "./src/clock.ts";
import { ConfigError, loadConfig } from "./src/config/config.ts";

// stdout carries protocol lines only: anything printed through console goes to stderr.
for (const method of ["log", "info", "debug", "trace", "dir", "table"] as const) {
  // deno-lint-ignore no-console
  console[method] = console.error;
}

const stderr = (message: string) => {
  // deno-lint-ignore no-console
  console.error(message);
};
// A promise rejection that no code handles is a bug, but it must not take the scraper's client down
// with CVs in flight: say so on stderr and keep serving.
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  const reason = event.reason instanceof Error ? event.reason.stack ?? event.reason.message : event.reason;
  stderr(`rtcv_scraper_client: internal error (kept running): ${reason}`);
});

const stdoutLine = (line: string) => {
  const bytes = new TextEncoder().encode(line + "\n");
  for (let offset = 0; offset < bytes.length;) offset += Deno.stdout.writeSync(bytes.subarray(offset));
};

// The flag parser (node:util) is loaded only when there are arguments: scrapers start the client without.
let flags: Readonly<Flags> = DEFAULT_FLAGS;
if (Deno.args.length > 0) {
  const { parseFlags, UsageError } = await import("./src/cli/flags.ts");
  try {
    flags = parseFlags(Deno.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    stderr(`rtcv_scraper_client: ${error.message}\nrun rtcv_scraper_client --help for the flags`);
    Deno.exit(error.exitCode);
  }
}
if (flags.help) {
  stdoutLine(helpText(denoJson.version));
  Deno.exit(0);
}
if (flags.version) {
  stdoutLine(`rtcv_scraper_client ${denoJson.version}`);
  Deno.exit(0);
}
/** An invalid configuration stops the program before the ready line with exit code 2. */
function exitOnConfigError(error: unknown): never {
  if (!(error instanceof ConfigError)) throw error;
  stderr(`rtcv_scraper_client: invalid configuration: ${error.message}`);
  Deno.exit(2);
}

const config = await loadConfig(Deno.env).catch(exitOnConfigError);
if (config.configSource !== null) stderr(`rtcv_scraper_client: configuration from ${config.configSource}`);

if (flags.command.length > 0) {
  // Wrapper mode: SIGTERM and SIGINT go to the scraper; the client exits with its exit code.
  // Loaded only here: the line protocol's start-up does not pay for it.
  const { runWrapper } = await import("./src/wrapper/run_wrapper.ts");
  const code = await runWrapper({
    config,
    command: flags.command,
    clock: systemClock(config.clockOffsetMs),
    cwd: Deno.cwd(),
    stderr,
    onSignal: (listener) => {
      for (const signal of ["SIGTERM", "SIGINT"] as const) {
        Deno.addSignalListener(signal, () => listener(signal));
      }
    },
  }).catch(exitOnConfigError);
  Deno.exit(code);
}

const stop = new AbortController();
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => stop.abort());
}
const clock = systemClock(config.clockOffsetMs);

if (flags.replay !== null) {
  // Replay is for debugging: unless a store is named, it starts from an empty cache it throws away, so
  // it neither reads nor marks the scraper's real cache.
  const replayConfig = { ...config, kvPath: config.kvPath ?? ":memory:" };
  const runtime = await createRuntime(replayConfig, { clock, cwd: Deno.cwd(), stderr })
    .catch(exitOnConfigError);
  const { runReplay } = await import("./src/replay/replay.ts");
  const code = await runReplay({
    file: flags.replay,
    skipCommands: flags.replaySkipCommands,
    repeat: flags.repeatReplay,
    env: Deno.env,
    core: runtime.core,
    dispatch: runtime.dispatch,
    close: runtime.close,
    out: stdoutLine,
    err: stderr,
    stop: stop.signal,
    maxLineBytes: config.maxLineBytes,
  });
  Deno.exit(code);
}

const code = await runClient({
  config,
  clock,
  stdin: Deno.stdin,
  stdout: Deno.stdout,
  stderr,
  stop: stop.signal,
  cwd: Deno.cwd(),
}).catch(exitOnConfigError);
Deno.exit(code);
