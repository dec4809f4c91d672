/**
 * Requests that RT-CV servers send the scraper over their websockets, and the scraper's answers to them.
 *
 * One {@linkcode ServerRequests} lives as long as the process. Live mode opens one {@linkcode SocketGroup}
 * (a socket per server); its messages `{type, id, data}` are handed to whoever waits in
 * {@linkcode ServerRequests.next}, or kept in order (bounded) until someone asks. Ids are made unique across
 * servers as `"<server index>-<id>"`; {@linkcode ServerRequests.respond} sends an answer back to the server
 * that asked, with its original id.
 *
 * @module
 */

import { ClientError } from "../errors.ts";
import { ServerSocket, type ServerSocketOptions, type SocketTarget } from "./server_socket.ts";

/** A request from a server, as the scraper sees it. */
export interface ServerRequest {
  /** The server's `type` field (whatever JSON it sent). */
  readonly type: unknown;
  /** `"<server index>-<the server's id>"`: unique across servers. */
  readonly id: string;
  /** The server's `data` field (null when it sent none). */
  readonly data: unknown;
}

/** The scraper's answer to a {@link ServerRequest}. */
export interface ServerAnswer {
  /** The id the scraper got with the request. */
  readonly id: string;
  /** The answer's type; default the request's type. */
  readonly type?: unknown;
  /** The answer's data. */
  readonly data?: unknown;
}

/** An answer could not be sent; the message says why and what to do. */
export class ServerRequestError extends ClientError {
  override readonly name = "ServerRequestError";
}

/** Why a wait ended without a request: `null` (timeout, stop) or replaced by a later wait. */
export const REPLACED: unique symbol = Symbol("replaced");

/** How {@link ServerRequests.next} waits. */
export interface NextOptions {
  /** Give up after this many ms (answer null); default: wait without limit. */
  readonly timeoutMs?: number;
  /** End every earlier wait that was also made with `replace` (it resolves {@link REPLACED}). */
  readonly replace?: boolean;
  /** Only end those waits (as `replace` does), take no request and resolve null at once. */
  readonly cancel?: boolean;
}

/** What {@link ServerRequests} is built with. */
export interface ServerRequestsOptions {
  /** A warning for a person (dropped requests, messages that are not requests). */
  readonly warn: (message: string) => void;
  /** Debug log lines of the sockets. */
  readonly log: (message: string) => void;
  /** How many requests are kept while nobody waits; default 1000 (past it the oldest are dropped). */
  readonly maxQueued?: number;
  /** Socket timing (ping interval, reconnect waits, handshake timeout). */
  readonly socket?: Pick<
    ServerSocketOptions,
    "pingIntervalMs" | "reconnectDelaysMs" | "handshakeTimeoutMs" | "startDelayMs"
  >;
}

/** The sockets of one live session, started and closed with its backend. */
export interface SocketGroup {
  /** Opens the sockets (they reconnect until closed). */
  start(): void;
  /** Closes them; requests kept from them are dropped (their servers cannot be answered any more). */
  close(): Promise<void>;
}

interface Waiter {
  readonly resolve: (request: ServerRequest | null | typeof REPLACED) => void;
  readonly replaceable: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

interface Asked {
  readonly group: Group;
  readonly index: number;
  readonly originalId: string | number;
  readonly type: unknown;
}

/** How many answered-or-not ids are remembered for {@link ServerRequests.respond}. */
const MAX_REMEMBERED_IDS = 10_000;

/**
 * The requests of every server, in arrival order, and the scraper's waits for them.
 *
 * @example
 * ```ts ignore
 * const requests = new ServerRequests({ warn: console.error, log: () => {} });
 * const group = requests.connect([{ url: "ws://127.0.0.1:4000/api/v1/scraper/ws", headers: {}, origin: "http://127.0.0.1:4000" }]);
 * group.start();
 * const request = await requests.next({ timeoutMs: 1000 }); // {type, id: "0-<id>", data} or null
 * if (request !== null) requests.respond({ id: request.id, data: "done" });
 * ```
 */
export class ServerRequests {
  readonly #options: ServerRequestsOptions;
  readonly #queue: ServerRequest[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #asked = new Map<string, Asked>();
  #current: Group | null = null;
  #stopped = false;

  /** A hub without sockets; {@link connect} adds them. */
  constructor(options: ServerRequestsOptions) {
    this.#options = options;
  }

  /** How many requests wait for a {@link next} call. */
  get queued(): number {
    return this.#queue.length;
  }

