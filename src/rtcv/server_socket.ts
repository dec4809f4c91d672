/**
 * One websocket to one RT-CV server (`ws(s)://<server>/api/v1/scraper/ws`), kept open for as long as the
 * client runs: a ping frame every 20 s (a proxy in front of RT-CV drops connections idle for 30 s) and a
 * reconnect with growing waits after every failure.
 *
 * It uses the npm `ws` client: Deno's built-in `WebSocket` takes the Authorization header but cannot send
 * ping frames (opcode 9); `ws` can, and runs under Deno (checked by `tests/server_socket_test.ts` against a
 * server that reads the raw frames).
 *
 * @module
 */

/**
 * The part of the npm `ws` client this module uses (its own types come with `@types/node`, which the
 * project does not need for anything else).
 */
interface WebSocket {
  readonly readyState: number;
  readonly OPEN: number;
  send(data: string): void;
  ping(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: "open", listener: () => void): this;
  on(event: "message", listener: (data: unknown, isBinary: boolean) => void): this;
  on(event: "error", listener: (error: Error) => void): this;
  on(event: "close", listener: (code: number) => void): this;
  on(event: "pong", listener: () => void): this;
  on(
    event: "unexpected-response",
    listener: (request: unknown, response: { statusCode?: number }) => void,
  ): this;
}

/** The `ws` client's constructor, as used here. */
type WebSocketClass = new (
  url: string,
  options: { headers: Record<string, string>; handshakeTimeout: number; perMessageDeflate: boolean },
) => WebSocket;

/** The waits before reconnect attempt 1, 2, ... (the last one repeats): about 1 s growing to 15 s. */
export const DEFAULT_RECONNECT_DELAYS_MS: readonly number[] = [
  1000,
  2000,
  4000,
  4000,
  10_000,
  10_000,
  15_000,
];
/** How often a ping frame goes out on an open socket. */
export const DEFAULT_PING_INTERVAL_MS = 20_000;

/** Where a socket connects and how it authenticates. */
export interface SocketTarget {
  /** `ws://` or `wss://` URL of the server's scraper socket. */
  readonly url: string;
  /** Headers of the upgrade request (the Authorization header). */
  readonly headers: Readonly<Record<string, string>>;
  /** The server's origin, for log lines (never the key). */
  readonly origin: string;
}

/** What a {@link ServerSocket} does with what arrives, and how it times its pings and reconnects. */
export interface ServerSocketOptions {
  /** Told about every text message, as it arrived. */
  readonly onMessage: (text: string) => void;
  /** Debug log lines (connects, failures, reconnect waits). */
  readonly log: (message: string) => void;
  /** A warning for a person (the websocket client cannot be loaded at all); default `log`. */
  readonly warn?: (message: string) => void;
  /** Ping interval in ms; default {@link DEFAULT_PING_INTERVAL_MS}. */
  readonly pingIntervalMs?: number;
  /** Reconnect waits in ms; default {@link DEFAULT_RECONNECT_DELAYS_MS}. */
  readonly reconnectDelaysMs?: readonly number[];
  /** How long the opening handshake may take, in ms; default 20000. */
  readonly handshakeTimeoutMs?: number;
  /**
   * How long after {@link ServerSocket.start} the first connect is made, in ms; default
   * {@link DEFAULT_START_DELAY_MS}. Loading the `ws` client costs 60-110 ms of CPU once per process: it should
   * not land on `set_credentials` and the first CVs sent after it.
   */
  readonly startDelayMs?: number;
}

/** The default of {@link ServerSocketOptions.startDelayMs}. */
export const DEFAULT_START_DELAY_MS = 1000;

let wsModule: Promise<WebSocketClass> | null = null;
/** Loaded on first use: only live mode needs it, and the line protocol's start-up stays as fast as before. */
function loadWebSocket(): Promise<WebSocketClass> {
  wsModule ??= import("ws").then((module: { default: unknown }) => module.default as WebSocketClass);
  return wsModule;
}

/**
 * A websocket to one server that reconnects by itself. It never throws at its user: failures become log
 * lines and a later attempt. Call {@link start} once and {@link close} at the end.
 *
 * @example
 * ```ts ignore
 * const socket = new ServerSocket(target, { onMessage: (text) => handle(text), log: () => {} });
 * socket.start();
 * socket.send('{"type":"x","id":1,"data":null}');
 * await socket.close();
 * ```
 */
export class ServerSocket {
  readonly #target: SocketTarget;
  readonly #options: ServerSocketOptions;
  #socket: WebSocket | null = null;
  #open = false;
  #failures = 0;
  #closed = false;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #socketGone: Promise<void> = Promise.resolve();
  #dropReason = "";

