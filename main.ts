/**
 * rtcv_scraper_client: the program a scraper spawns. Reads flags and configuration, then either replays
 * an input log or serves the line protocol on stdin/stdout. Only this file calls `Deno.exit`.
 */
import { runClient } from "./src/app.ts";
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

let config;
try {
  config = await loadConfig(Deno.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  stderr(`rtcv_scraper_client: invalid configuration: ${error.message}`);
  Deno.exit(2);
}

const stop = new AbortController();
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => stop.abort());
}

const offset = Number(Deno.env.get("RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS") ?? "0");
const code = await runClient({
  config,
  clock: systemClock(Number.isFinite(offset) ? offset : 0),
  stdin: Deno.stdin,
  stdout: Deno.stdout,
  stderr,
  stop: stop.signal,
  cwd: Deno.cwd(),
  env: Deno.env,
});
Deno.exit(code);
