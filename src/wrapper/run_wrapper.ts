/**
 * Wrapper mode, `rtcv_scraper_client [flags] [--] <command...>`: what the Go client v2 did. Apply the
 * configuration (servers checked), serve the routes on 127.0.0.1 at the first free port of 4001-6000 (or
 * `RTCV_SCRAPER_CLIENT_ADDRESS`), run the scraper with `SCRAPER_ADDRESS=http://<host>:<port>` and stdio passed
 * through, forward SIGTERM/SIGINT to it, keep answering until it exited, then drain and return its exit code
 * (128+N when signal N ended it).
 *
 * @module
 */

import {
  applyStartupConfig,
  createRuntime,
  EXIT_STARTUP_FAILED,
  openInputLog,
  type RuntimeOptions,
  startConfiguredHealth,
  STOPPED,
  untilStopped,
} from "../app.ts";
import type { ClientConfig } from "../config/config.ts";
import { wrapperHandler } from "./routes.ts";

/** The ports tried in order when `RTCV_SCRAPER_CLIENT_ADDRESS` is not set (the Go client's range). */
export const FIRST_PORT = 4001;
/** The last port tried. */
export const LAST_PORT = 6000;
/** Exit code when the scraper command cannot be started (as a shell answers a missing command). */
export const EXIT_COMMAND_NOT_STARTED = 127;

/** Everything wrapper mode runs with; `main.ts` fills it from the real process. */
export interface RunWrapperOptions extends RuntimeOptions {
  readonly config: ClientConfig;
  /** The scraper command and its arguments. */
  readonly command: readonly string[];
  /** Registers the listener for SIGTERM and SIGINT (they are forwarded to the scraper). */
  readonly onSignal: (listener: (signal: Deno.Signal) => void) => void;
}

const SIGNAL_NUMBERS: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

/** The exit code a shell reports for a child's status: its code, or 128+N when signal N ended it. */
export function exitCodeOf(status: Deno.CommandStatus): number {
  if (status.signal !== null) return 128 + (SIGNAL_NUMBERS[status.signal] ?? 0);
  return status.code;
}

/** Listens at `address`, or at the first free port of {@link FIRST_PORT}..{@link LAST_PORT} on 127.0.0.1. */
function listen(
  handler: (request: Request) => Promise<Response>,
  address: ClientConfig["wrapperAddress"],
): Deno.HttpServer<Deno.NetAddr> {
  const serve = (hostname: string, port: number) =>
    Deno.serve({
      hostname,
      port,
      onListen() {},
      onError: () => new Response("internal error", { status: 500 }),
    }, handler);
  if (address !== null) return serve(address.hostname, address.port);
  for (let port = FIRST_PORT; port <= LAST_PORT; port++) {
    try {
      return serve("127.0.0.1", port);
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error(
    `no free port from ${FIRST_PORT} to ${LAST_PORT} on 127.0.0.1 (set RTCV_SCRAPER_CLIENT_ADDRESS)`,
  );
}

/** Runs wrapper mode to the end; resolves with the exit code. */
export async function runWrapper(options: RunWrapperOptions): Promise<number> {
  const { config, stderr } = options;
  const runtime = await createRuntime(config, options);
  const inputLog = await openInputLog(config, options);
  let server: Deno.HttpServer<Deno.NetAddr> | null = null;
  let health: Awaited<ReturnType<typeof startConfiguredHealth>> = null;
  let child: Deno.ChildProcess | null = null;
  const stopped = new AbortController();
  options.onSignal((signal) => {
    stopped.abort();
    try {
      child?.kill(signal);
    } catch {
      // it has exited already
    }
  });
  try {
    const startup = await untilStopped(applyStartupConfig(runtime.core, config), stopped.signal);
    if (startup === STOPPED) return 0; // a signal during the start-up checks: the scraper never started
    if ("error" in startup) {
      stderr(`rtcv_scraper_client: ${startup.error}`);
      return EXIT_STARTUP_FAILED;
    }
    health = await startConfiguredHealth(runtime, config, stderr);
    if (health === "failed") return EXIT_STARTUP_FAILED;
    const handler = wrapperHandler({
      dispatch: runtime.dispatch,
      maxBodyBytes: config.maxLineBytes,
      onLine: inputLog ? (line) => inputLog.append(line) : undefined,
    });
    try {
      server = listen(handler, config.wrapperAddress);
    } catch (error) {
      stderr(
        `rtcv_scraper_client: cannot serve the scraper routes: ${
          error instanceof Error ? error.message : error
        }`,
      );
      return EXIT_STARTUP_FAILED;
    }
    const host = server.addr.hostname.includes(":") ? `[${server.addr.hostname}]` : server.addr.hostname;
    const address = `http://${host}:${server.addr.port}`;
    if (stopped.signal.aborted) return 0; // stopped before the scraper started
    stderr(`rtcv_scraper_client: serving the scraper routes at ${address}; running ${options.command[0]}`);
    try {
      child = new Deno.Command(options.command[0], {
        args: options.command.slice(1),
        env: { SCRAPER_ADDRESS: address },
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (error) {
      const reason = error instanceof Deno.errors.NotFound
        ? "command not found"
        : error instanceof Error
        ? error.message
        : String(error);
      stderr(`rtcv_scraper_client: cannot start ${JSON.stringify(options.command[0])}: ${reason}`);
      return EXIT_COMMAND_NOT_STARTED;
    }
    const status = await child.status;
    return exitCodeOf(status);
  } finally {
    // Nobody is left to ask: waits end, in-flight answers finish, then everything drains and closes.
    runtime.stopWaitingForServerRequests();
    await server?.shutdown();
    if (health !== null && health !== "failed") await health.close();
    await runtime.close();
    await inputLog?.close();
  }
}