  /** A socket to `target`; nothing happens before {@link start}. */
  constructor(target: SocketTarget, options: ServerSocketOptions) {
    this.#target = target;
    this.#options = options;
  }

  /** The server's origin. */
  get origin(): string {
    return this.#target.origin;
  }

  /** True while the socket is open (a message sent now goes out). */
  get connected(): boolean {
    return this.#open;
  }

  /** Connects (and keeps reconnecting until {@link close}). */
  start(): void {
    if (this.#closed || this.#socket !== null || this.#reconnectTimer !== undefined) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connect();
    }, this.#options.startDelayMs ?? DEFAULT_START_DELAY_MS);
  }

  /** Sends a text message; false when the socket is not open (nothing was sent). */
  send(text: string): boolean {
    if (!this.#open || this.#socket === null) return false;
    this.#socket.send(text);
    return true;
  }

  /** Stops reconnecting and closes the socket; resolves once it is closed. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#stopPings();
    const socket = this.#socket;
    if (socket !== null) {
      if (socket.readyState === socket.OPEN) socket.close(1000, "client closing");
      else socket.terminate();
      // A peer that does not answer the close frame: drop the connection after a moment.
      const timer = setTimeout(() => socket.terminate(), 1000);
      await this.#socketGone;
      clearTimeout(timer);
    }
  }

  async #connect(): Promise<void> {
    let WebSocketClient: WebSocketClass;
    try {
      WebSocketClient = await loadWebSocket();
    } catch (error) {
      (this.#options.warn ?? this.#options.log)(
        `no websocket to ${this.origin}: the ws module could not be loaded: ${describe(error)}`,
      );
      return;
    }
    if (this.#closed) return;
    const socket = new WebSocketClient(this.#target.url, {
      headers: { ...this.#target.headers },
      handshakeTimeout: this.#options.handshakeTimeoutMs ?? 20_000,
      perMessageDeflate: false,
    });
    this.#socket = socket;
    const gone = Promise.withResolvers<void>();
    this.#socketGone = gone.promise;
    let reason = "";
    this.#dropReason = "";
    socket.on("open", () => {
      this.#open = true;
      this.#failures = 0;
      this.#options.log(`websocket to ${this.origin}: connected`);
      this.#startPings(socket);
    });
    socket.on("message", (data, isBinary) => {
      if (isBinary) {
        this.#options.log(`websocket to ${this.origin}: ignored a binary message`);
        return;
      }
      this.#options.onMessage(String(data));
    });
    socket.on("error", (error) => {
      if (reason === "") reason = describe(error); // the first cause; terminate() adds a second error
    });
    socket.on("unexpected-response", (_request, response) => {
      reason = `the server answered ${response.statusCode} instead of switching to a websocket`;
      socket.terminate();
    });
    socket.on("close", (code) => {
      const wasOpen = this.#open;
      if (this.#dropReason !== "") reason = this.#dropReason;
      this.#open = false;
      this.#socket = null;
      this.#stopPings();
      gone.resolve();
      if (this.#closed) return;
      const delay = this.#nextDelay();
      this.#options.log(
        `websocket to ${this.origin}: ${wasOpen ? `closed (${code})` : "could not connect"}` +
          `${reason === "" ? "" : `: ${reason}`}; reconnecting in ${delay} ms`,
      );
      this.#reconnectTimer = setTimeout(() => {
        this.#reconnectTimer = undefined;
        this.#connect();
      }, delay);
    });
  }

  #nextDelay(): number {
    const delays = this.#options.reconnectDelaysMs ?? DEFAULT_RECONNECT_DELAYS_MS;
    const delay = delays[Math.min(this.#failures, delays.length - 1)];
    this.#failures++;
    return delay;
  }

  /**
   * Pings at every interval. A socket whose peer did not answer the last ping by the next one is dead (a
   * connection that broke without a close): it is dropped, and the reconnect starts at once.
   */
  #startPings(socket: WebSocket): void {
    this.#stopPings();
    let awaitingPong = false;
    socket.on("pong", () => {
      awaitingPong = false;
    });
    const intervalMs = this.#options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    this.#pingTimer = setInterval(() => {
      if (socket.readyState !== socket.OPEN) return;
      if (awaitingPong) {
        this.#dropReason = `no answer to a ping within ${intervalMs} ms`;
        socket.terminate();
        return;
      }
      awaitingPong = true;
      socket.ping();
    }, intervalMs);
  }

  #stopPings(): void {
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