  /** One socket per target, in this order (the index is the target's place here). */
  connect(targets: readonly SocketTarget[]): SocketGroup {
    return new Group(this, targets, this.#options);
  }

  /**
   * The next request any server sent (the oldest kept one first), or null when `timeoutMs` passes or
   * {@link stopWaiting} is called; {@link REPLACED} when a later wait with `replace` took over.
   */
  next(options: NextOptions = {}): Promise<ServerRequest | null | typeof REPLACED> {
    if (options.replace || options.cancel) {
      for (const waiter of this.#waiters.filter((entry) => entry.replaceable)) this.#end(waiter, REPLACED);
    }
    if (options.cancel) return Promise.resolve(null);
    const request = this.#queue.shift();
    if (request !== undefined) return Promise.resolve(request);
    if (this.#stopped) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter: Waiter = { resolve, replaceable: options.replace === true };
      if (options.timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => this.#end(waiter, null), options.timeoutMs);
      }
      this.#waiters.push(waiter);
    });
  }

  /** Sends the scraper's answer to the server that asked, with the server's own id. */
  respond(answer: ServerAnswer): void {
    const asked = this.#asked.get(answer.id);
    if (asked === undefined || asked.group !== this.#current) {
      throw new ServerRequestError(
        `no server request has the id ${JSON.stringify(answer.id.slice(0, 80))} ` +
          "(use the id next_server_request answered; each request is answered once)",
      );
    }
    const socket = asked.group.sockets[asked.index];
    const message = JSON.stringify({
      type: answer.type === undefined ? asked.type : answer.type,
      id: asked.originalId,
      data: answer.data ?? null,
    });
    if (!socket.send(message)) {
      throw new ServerRequestError(
        `the websocket to ${socket.origin} is not connected (it reconnects by itself); the answer was not sent`,
      );
    }
    this.#asked.delete(answer.id);
  }

  /** Ends every wait with null, now and from now on (end of input, SIGTERM, the scraper exited). */
  stopWaiting(): void {
    this.#stopped = true;
    for (const waiter of [...this.#waiters]) this.#end(waiter, null);
  }

  /** @internal A group starts: it becomes the one whose requests are served; older requests are dropped. */
  activate(group: Group): void {
    if (this.#current === group) return;
    this.#current = group;
    this.#queue.length = 0;
    this.#asked.clear();
  }

  /** @internal A group closed. */
  deactivate(group: Group): void {
    if (this.#current !== group) return;
    this.#current = null;
    this.#queue.length = 0;
    this.#asked.clear();
  }

  /** @internal A message arrived on socket `index` of `group`. */
  receive(group: Group, index: number, text: string): void {
    if (group !== this.#current) return;
    const origin = group.sockets[index].origin;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.#options.warn(`websocket from ${origin}: ignored a message that is not JSON`);
      return;
    }
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      this.#options.warn(`websocket from ${origin}: ignored a message that is not a JSON object`);
      return;
    }
    const { type, id, data } = message as Record<string, unknown>;
    if (typeof id !== "string" && typeof id !== "number") {
      this.#options.warn(`websocket from ${origin}: ignored a message without a string or number id`);
      return;
    }
    const request: ServerRequest = { type: type ?? null, id: `${index}-${id}`, data: data ?? null };
    this.#asked.delete(request.id); // a repeated id moves to the end
    this.#asked.set(request.id, { group, index, originalId: id, type: request.type });
    if (this.#asked.size > MAX_REMEMBERED_IDS) this.#asked.delete(this.#asked.keys().next().value!);
    const waiter = this.#waiters[0];
    if (waiter !== undefined) {
      this.#end(waiter, request);
      return;
    }
    this.#queue.push(request);
    const max = this.#options.maxQueued ?? 1000;
    if (this.#queue.length > max) {
      const dropped = this.#queue.shift()!;
      this.#asked.delete(dropped.id);
      this.#options.warn(
        `dropped server request ${dropped.id}: more than ${max} requests wait for next_server_request`,
      );
    }
  }

  #end(waiter: Waiter, result: ServerRequest | null | typeof REPLACED): void {
    const at = this.#waiters.indexOf(waiter);
    if (at === -1) return;
    this.#waiters.splice(at, 1);
    clearTimeout(waiter.timer);
    waiter.resolve(result);
  }
}

/** The sockets of one live session. */
class Group implements SocketGroup {
  readonly sockets: readonly ServerSocket[];
  readonly #hub: ServerRequests;

  constructor(hub: ServerRequests, targets: readonly SocketTarget[], options: ServerRequestsOptions) {
    this.#hub = hub;
    this.sockets = targets.map((target, index) =>
      new ServerSocket(target, {
        ...options.socket,
        log: options.log,
        warn: options.warn,
        onMessage: (text) => this.#hub.receive(this, index, text),
      })
    );
  }

  start(): void {
    this.#hub.activate(this);
    for (const socket of this.sockets) socket.start();
  }

  async close(): Promise<void> {
    this.#hub.deactivate(this);
    await Promise.all(this.sockets.map((socket) => socket.close()));
  }
}
