/**
 * One connection to the fleet's Redis server, through the `ioredis` client (loaded only when the store is
 * Redis, so the default Deno.Kv path does not pay for it at start-up).
 *
 * Faults: commands are never queued while the server is unreachable (ioredis' offline queue is off), so
 * they fail at once with a {@link RedisUnavailableError} naming `host:port`; a command the server does not
 * answer fails after the timeout. ioredis reconnects in the background with a backoff capped at 5 s, and
 * the next command after that works again: no restart needed.
 *
 * @module
 */

import type { ChainableCommander, Redis, RedisOptions } from "ioredis";
import { ClientError } from "../../errors.ts";
import type { RedisAddress } from "./redis_url.ts";

/** The longest wait between two reconnection attempts. */
export const MAX_RECONNECT_DELAY_MS = 5000;

/**
 * The Redis server could not be reached or did not answer in time. It is an error the scraper can act on
 * (the command may be sent again once Redis is back), so it answers the command as an error line.
 */
export class RedisUnavailableError extends ClientError {
  override name = "RedisUnavailableError";
}

/** How a {@link RedisConnection} behaves. */
export interface RedisConnectionOptions {
  /** How long a command (or a pipeline) may wait for its answer: `RTCV_SCRAPER_CLIENT_TIMEOUT_MS`. */
  readonly timeoutMs: number;
  /** A line for a person when the connection is lost and when it is back (stderr and the debug log). */
  readonly warn?: (message: string) => void;
}

/** The backoff of reconnection attempt `attempt` (1, 2, ...): 100 ms doubling, capped at 5 s. */
export function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.max(0, attempt - 1), MAX_RECONNECT_DELAY_MS);
}

/** A connection to one Redis server; open it with {@link RedisConnection.open}. */
export class RedisConnection {
  /** `host:port` of the server (never the password). */
  readonly address: string;
  readonly #client: Redis;
  readonly #timeoutMs: number;
  readonly #warn: (message: string) => void;
  #lastError = "";
  #lost = false;
  #closed = false;

  private constructor(client: Redis, address: RedisAddress, options: RedisConnectionOptions) {
    this.#client = client;
    this.address = address.address;
    this.#timeoutMs = options.timeoutMs;
    this.#warn = options.warn ?? (() => {});
    const lost = (reason: string) => {
      if (this.#lost || this.#closed) return;
      this.#lost = true;
      this.#warn(`Redis ${this.address} is unreachable (${reason}); reconnecting`);
    };
    client.on("error", (error: unknown) => {
      this.#lastError = this.#reason(error);
      lost(this.#lastError);
    });
    client.on("close", () => lost(this.#lastError || "the connection closed"));
    client.on("ready", () => {
      if (this.#lost) this.#warn(`Redis ${this.address} is reachable again`);
      this.#lost = false;
      this.#lastError = "";
    });
  }

  /**
   * Connects, waiting at most the timeout for the server. A server that is down does not fail the
   * open: the connection keeps trying in the background and commands answer errors meanwhile.
   */
  static async open(address: RedisAddress, options: RedisConnectionOptions): Promise<RedisConnection> {
    const { Redis } = await import("ioredis");
    const settings: RedisOptions = {
      host: address.host,
      port: address.port,
      db: address.db,
      username: address.username,
      password: address.password,
      tls: address.tls ? { servername: address.host } : undefined,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A command in flight when the connection drops is answered with an error, never sent again later.
      autoResendUnfulfilledCommands: false,
      connectTimeout: Math.min(options.timeoutMs, 10_000),
      commandTimeout: options.timeoutMs,
      retryStrategy: reconnectDelay,
      // A server answering LOADING (reading its AOF after a restart) is waited for, not an error.
      enableReadyCheck: true,
    };
    const connection = new RedisConnection(new Redis(settings), address, options);
    await connection.#firstConnect();
    return connection;
  }

  async #firstConnect(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Settles on the first outcome: ready, a failure (refused: no point waiting), or the timeout.
    const ready = new Promise<void>((resolve) => {
      this.#client.once("ready", resolve);
      this.#client.once("error", () => resolve());
      timer = setTimeout(resolve, this.#timeoutMs);
    });
    this.#client.connect().catch(() => {}); // failures arrive as "error" events and are retried
    await ready;
    clearTimeout(timer);
  }

  /** The ioredis client, for the store modules of this folder. */
  get client(): Redis {
    return this.#client;
  }

  /** True while commands can be sent. */
  get ready(): boolean {
    return this.#client.status === "ready";
  }

  /**
   * Runs a pipeline built by `build` and answers each command's reply in order. Any failure (not
   * connected, no answer within the timeout, a command refused) rejects with a {@link RedisUnavailableError}
   * or the command's error, naming the server.
   */
  async pipeline(build: (pipeline: ChainableCommander) => void): Promise<unknown[]> {
    this.#checkReady();
    const pipeline = this.#client.pipeline();
    build(pipeline);
    const replies = await this.#withTimeout(pipeline.exec());
    if (replies === null) throw this.unavailable("the connection closed");
    return replies.map(([error, reply]) => {
      if (!error) return reply;
      // A reply error is the server's answer (e.g. NOAUTH); anything else (a timeout, a lost
      // connection) means the server cannot be used now.
      if (error.name !== "ReplyError") throw this.unavailable(this.#reason(error));
      throw new RedisUnavailableError(
        `the Redis server ${this.address} refused a command: ${this.#reason(error)}`,
      );
    });
  }

  /** Runs one command through `run` with the same checks and errors as {@link pipeline}. */
  async call<T>(run: (client: Redis) => Promise<T>): Promise<T> {
    this.#checkReady();
    return await this.#withTimeout(run(this.#client));
  }

  #checkReady(): void {
    if (this.#closed) throw new RedisUnavailableError(`the Redis store ${this.address} is closed`);
    if (this.#client.status !== "ready") {
      throw this.unavailable(this.#lastError || `the connection is ${this.#client.status}`);
    }
  }

  async #withTimeout<T>(work: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(this.unavailable(`no answer within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    });
    try {
      return await Promise.race([work, timeout]);
    } catch (error) {
      if (error instanceof RedisUnavailableError) throw error;
      throw this.unavailable(this.#reason(error));
    } finally {
      clearTimeout(timer);
    }
  }

  /** The error for "the server cannot be used now", naming it and why. */
  unavailable(reason: string): RedisUnavailableError {
    return new RedisUnavailableError(
      `the Redis server ${this.address} is unavailable (${reason}); the client reconnects on its own, ` +
        "send the command again later",
    );
  }

  /** An error's message, without anything but the server's address (ioredis never puts the password in). */
  #reason(error: unknown): string {
    const message = error instanceof Error ? error.message : String(error);
    if (/enableOfflineQueue|Stream isn't writeable/i.test(message)) return "not connected";
    return message.replace(/\s+/g, " ").slice(0, 200);
  }

  /** Closes the connection (after the replies in flight); later commands fail. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#client.status === "ready") {
      await this.#withTimeout(this.#client.quit()).catch(() => {});
    }
    this.#client.disconnect();
  }
}
