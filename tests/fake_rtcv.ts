/**
 * A fake RT-CV server for tests, on `Deno.serve` at 127.0.0.1 and a free port.
 *
 * It checks the Authorization header like RT-CV (`Basic <24 hex id>:<sha512 hex of the key>`, 159 characters),
 * answers the routes the scraper client uses, logs every request, and has switches to make it slow, fail,
 * hang, drop connections or lack routes. Switches are plain mutable properties, read on every request.
 *
 * @example
 * ```ts ignore
 * const rtcv = await startFakeRtcv();
 * rtcv.failNext(2, 503);                     // the next two requests get 503
 * rtcv.missingRoutes.add("/api/v1/scraper/scannedReferenceNrs");
 * rtcv.hasMatches = (cv) => cv.referenceNumber === "match-me";
 * // ... point the client at rtcv.url ...
 * await rtcv.close();
 * ```
 *
 * @module
 */

/** An api key the fake accepts. */
export interface FakeRtcvKey {
  /** 24 hex characters. */
  apiKeyId: string;
  /** The key; the fake compares the SHA-512 of it with the header. */
  apiKey: string;
  /** Role numbers; 1 is "scraper" (needed for `/api/v1/scraper/...`). */
  roles: number[];
}

/** One request the fake received, in arrival order. */
export interface FakeRtcvRequest {
  /** HTTP method. */
  method: string;
  /** The path as sent, still percent-encoded (e.g. `/api/v1/secrets/myKey/a%2Fb/k`). */
  path: string;
  /** The JSON body, or the raw text when it is not JSON; absent when empty. */
  body?: unknown;
  /** The Authorization header, or null. */
  authorization: string | null;
  /** The Content-Type header, or null. */
  contentType: string | null;
  /** Arrival time, `Date.now()`. */
  at: number;
}

/** One document scanCVDocument accepted. */
export interface FakeRtcvDocument {
  /** The `metadata` part, parsed (the CV). */
  metadata: Record<string, unknown>;
  /** The `cv` part's file name. */
  filename: string;
  /** The `cv` part's content type. */
  contentType: string;
  /** The `cv` part's bytes. */
  bytes: Uint8Array;
}

/** A queued failure; see {@linkcode FakeRtcv.failNext}. */
export interface FakeRtcvFailure {
  /** Requests left to fail (may be `Infinity`). */
  remaining: number;
  /** The status to answer. */
  status: number;
  /** A string is sent as is (text/plain, for non-JSON bodies); anything else as JSON. */
  body: unknown;
  /** Only requests whose path starts with this prefix fail; undefined means every route. */
  route?: string;
  /** A `Retry-After` header value for this failure (overrides {@linkcode FakeRtcv.retryAfter}). */
  retryAfter?: string;
}

/** Options of {@linkcode startFakeRtcv}; all of them can also be changed later on the returned object. */
export interface FakeRtcvOptions {
  /** Accepted keys; default one key, {@linkcode DEFAULT_FAKE_KEY}, with role 1. */
  keys?: FakeRtcvKey[];
  /** What `scannedReferenceNrs/since/...` answers; default `[]`. */
  scannedReferenceNrs?: string[];
  /** Secrets by `"<key>|<encryptionKey>"`; default none. */
  secrets?: Map<string, unknown>;
  /** What scanCV answers as `hasMatches`; default false. */
  hasMatches?: boolean | ((cv: Record<string, unknown>) => boolean);
  /** Delay before answering each request; default 0. */
  latencyMs?: number;
  /** Path prefixes that answer 404 as if the route did not exist. */
  missingRoutes?: Iterable<string>;
  /**
   * The port to listen on; default 0 (a free port). Give the port of a fake that was closed to "restart" the
   * same server (same URL) in a test.
   */
  port?: number;
}

/** The key the fake accepts when no keys are given: role 1 (scraper). */
export const DEFAULT_FAKE_KEY: Readonly<FakeRtcvKey> = Object.freeze({
  apiKeyId: "111111111111111111111111",
  apiKey: "fake-rtcv-api-key-0123456789",
  roles: [1],
});

const ROLE_SLUGS: Record<number, string> = { 1: "scraper", 2: "information_obtainer", 4: "controller" };

/** Lower-case hex SHA-512 of `text`. */
export async function sha512Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-512", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The Authorization header RT-CV expects for a key: `Basic <id>:<sha512 hex of key>`. */
export async function rtcvAuthHeader(apiKeyId: string, apiKey: string): Promise<string> {
  return `Basic ${apiKeyId}:${await sha512Hex(apiKey)}`;
}

