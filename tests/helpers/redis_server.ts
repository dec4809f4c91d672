/**
 * Test helper: a real `redis-server` (Debian's) on a free 127.0.0.1 port with its own temp dir, started and
 * stopped by the test. It can be stopped and started again on the same port and dir (a Redis restart in the
 * middle of a session), and killed without a clean shutdown.
 *
 * Where `redis-server` is not on PATH, {@link REDIS_MISSING} is true: Redis tests pass it as `ignore`, and
 * one test file prints {@link REDIS_INSTALL_HINT} once.
 *
 * @example
 * ```ts ignore
 * import { REDIS_MISSING, RedisServer } from "./helpers/redis_server.ts";
 *
 * Deno.test({ name: "uses redis", ignore: REDIS_MISSING }, async () => {
 *   await using redis = await RedisServer.start();
 *   // RTCV_SCRAPER_CLIENT_KV = redis.url
 * });
 * ```
 *
 * @module
 */

/** The one line a run without `redis-server` prints. */
export const REDIS_INSTALL_HINT =
  "Redis tests skipped: redis-server is not on PATH (install it: apt-get install -y redis-server)";

/** Where `redis-server` is, or null when it is not on PATH. */
export const REDIS_SERVER_PATH: string | null = findOnPath("redis-server");

/** True when the Redis tests cannot run here (pass it as the tests' `ignore`). */
export const REDIS_MISSING: boolean = REDIS_SERVER_PATH === null;

function findOnPath(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    const path = `${dir}/${name}`;
    try {
      const info = Deno.statSync(path);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return path;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** How a {@link RedisServer} is started. */
export interface RedisServerOptions {
  /** `--requirepass`: clients must authenticate with it. */
  readonly password?: string;
  /** `--appendonly yes` (default true), so acknowledged writes survive a restart. */
  readonly appendOnly?: boolean;
  /** How long to wait for the server to answer PING, in ms (default 10 s). */
  readonly startTimeoutMs?: number;
}

/** A Lua script answering every string and hash value, joined (see {@link RedisServer.allValues}). */
const DUMP_VALUES = `local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', k).ok
  if t == 'string' then out[#out + 1] = redis.call('GET', k)
  elseif t == 'hash' then for _, v in ipairs(redis.call('HGETALL', k)) do out[#out + 1] = v end end
end
return table.concat(out, ' ')`;

/** A free TCP port on 127.0.0.1 (closed again, so the server can bind it). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A running (or stopped) `redis-server` of one test. */
export class RedisServer implements AsyncDisposable {
  /** Always 127.0.0.1. */
  readonly host = "127.0.0.1";
  /** The port it listens on, the same across {@link restart}. */
  readonly port: number;
  /** Its working directory (AOF files, log), removed by {@link dispose}. */
  readonly dir: string;
  readonly #options: RedisServerOptions;
  #child: Deno.ChildProcess | null = null;

  private constructor(port: number, dir: string, options: RedisServerOptions) {
    this.port = port;
    this.dir = dir;
    this.#options = options;
  }

  /** Starts a server on a free port in a fresh temp dir and waits until it answers. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    if (REDIS_SERVER_PATH === null) throw new Error(REDIS_INSTALL_HINT);
    const dir = await Deno.makeTempDir({ prefix: "rtcv_redis_test_" });
    const server = new RedisServer(freePort(), dir, options);
    await server.#launch();
    return server;
  }

  /** `redis://[:password@]127.0.0.1:<port>` for `RTCV_SCRAPER_CLIENT_KV`. */
  get url(): string {
    const auth = this.#options.password ? `:${encodeURIComponent(this.#options.password)}@` : "";
    return `redis://${auth}${this.host}:${this.port}`;
  }

  /** `host:port`, as the client names the server in errors. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** True while the server process runs. */
  get running(): boolean {
    return this.#child !== null;
  }

  async #launch(): Promise<void> {
    const args = [
      "--port",
      String(this.port),
      "--bind",
      this.host,
      "--dir",
      this.dir,
      "--save",
      "",
      "--appendonly",
      this.#options.appendOnly === false ? "no" : "yes",
      "--logfile",
      "redis.log",
      "--daemonize",
      "no",
    ];
    if (this.#options.password) args.push("--requirepass", this.#options.password);
    this.#child = new Deno.Command(REDIS_SERVER_PATH!, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 10_000);
    let exited = false;
    this.#child.status.then(() => exited = true);
    for (;;) {
      if (exited) {
        this.#child = null;
        throw new Error(`redis-server exited at start: ${await this.log()}`);
      }
      if (await this.#answersPing()) return;
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`redis-server did not answer on ${this.address}: ${await this.log()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** True when the server answers PING (or asks for a password: it is up). */
  async #answersPing(): Promise<boolean> {
    let conn: Deno.TcpConn | null = null;
    try {
      conn = await Deno.connect({ hostname: this.host, port: this.port });
      await conn.write(new TextEncoder().encode("PING\r\n"));
      const buffer = new Uint8Array(64);
      const n = await conn.read(buffer);
      const reply = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
      return reply.startsWith("+PONG") || reply.startsWith("-NOAUTH");
    } catch {
      return false;
    } finally {
      conn?.close();
    }
  }

  /** The end of the server's log, for failure messages. */
  async log(): Promise<string> {
    try {
      return (await Deno.readTextFile(`${this.dir}/redis.log`)).slice(-2000);
    } catch {
      return "(no log)";
    }
  }

  /** Stops the server: SIGTERM (Redis flushes its AOF and exits), or SIGKILL. Waits for the exit. */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    this.#child = null;
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
    await child.status;
  }

  /** Freezes the server (SIGSTOP): connections stay open and nothing is answered, like a hung host. */
  freeze(): void {
    this.#child?.kill("SIGSTOP");
  }

  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void {
    this.#child?.kill("SIGCONT");
  }

  /** Starts the stopped server again on the same port and dir (its AOF brings the data back). */
  async restart(): Promise<void> {
    await this.stop();
    await this.#launch();
  }

  /** Runs `redis-cli` against this server and returns its output (for checks from outside the client). */
  async cli(...args: string[]): Promise<string> {
    const auth = this.#options.password ? ["--no-auth-warning", "-a", this.#options.password] : [];
    const output = await new Deno.Command("redis-cli", {
      args: ["-h", this.host, "-p", String(this.port), ...auth, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout).trim();
    if (!output.success) {
      throw new Error(`redis-cli ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`);
    }
    return text;
  }

  /** Every string and hash value in the server, joined by spaces: to search the store for a secret. */
  allValues(): Promise<string> {
    return this.cli("EVAL", DUMP_VALUES, "0");
  }

  /** Stops the server and removes its dir. */
  async dispose(): Promise<void> {
    this.thaw();
    await this.stop("SIGKILL");
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** Same as {@link dispose}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
