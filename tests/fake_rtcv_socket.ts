/**
 * Test helper: the scraper websocket of a fake RT-CV (`GET /api/v1/scraper/ws`, upgraded with
 * `Deno.upgradeWebSocket`), so tests can push requests `{type, id, data}` to the client and see its answers.
 *
 * {@linkcode acceptWebSockets} plugs it into a {@linkcode FakeRtcv} through the fake's `onWebSocket` hook.
 * The upgrade is authenticated like the HTTP routes: a wrong or missing Authorization header gets 401.
 *
 * @module
 */

import { type FakeRtcv, rtcvAuthHeader } from "./fake_rtcv.ts";

/** One upgrade request the fake received. */
export interface SocketUpgrade {
  /** The Authorization header, or null. */
  readonly authorization: string | null;
  /** Whether it was accepted (a valid key). */
  readonly accepted: boolean;
}

/** The websocket side of a fake RT-CV; build it with {@linkcode acceptWebSockets}. */
export class FakeRtcvSockets implements AsyncDisposable {
  /** Every upgrade request, in order. */
  readonly upgrades: SocketUpgrade[] = [];
  /** Every message the client sent, parsed, in order. */
  readonly received: unknown[] = [];
  /** When false, upgrades are refused with 503 (a server whose socket is down). */
  accepting = true;
  readonly #fake: FakeRtcv;
  readonly #open = new Set<WebSocket>();
  #changed = Promise.withResolvers<void>();

  /** Use {@linkcode acceptWebSockets}. */
  constructor(fake: FakeRtcv) {
    this.#fake = fake;
  }

  /** How many sockets are open now. */
  get openCount(): number {
    return this.#open.size;
  }

  /** Sends a message to every open socket (an object is sent as JSON, a string as it is). */
  push(message: unknown): void {
    const text = typeof message === "string" ? message : JSON.stringify(message);
    for (const socket of this.#open) socket.send(text);
  }

  /** Closes every open socket from the server side (the client should reconnect). */
  dropAll(): void {
    for (const socket of this.#open) socket.close(1012, "fake RT-CV restarts");
  }

  /** Waits until `check()` is true (checked at every change), or fails after `timeoutMs`. */
  async waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fake RT-CV ${this.#fake.url}: timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#changed.promise,
        new Promise((resolve) => timer = setTimeout(resolve, left)),
      ]);
      clearTimeout(timer);
    }
  }

  /** Waits until `count` sockets are open. */
  waitForOpen(count = 1, timeoutMs?: number): Promise<void> {
    return this.waitFor(() => this.#open.size >= count, `${count} open websocket(s)`, timeoutMs);
  }

  /** Waits until the client sent `count` messages in all. */
  waitForReceived(count: number, timeoutMs?: number): Promise<void> {
    return this.waitFor(
      () => this.received.length >= count,
      `${count} message(s) from the client`,
      timeoutMs,
    );
  }

  /** Closes every socket (at the end of a test). */
  closeAll(): void {
    for (const socket of this.#open) socket.close();
    this.#open.clear();
  }

  /** Same as {@linkcode FakeRtcvSockets.closeAll}, for `await using` (declare it after the fake). */
  [Symbol.asyncDispose](): Promise<void> {
    this.closeAll();
    return Promise.resolve();
  }

  /** Handles `GET /api/v1/scraper/ws`. */
  async handle(request: Request): Promise<Response> {
    const authorization = request.headers.get("authorization");
    const valid = await this.#validKey(authorization);
    this.upgrades.push({ authorization, accepted: valid && this.accepting });
    this.#notify();
    if (!valid) return Response.json({ error: "auth header is invalid" }, { status: 401 });
    if (!this.accepting) return Response.json({ error: "websocket is down" }, { status: 503 });
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ error: "expected a websocket upgrade" }, { status: 400 });
    }
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => {
      this.#open.add(socket);
      this.#notify();
    };
    socket.onmessage = (event) => {
      try {
        this.received.push(JSON.parse(String(event.data)));
      } catch {
        this.received.push(String(event.data));
      }
      this.#notify();
    };
    socket.onclose = () => {
      this.#open.delete(socket);
      this.#notify();
    };
    socket.onerror = () => {};
    return response;
  }

  async #validKey(header: string | null): Promise<boolean> {
    for (const key of this.#fake.keys) {
      if (header === await rtcvAuthHeader(key.apiKeyId, key.apiKey)) return true;
    }
    return false;
  }

  #notify(): void {
    const changed = this.#changed;
    this.#changed = Promise.withResolvers<void>();
    changed.resolve();
  }
}

/** Makes `fake` accept websocket upgrades at `/api/v1/scraper/ws`; returns the socket side. */
export function acceptWebSockets(fake: FakeRtcv): FakeRtcvSockets {
  const sockets = new FakeRtcvSockets(fake);
  fake.onWebSocket = (request) => sockets.handle(request);
  return sockets;
}