/**
 * The URL of a server that is gone: starts a server on a free port, shuts it down and returns its URL, so
 * connecting there is refused at once.
 */
export async function unreachableRtcvUrl(): Promise<string> {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => new Response(null));
  const url = `http://127.0.0.1:${server.addr.port}`;
  await server.shutdown();
  return url;
}

/** Starts a fake RT-CV; `close()` it at the end of the test. */
export async function startFakeRtcv(options: FakeRtcvOptions = {}): Promise<FakeRtcv> {
  return await Promise.resolve(new FakeRtcv(options));
}

/** A running fake RT-CV; see the module doc. Create it with {@linkcode startFakeRtcv}. */
export class FakeRtcv {
  /** `http://127.0.0.1:<port>`: what to use as server_location. */
  readonly url: string;
  /** Same as {@linkcode FakeRtcv.url} (the fake has no path prefix). */
  readonly origin: string;
  /** The port it listens on. */
  readonly port: number;
  /** Every request received, in order (also the failed, hung and reset ones). */
  readonly requests: FakeRtcvRequest[] = [];
  /** The CVs that scanCV accepted, in order. */
  readonly receivedCvs: Record<string, unknown>[] = [];
  /** The documents that scanCVDocument accepted, in order (multipart parts `metadata` and `cv`). */
  readonly receivedDocuments: FakeRtcvDocument[] = [];
  /** Accepted keys. */
  keys: FakeRtcvKey[];
  /** Delay before each answer, in ms. */
  latencyMs: number;
  /** When true, requests get no answer until the server is closed. */
  hang = false;
  /**
   * When true, requests are answered with a 200 status line and then the connection is dropped mid-body.
   * (Deno.serve offers no way to drop a connection before the status line; for a client this is a network
   * error while reading the answer all the same.)
   */
  resetConnections = false;
  /** Path prefixes that answer 404 `{"error":"route not found"}`, e.g. the scannedReferenceNrs route. */
  missingRoutes: Set<string>;
  /** What scanCV answers as `hasMatches`: a constant or a function of the CV. */
  hasMatches: boolean | ((cv: Record<string, unknown>) => boolean);
  /** What `scannedReferenceNrs/since/...` answers. */
  scannedReferenceNrs: string[];
  /**
   * Secrets by `"<key>|<encryptionKey>"` (see {@linkcode FakeRtcv.setSecret}). A known key with another
   * encryption key answers 400 `invalid encryption key`; an unknown key 404 `secret not found`.
   */
  secrets: Map<string, unknown>;
  /** A `Retry-After` header value added to every failure answer (from failNext), or null. */
  retryAfter: string | null = null;
  /** Failures still queued, first match wins. */
  readonly failures: FakeRtcvFailure[] = [];
  /** Answers `/api/v1/scraper/ws` when set (see `tests/fake_rtcv_socket.ts`); null: no such route. */
  onWebSocket: ((request: Request) => Promise<Response>) | null = null;

  #server: Deno.HttpServer<Deno.NetAddr>;
  #closing = Promise.withResolvers<void>();
  #closed: Promise<void> | null = null;

  /** Use {@linkcode startFakeRtcv}. */
  constructor(options: FakeRtcvOptions = {}) {
    this.keys = options.keys ?? [{ ...DEFAULT_FAKE_KEY, roles: [...DEFAULT_FAKE_KEY.roles] }];
    this.latencyMs = options.latencyMs ?? 0;
    this.missingRoutes = new Set(options.missingRoutes ?? []);
    this.hasMatches = options.hasMatches ?? false;
    this.scannedReferenceNrs = options.scannedReferenceNrs ?? [];
    this.secrets = options.secrets ?? new Map();
    this.#server = Deno.serve({
      port: options.port ?? 0,
      hostname: "127.0.0.1",
      onListen() {},
      // A dropped connection (resetConnections) lands here; answer nothing and log nothing.
      onError: () => new Response(null, { status: 500 }),
    }, (request) => this.#handle(request));
    this.port = this.#server.addr.port;
    this.url = `http://127.0.0.1:${this.port}`;
    this.origin = this.url;
  }

  /**
   * Makes the next `n` requests (to paths starting with `options.route`, if given) answer `status` with
   * `body` (default `{"error":"fake failure <status>"}`; a string is sent as non-JSON text). `n` may be
   * `Infinity` for a lasting failure; {@linkcode FakeRtcv.clearFailures} removes them.
   */
  failNext(
    n: number,
    status: number,
    body?: unknown,
    options: { route?: string; retryAfter?: string } = {},
  ): void {
    this.failures.push({
      remaining: n,
      status,
      body: body === undefined ? { error: `fake failure ${status}` } : body,
      route: options.route,
      retryAfter: options.retryAfter,
    });
  }

  /** Drops all queued failures. */
  clearFailures(): void {
    this.failures.length = 0;
  }

  /** Stores a secret that `GET /api/v1/secrets/myKey/<key>/<encryptionKey>` returns. */
  setSecret(key: string, encryptionKey: string, value: unknown): void {
    this.secrets.set(`${key}|${encryptionKey}`, value);
  }

  /** The requests whose path starts with `prefix`. */
  requestsTo(prefix: string): FakeRtcvRequest[] {
    return this.requests.filter((request) => request.path.startsWith(prefix));
  }

  /** The `set_credentials` content for key `index` (default the first): `{server_location, api_key_id, api_key}`. */
  wireCredentials(index = 0): { server_location: string; api_key_id: string; api_key: string } {
    const key = this.keys[index];
    return { server_location: this.url, api_key_id: key.apiKeyId, api_key: key.apiKey };
  }

  /** The same as {@linkcode FakeRtcv.wireCredentials} in the camelCase form of `RtcvCredentials`. */
  credentials(index = 0): { serverLocation: string; apiKeyId: string; apiKey: string } {
    const key = this.keys[index];
    return { serverLocation: this.url, apiKeyId: key.apiKeyId, apiKey: key.apiKey };
  }

  /** Releases hung and delayed requests and stops the server; safe to call more than once. */
  close(): Promise<void> {
    if (this.#closed === null) {
      this.#closing.resolve();
      this.#closed = this.#server.shutdown();
    }
    return this.#closed;
  }

  /** Same as {@linkcode FakeRtcv.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path === "/api/v1/scraper/ws" && this.onWebSocket !== null) return await this.onWebSocket(request);
    const bytes = new Uint8Array(await request.arrayBuffer());
    const text = new TextDecoder().decode(bytes);
    const body = text === "" ? undefined : parseJsonOr(text, text);
    this.requests.push({
      method: request.method,
      path,
      ...(body === undefined ? {} : { body }),
      authorization: request.headers.get("authorization"),
      contentType: request.headers.get("content-type"),
      at: Date.now(),
    });

    if (this.latencyMs > 0) await this.#wait(this.latencyMs);
    if (this.hang) {
      await this.#closing.promise;
      return json(503, { error: "fake RT-CV is shutting down" });
    }
    if (this.resetConnections) {
      return new Response(
        new ReadableStream({
          pull(controller) {
            controller.error(new Error("fake RT-CV dropped the connection"));
          },
        }),
        { status: 200, headers: { "content-type": "application/json" } },
      );
    }

    const failure = this.failures.find((entry) => entry.remaining > 0 && path.startsWith(entry.route ?? ""));
    if (failure) {
      failure.remaining--;
      if (failure.remaining <= 0) this.failures.splice(this.failures.indexOf(failure), 1);
      const headers: Record<string, string> = {};
      const retryAfter = failure.retryAfter ?? this.retryAfter;
      if (retryAfter !== null && retryAfter !== undefined) headers["retry-after"] = retryAfter;
      if (typeof failure.body === "string") {
        return new Response(failure.body, {
          status: failure.status,
          headers: { ...headers, "content-type": "text/plain" },
        });
      }
      return json(failure.status, failure.body, headers);
    }

    for (const prefix of this.missingRoutes) {
      if (path.startsWith(prefix)) return json(404, { error: "route not found" });
    }

    if (path === "/api/v1/scraper/scanCVDocument") return await this.#scanDocument(request, bytes);
    return await this.#route(request.method, path, body, request.headers.get("authorization"));
  }

  async #route(method: string, path: string, body: unknown, authorization: string | null): Promise<Response> {
    if (path === "/api/v1/health") {
      if (method !== "GET") return json(405, { error: "method not allowed" });
      return json(200, { status: true, appVersion: "fake-rtcv" });
    }

    const auth = await this.#authenticate(authorization);
    if (typeof auth === "string") return json(401, { error: auth });

    if (path === "/api/v1/auth/keyinfo") {
      if (method !== "GET") return json(405, { error: "method not allowed" });
      return json(200, {
        id: auth.apiKeyId,
        enabled: true,
        domains: ["*"],
        roles: auth.roles.map((role) => ({
          role,
          slug: ROLE_SLUGS[role] ?? `role_${role}`,
          description: "",
        })),
      });
    }

    if (path.startsWith("/api/v1/scraper/")) {
      if (!auth.roles.includes(1)) {
        return json(401, { error: "you do not have the permissions to access this route" });
      }
      if (path === "/api/v1/scraper/scanCV") {
        if (method !== "POST") return json(405, { error: "method not allowed" });
        const cv = isRecord(body) ? body.cv : undefined;
        if (!isRecord(cv)) return json(400, { error: 'invalid body, expected {"cv": {...}}' });
        if (typeof cv.referenceNumber !== "string" || cv.referenceNumber === "") {
          return json(400, { error: "invalid referenceNumber" });
        }
        this.receivedCvs.push(cv);
        const hasMatches = typeof this.hasMatches === "function" ? this.hasMatches(cv) : this.hasMatches;
        return json(200, { success: true, hasMatches, matches: [] });
      }
      const since = /^\/api\/v1\/scraper\/scannedReferenceNrs\/since\/(days|hours|weeks)\/(\d+)$/.exec(path);
      if (since) {
        if (method !== "GET") return json(405, { error: "method not allowed" });
        return json(200, this.scannedReferenceNrs);
      }
    }

    const secret = /^\/api\/v1\/secrets\/myKey\/([^/]+)\/([^/]+)$/.exec(path);
    if (secret) {
      if (method !== "GET") return json(405, { error: "method not allowed" });
      const key = decodeURIComponent(secret[1]);
      const encryptionKey = decodeURIComponent(secret[2]);
      const id = `${key}|${encryptionKey}`;
      if (this.secrets.has(id)) return json(200, this.secrets.get(id));
      for (const known of this.secrets.keys()) {
        if (known.startsWith(`${key}|`)) return json(400, { error: "invalid encryption key" });
      }
      return json(404, { error: "secret not found" });
    }

    return json(404, { error: "route not found" });
  }

  /** `POST /api/v1/scraper/scanCVDocument`: multipart, a part `metadata` (the CV JSON) and a part `cv` (the file). */
  async #scanDocument(request: Request, bytes: Uint8Array): Promise<Response> {
    const auth = await this.#authenticate(request.headers.get("authorization"));
    if (typeof auth === "string") return json(401, { error: auth });
    if (!auth.roles.includes(1)) {
      return json(403, { error: "you do not have the permissions to access this route" });
    }
    if (request.method !== "POST") return json(500, { error: "Method Not Allowed" });
    let form: FormData;
    try {
      form = await new Response(bytes as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": request.headers.get("content-type") ?? "" },
      }).formData();
    } catch {
      return json(500, { error: "request Content-Type isn't multipart/form-data" });
    }
    const metadata = form.get("metadata");
    const file = form.get("cv");
    if (typeof metadata !== "string" || !(file instanceof File)) {
      return json(400, { error: "expected the parts metadata (a value) and cv (a file)" });
    }
    const cv = parseJsonOr(metadata, null);
    if (!isRecord(cv)) return json(500, { error: "invalid metadata" });
    if (typeof cv.referenceNumber !== "string" || cv.referenceNumber === "") {
      return json(400, { error: "referenceNumber must be set" });
    }
    this.receivedDocuments.push({
      metadata: cv,
      filename: file.name,
      contentType: file.type,
      bytes: new Uint8Array(await file.arrayBuffer()),
    });
    const hasMatches = typeof this.hasMatches === "function" ? this.hasMatches(cv) : this.hasMatches;
    return json(200, { success: true, hasMatches });
  }

  async #authenticate(header: string | null): Promise<FakeRtcvKey | string> {
    if (header === null || header === "") return "missing authorization header of type Basic";
    if (!header.startsWith("Basic ")) return "authorization must be of type Basic";
    if (header.length !== 159) return "invalid authorization header, expected 159 characters";
    const [id, hash] = header.slice("Basic ".length).split(":");
    if (!/^[0-9a-f]{24}$/i.test(id ?? "")) return "invalid key id";
    for (const key of this.keys) {
      if (key.apiKeyId === id && await sha512Hex(key.apiKey) === hash) return key;
    }
    return "invalid key";
  }

  async #wait(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
      this.#closing.promise,
    ]);
    clearTimeout(timer);
  }
}

function json(status: number, value: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { ...headers, "content-type": "application/json" },
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseJsonOr(text: string, fallback: unknown): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return fallback;
  }
}
