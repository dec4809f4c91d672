/**
 * A fake RT-CV server for tests, on `Deno.serve` at 127.0.0.1 and a free port. It behaves like the real
 * server as `/work/shared/RTCV_FACTS.md` describes it (observed on the public RT-CV builds):
 *
 * - Two variants ({@linkcode FakeRtcv.variant}): `"older"` (the last build with the
 *   `scannedReferenceNrs` and secrets routes) and `"newest"` (no such routes; `scraperUsers` and `allCVs`).
 *   `scanCVDocument` (multipart) is served by both: it is newer than either public build.
 * - Unknown and removed routes answer 500 `{"error":"Cannot GET /api/..."}` before any auth check; a known
 *   path with the wrong method 500 `Method Not Allowed`; a body over 4 MiB 500 `Request Entity Too Large`.
 * - Auth: `Basic <24 hex id>:<sha512 hex of the key>` (159 characters, hex in any case) or the raw key
 *   (63 characters for a 32-character key). Missing header 400, wrong key 401 `auth header is invalid`,
 *   a bad id 400 `auth header has invalid format...`, another length 400 `invalid length`, a missing role 403.
 * - Bodies: no `Content-Type: application/json` is 500 `Unprocessable Entity`; what does not decode into
 *   RT-CV's types (invalid JSON, a date without time, a number for a string, `cv: []`, an invalid phone
 *   number or drivers licence) is 500 with Go's message; the CV's own checks are 400
 *   (`referenceNumber must be set`, dates in the future, a date of birth less than 13 years ago, language
 *   levels outside 0-3).
 * - scanCV answers `{"success":true,"hasMatches":bool}` (no `matches`); secrets belong to the key that
 *   stored them and the path segments are taken as sent (not percent-decoded); scraperUsers seals every
 *   password for real (32 random bytes in front, then an anonymous sealed box to the scraper's public key).
 *
 * It logs every request and has switches to make it slow, fail, hang, drop connections or lack routes.
 * Switches are plain mutable properties, read on every request.
 *
 * @example
 * ```ts ignore
 * for (const variant of FAKE_RTCV_VARIANTS) {
 *   await using rtcv = await startFakeRtcv({ variant });
 *   rtcv.failNext(2, 503);                     // the next two requests get 503
 *   rtcv.hasMatches = (cv) => cv.referenceNumber === "match-me";
 *   // ... point the client at rtcv.url ...
 * }
 * ```
 *
 * @module
 */

// The fake seals with libsodium's crypto_box_seal (what Go's box.SealAnonymous is compatible with), an
// implementation independent of the client's, so the tests check the client against the real construction.
import sodium from "libsodium-wrappers";

await sodium.ready;

/** Which build of RT-CV the fake plays; see the module doc. */
export type FakeRtcvVariant = "older" | "newest";

/** Both variants, for tests that run against each. */
export const FAKE_RTCV_VARIANTS: readonly FakeRtcvVariant[] = ["older", "newest"];

/** RT-CV's role numbers the fake knows. */
export const ROLES = { scraper: 1, informationObtainer: 2, controller: 4, admin: 8, dashboard: 16 } as const;

/** An api key the fake accepts. */
export interface FakeRtcvKey {
  /** 24 hex characters. */
  apiKeyId: string;
  /** The key; the fake compares the SHA-512 of it with the header (or the key itself, sent raw). */
  apiKey: string;
  /** Role numbers; 1 is "scraper" (needed for `/api/v1/scraper/...`), see {@linkcode ROLES}. */
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

/** A CV document that scanCVDocument accepted. */
export interface FakeRtcvDocument {
  /** The `metadata` part, parsed (the CV). */
  metadata: Record<string, unknown>;
  /** The `cv` part's file name as sent. */
  fileName: string;
  /** The `cv` part's content type as sent. */
  contentType: string;
  /** The `cv` part's bytes. */
  bytes: Uint8Array;
}

/** The login users of one scraper key, as the fake stores them. */
export interface FakeScraperUsers {
  /** The registered public key (base64), or null. */
  publicKey: string | null;
  /** The users, passwords sealed to `publicKey` (base64). */
  users: { username: string; encryptedPassword: string }[];
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
  /** Which build to play; default `"older"`. */
  variant?: FakeRtcvVariant;
  /** Accepted keys; default one key, {@linkcode DEFAULT_FAKE_KEY}, with role 1. */
  keys?: FakeRtcvKey[];
  /** What `scannedReferenceNrs/since/...` answers (older variant); default `[]`. */
  scannedReferenceNrs?: string[];
  /** What scanCV answers as `hasMatches`; default false. */
  hasMatches?: boolean | ((cv: Record<string, unknown>) => boolean);
  /** Delay before answering each request; default 0. */
  latencyMs?: number;
  /** Path prefixes that answer like a removed route: 500 `Cannot GET <path>`, before auth. */
  missingRoutes?: Iterable<string>;
  /** Path prefixes that answer 404 `{"error":"route not found"}` (what some older builds did). */
  notFoundRoutes?: Iterable<string>;
  /** Extra delay in ms before answering requests whose path starts with the key. */
  delayRoutes?: Map<string, number>;
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

const ROLE_SLUGS: Record<number, string> = {
  1: "scraper",
  2: "information_obtainer",
  4: "controller",
  8: "admin",
  16: "dashboard",
};

/** Bodies over this many bytes are refused (RT-CV's body limit is about 4 MiB). */
export const FAKE_RTCV_BODY_LIMIT = 4 * 1024 * 1024;
/** Encryption keys of secrets shorter than this are refused (500), like RT-CV. */
export const MIN_ENCRYPTION_KEY_LENGTH = 16;

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

/** An answer the route handlers throw to stop with an error. */
class Refusal {
  constructor(readonly status: number, readonly message: string) {}
}

/** Which keys a route lets in. */
type Access = "none" | "any" | "scraper" | "manager";

interface RouteContext {
  readonly match: RegExpExecArray;
  readonly key: FakeRtcvKey;
  readonly request: Request;
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly text: string;
}

interface Route {
  readonly pattern: RegExp;
  readonly variants: readonly FakeRtcvVariant[];
  readonly methods: Record<
    string,
    { access: Access; handle: (context: RouteContext) => Promise<Response> | Response }
  >;
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
  /** The lists that allCVs accepted, each as sent (also the CVs the server skips for lack of a zip code). */
  readonly receivedCvLists: Record<string, unknown>[][] = [];
  /** The documents that scanCVDocument accepted, in order. */
  readonly receivedDocuments: FakeRtcvDocument[] = [];
  /** Which build the fake plays: `"older"` (secrets, scannedReferenceNrs) or `"newest"` (scraperUsers, allCVs). */
  variant: FakeRtcvVariant;
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
  /** Path prefixes that answer like a removed route: 500 `{"error":"Cannot GET <path>"}`, before auth. */
  missingRoutes: Set<string>;
  /** Path prefixes that answer 404 `{"error":"route not found"}`. */
  notFoundRoutes: Set<string>;
  /** Extra delay in ms before answering requests whose path starts with the key (e.g. a slow warm-up). */
  delayRoutes: Map<string, number>;
  /** What scanCV (and scanCVDocument) answers as `hasMatches`: a constant or a function of the CV. */
  hasMatches: boolean | ((cv: Record<string, unknown>) => boolean);
  /** What `scannedReferenceNrs/since/...` answers (older variant). */
  scannedReferenceNrs: string[];
  /** A `Retry-After` header value added to every failure answer (from failNext), or null. */
  retryAfter: string | null = null;
  /** Failures still queued, first match wins. */
  readonly failures: FakeRtcvFailure[] = [];
  /** Answers `/api/v1/scraper/ws` when set (see `tests/fake_rtcv_socket.ts`); null: no such route. */
  onWebSocket: ((request: Request) => Promise<Response>) | null = null;
  /** Secrets by owner key id, then by key (as sent in the path): `{encryptionKey, value}`. */
  readonly secrets = new Map<string, Map<string, { encryptionKey: string; value: unknown }>>();
  /** Login users by scraper key id (newest variant's scraperUsers routes). */
  readonly scraperUsers = new Map<string, FakeScraperUsers>();

  #server: Deno.HttpServer<Deno.NetAddr>;
  #closing = Promise.withResolvers<void>();
  #closed: Promise<void> | null = null;
  readonly #routes: Route[];

  /** Use {@linkcode startFakeRtcv}. */
  constructor(options: FakeRtcvOptions = {}) {
    this.variant = options.variant ?? "older";
    this.keys = options.keys ?? [{ ...DEFAULT_FAKE_KEY, roles: [...DEFAULT_FAKE_KEY.roles] }];
    this.latencyMs = options.latencyMs ?? 0;
    this.missingRoutes = new Set(options.missingRoutes ?? []);
    this.notFoundRoutes = new Set(options.notFoundRoutes ?? []);
    this.delayRoutes = new Map(options.delayRoutes ?? []);
    this.hasMatches = options.hasMatches ?? false;
    this.scannedReferenceNrs = options.scannedReferenceNrs ?? [];
    this.#routes = this.#routeTable();
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

  /**
   * Stores a secret of key `ownerKeyId` (default the first key) that
   * `GET /api/v1/secrets/myKey/<key>/<encryptionKey>` returns (older variant). `key` is matched against the
   * path segment exactly as sent. Encryption keys shorter than 16 characters are refused by RT-CV.
   */
  setSecret(key: string, encryptionKey: string, value: unknown, ownerKeyId = this.keys[0].apiKeyId): void {
    let owned = this.secrets.get(ownerKeyId);
    if (owned === undefined) this.secrets.set(ownerKeyId, owned = new Map());
    owned.set(key, { encryptionKey, value });
  }

  /** The login users record of a scraper key (created empty on first use). */
  usersOf(scraperKeyId = this.keys[0].apiKeyId): FakeScraperUsers {
    let record = this.scraperUsers.get(scraperKeyId);
    if (record === undefined) this.scraperUsers.set(scraperKeyId, record = { publicKey: null, users: [] });
    return record;
  }

  /** Sets a scraper's public key as `setPublicKey` does: a different key than before removes every user. */
  setScraperPublicKey(publicKey: string, scraperKeyId = this.keys[0].apiKeyId): void {
    const record = this.usersOf(scraperKeyId);
    if (record.publicKey !== publicKey) record.users = [];
    record.publicKey = publicKey;
  }

  /**
   * Stores a login user as the dashboard does: 32 random bytes, then the UTF-8 password, sealed anonymously to
   * the scraper's public key. Throws when the scraper has no public key yet.
   */
  addLoginUser(username: string, password: string, scraperKeyId = this.keys[0].apiKeyId): void {
    const record = this.usersOf(scraperKeyId);
    if (record.publicKey === null) throw new Error("this scraper has no public key yet");
    const encryptedPassword = sealPassword(password, record.publicKey);
    record.users = [...record.users.filter((user) => user.username !== username), {
      username,
      encryptedPassword,
    }];
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
    for (const [prefix, ms] of this.delayRoutes) if (path.startsWith(prefix)) await this.#wait(ms);
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

    try {
      return await this.#route(request, path, bytes, text);
    } catch (error) {
      if (error instanceof Refusal) return json(error.status, { error: error.message });
      throw error;
    }
  }

  async #route(
    request: Request,
    path: string,
    bytes: Uint8Array<ArrayBuffer>,
    text: string,
  ): Promise<Response> {
    const method = request.method;
    if (bytes.length > FAKE_RTCV_BODY_LIMIT) throw new Refusal(500, "Request Entity Too Large");
    const cannot = new Refusal(500, `Cannot ${method} ${path}`);
    for (const prefix of this.missingRoutes) if (path.startsWith(prefix)) throw cannot;
    for (const prefix of this.notFoundRoutes) {
      if (path.startsWith(prefix)) throw new Refusal(404, "route not found");
    }

    let match: RegExpExecArray | null = null;
    const route = this.#routes.find((candidate) => {
      if (!candidate.variants.includes(this.variant)) return false;
      match = candidate.pattern.exec(path);
      return match !== null;
    });
    if (route === undefined || match === null) throw cannot;
    const handler = route.methods[method];
    if (handler === undefined) throw new Refusal(500, "Method Not Allowed");
    const key = handler.access === "none"
      ? this.keys[0]
      : await this.#authenticate(request.headers.get("authorization"), handler.access);
    return await handler.handle({ match, key, request, bytes, text });
  }

  #routeTable(): Route[] {
    const both: FakeRtcvVariant[] = ["older", "newest"];
    return [
      {
        pattern: /^\/api\/v1\/health$/,
        variants: both,
        methods: {
          GET: { access: "none", handle: () => json(200, { status: true, appVersion: "fake-rtcv" }) },
        },
      },
      {
        pattern: /^\/api\/v1\/auth\/keyinfo\/?$/,
        variants: both,
        methods: {
          GET: {
            access: "any",
            handle: ({ key }) =>
              json(200, {
                id: key.apiKeyId,
                name: `fake key ${key.apiKeyId}`,
                domains: ["*"],
                roles: key.roles.map((role) => ({
                  role,
                  slug: ROLE_SLUGS[role] ?? `role_${role}`,
                  description: "",
                })),
                system: false,
              }),
          },
        },
      },
      {
        pattern: /^\/api\/v1\/scraper\/scanCV$/,
        variants: both,
        methods: {
          POST: {
            access: "scraper",
            handle: (context) => {
              const body = decodeJsonBody(context);
              if (!isRecord(body)) throw new Refusal(500, goTypeError(body, "", "routes.ScanCVBody"));
              const cv = decodeCv(body.cv, "cv");
              validateCv(cv);
              this.receivedCvs.push(cv);
              return json(200, { success: true, hasMatches: this.#matches(cv) });
            },
          },
        },
      },
      {
        pattern: /^\/api\/v1\/scraper\/scanCVDocument$/,
        variants: both,
        methods: { POST: { access: "scraper", handle: (context) => this.#scanDocument(context) } },
      },
      {
        pattern: /^\/api\/v1\/scraper\/allCVs$/,
        variants: ["newest"],
        methods: {
          POST: {
            access: "scraper",
            handle: (context) => {
              const body = decodeJsonBody(context);
              if (!isRecord(body)) throw new Refusal(500, goTypeError(body, "", "routes.AllCVsBody"));
              if (body.cvs !== undefined && body.cvs !== null && !Array.isArray(body.cvs)) {
                throw new Refusal(500, goTypeError(body.cvs, "cvs", "[]models.CV"));
              }
              const list = (body.cvs ?? []) as unknown[];
              const cvs = list.map((entry, index) => decodeCv(entry, `cvs[${index}]`));
              if (cvs.length === 0) throw new Refusal(400, "cvs must contain at least one CV");
              cvs.forEach(validateCv);
              this.receivedCvLists.push(cvs);
              return json(200, {});
            },
          },
        },
      },
      {
        pattern: /^\/api\/v1\/scraper\/scannedReferenceNrs\/since\/(days|hours|weeks)\/(\d+)$/,
        variants: ["older"],
        methods: { GET: { access: "scraper", handle: () => json(200, this.scannedReferenceNrs) } },
      },
      {
        pattern: /^\/api\/v1\/secrets\/myKey\/([^/]+)\/([^/]+)$/,
        variants: ["older"],
        methods: {
          GET: {
            access: "any",
            handle: ({ match, key }) => {
              // Path segments are used as sent: RT-CV does not percent-decode them.
              const secret = this.secrets.get(key.apiKeyId)?.get(match[1]);
              if (secret === undefined) throw new Refusal(404, "item not found");
              if (match[2].length < MIN_ENCRYPTION_KEY_LENGTH) {
                throw new Refusal(
                  500,
                  `encryption key must be at least ${MIN_ENCRYPTION_KEY_LENGTH} characters`,
                );
              }
              if (secret.encryptionKey !== match[2]) {
                throw new Refusal(500, "cipher: message authentication failed");
              }
              return json(200, secret.value);
            },
          },
        },
      },
      {
        pattern: /^\/api\/v1\/scraperUsers\/([^/]+)\/setPublicKey$/,
        variants: ["newest"],
        methods: {
          PATCH: {
            access: "any",
            handle: (context) => {
              const body = decodeJsonBody(context);
              if (!isRecord(body)) throw new Refusal(500, goTypeError(body, "", "routes.SetPublicKeyBody"));
              if (typeof body.publicKey !== "string") {
                throw new Refusal(500, goTypeError(body.publicKey, "publicKey", "string"));
              }
              const decoded = fromBase64(body.publicKey);
              if (body.publicKey.length !== 44 || decoded === null || decoded.length !== 32) {
                throw new Refusal(400, "publicKey must be 32 bytes encoded as base64");
              }
              this.setScraperPublicKey(body.publicKey, context.match[1]);
              return json(200, this.#scraperUsersAnswer(context.match[1], context.key));
            },
          },
        },
      },
      {
        pattern: /^\/api\/v1\/scraperUsers\/([^/]+)$/,
        variants: ["newest"],
        methods: {
          GET: {
            access: "any",
            handle: ({ match, key }) => json(200, this.#scraperUsersAnswer(match[1], key)),
          },
          PATCH: {
            access: "manager",
            handle: (context) => {
              const body = decodeJsonBody(context);
              if (!isRecord(body)) throw new Refusal(500, goTypeError(body, "", "routes.AddUserBody"));
              for (const field of ["username", "password"]) {
                if (typeof body[field] !== "string") {
                  throw new Refusal(500, goTypeError(body[field], field, "string"));
                }
              }
              const id = context.match[1];
              if (this.scraperUsers.get(id)?.publicKey == null) {
                throw new Refusal(400, "this scraper has no public key yet, set one before adding users");
              }
              this.addLoginUser(body.username as string, body.password as string, id);
              return json(200, this.#scraperUsersAnswer(id, context.key));
            },
          },
        },
      },
    ];
  }

  #scraperUsersAnswer(scraperKeyId: string, caller: FakeRtcvKey): Record<string, unknown> {
    const record = this.scraperUsers.get(scraperKeyId);
    const withPasswords = caller.roles.includes(ROLES.scraper);
    return {
      id: record ? `users-of-${scraperKeyId}` : null,
      scraperId: scraperKeyId,
      scraperPubKey: record?.publicKey ?? null,
      users: (record?.users ?? []).map((user) => withPasswords ? { ...user } : { username: user.username }),
    };
  }

  async #scanDocument(context: RouteContext): Promise<Response> {
    const type = context.request.headers.get("content-type") ?? "";
    if (!type.toLowerCase().startsWith("multipart/form-data")) throw new Refusal(500, "Unprocessable Entity");
    let form: FormData;
    try {
      form = await new Request("http://fake/", {
        method: "POST",
        headers: { "content-type": type },
        body: context.bytes,
      }).formData();
    } catch (error) {
      throw new Refusal(500, `multipart: ${error instanceof Error ? error.message : error}`);
    }
    const metadata = form.get("metadata");
    const file = form.get("cv");
    if (metadata === null) throw new Refusal(400, "metadata part is missing");
    if (!(file instanceof File)) throw new Refusal(400, "cv file part is missing");
    const metadataText = typeof metadata === "string" ? metadata : await metadata.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(metadataText);
    } catch (error) {
      throw new Refusal(500, goJsonSyntaxError(error, metadataText));
    }
    const cv = decodeCv(parsed, "metadata");
    validateCv(cv);
    this.receivedDocuments.push({
      metadata: cv,
      fileName: file.name,
      contentType: file.type,
      bytes: new Uint8Array(await file.arrayBuffer()),
    });
    return json(200, { success: true, hasMatches: this.#matches(cv) });
  }

  #matches(cv: Record<string, unknown>): boolean {
    return typeof this.hasMatches === "function" ? this.hasMatches(cv) : this.hasMatches;
  }

  async #authenticate(header: string | null, access: Access): Promise<FakeRtcvKey> {
    if (header === null || header === "") throw new Refusal(400, "missing authorization header");
    if (header.length !== 159 && header.length !== 63) throw new Refusal(400, "invalid length");
    if (!header.startsWith("Basic ")) throw new Refusal(401, "auth header is invalid");
    const rest = header.slice("Basic ".length);
    const colon = rest.indexOf(":");
    const id = rest.slice(0, colon);
    const secret = rest.slice(colon + 1);
    if (colon !== 24 || !/^[0-9a-fA-F]{24}$/.test(id)) {
      throw new Refusal(400, "auth header has invalid format, expected Basic <key id>:<sha512 of key>");
    }
    let found: FakeRtcvKey | undefined;
    for (const key of this.keys) {
      if (key.apiKeyId !== id) continue;
      const matches = header.length === 159
        ? secret.toLowerCase() === await sha512Hex(key.apiKey)
        : secret === key.apiKey;
      if (matches) found = key;
    }
    if (found === undefined) throw new Refusal(401, "auth header is invalid");
    const allowed = access === "any" ||
      (access === "scraper" && found.roles.includes(ROLES.scraper)) ||
      (access === "manager" &&
        found.roles.some((role) =>
          role === ROLES.admin || role === ROLES.dashboard || role === ROLES.controller
        ));
    if (!allowed) throw new Refusal(403, "your key does not have the role this route requires");
    return found;
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

/** A password as RT-CV stores it: base64 of a sealed box of 32 random bytes followed by the password. */
export function sealPassword(password: string, publicKeyBase64: string): string {
  const publicKey = fromBase64(publicKeyBase64);
  if (publicKey === null || publicKey.length !== 32) {
    throw new Error("the public key is not base64 of 32 bytes");
  }
  const text = new TextEncoder().encode(password);
  const plain = new Uint8Array(32 + text.length);
  plain.set(crypto.getRandomValues(new Uint8Array(32)), 0);
  plain.set(text, 32);
  return sodium.to_base64(sodium.crypto_box_seal(plain, publicKey), sodium.base64_variants.ORIGINAL);
}

// ---------------------------------------------------------------------------------------------------------
// Decoding like RT-CV: Go's encoding/json into its types (errors: 500), then CV.Validate() (errors: 400).

/** The JSON body of a request, or a Refusal: Content-Type must be JSON, the text must parse. */
function decodeJsonBody(context: RouteContext): unknown {
  const type = context.request.headers.get("content-type") ?? "";
  if (!type.toLowerCase().startsWith("application/json")) throw new Refusal(500, "Unprocessable Entity");
  try {
    return JSON.parse(context.text);
  } catch (error) {
    throw new Refusal(500, goJsonSyntaxError(error, context.text));
  }
}

function goJsonSyntaxError(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const position = /position (\d+)/.exec(message);
  const at = position ? Number(position[1]) : -1;
  if (/end of (JSON )?input|Unterminated/i.test(message) || at >= text.trimEnd().length) {
    return "unexpected end of JSON input";
  }
  const token = /token '(.)'/.exec(message)?.[1] ?? (at >= 0 ? text[at] : "?");
  return `invalid character '${token}' looking for beginning of value`;
}

function goKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "object") return "object";
  return typeof value;
}

/** Go's `json: cannot unmarshal <kind> into Go struct field <field> of type <type>`. */
function goTypeError(value: unknown, field: string, type: string): string {
  return field === ""
    ? `json: cannot unmarshal ${goKind(value)} into Go value of type ${type}`
    : `json: cannot unmarshal ${goKind(value)} into Go struct field ${field} of type ${type}`;
}

type FieldType = "string" | "int" | "bool" | "time" | "strings" | { object: Record<string, FieldType> } | {
  list: Record<string, FieldType>;
};

const EDUCATION: Record<string, FieldType> = {
  name: "string",
  description: "string",
  institute: "string",
  isCompleted: "bool",
  hasDiploma: "bool",
  startDate: "time",
  endDate: "time",
};
const WORK_EXPERIENCE: Record<string, FieldType> = {
  description: "string",
  employer: "string",
  function: "string",
  startDate: "time",
  endDate: "time",
  stillEmployed: "bool",
  weeklyHoursWorked: "int",
};
const LANGUAGE: Record<string, FieldType> = { name: "string", levelSpoken: "int", levelWritten: "int" };
const PERSONAL_DETAILS: Record<string, FieldType> = {
  firstName: "string",
  surNamePrefix: "string",
  surName: "string",
  dob: "time",
  gender: "string",
  streetName: "string",
  houseNumber: "string",
  houseNumberSuffix: "string",
  zip: "string",
  city: "string",
  country: "string",
  phoneNumber: "string",
  email: "string",
};
const CV_FIELDS: Record<string, FieldType> = {
  referenceNumber: "string",
  link: "string",
  createdAt: "time",
  lastChanged: "time",
  presentation: "string",
  educations: { list: EDUCATION },
  workExperiences: { list: WORK_EXPERIENCE },
  preferredJobs: "strings",
  languages: { list: LANGUAGE },
  competences: { list: { name: "string", description: "string" } },
  interests: { list: { name: "string", description: "string" } },
  personalDetails: { object: PERSONAL_DETAILS },
  driversLicenses: "strings",
};

/** RFC 3339 with a time, as Go's time.Time decodes it. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const DRIVERS_LICENSES = new Set([
  "AM",
  "A1",
  "A2",
  "A",
  "B",
  "BE",
  "B+",
  "C1",
  "C1E",
  "C",
  "CE",
  "D1",
  "D1E",
  "D",
  "DE",
  "T",
]);

function decodeFields(value: unknown, fields: Record<string, FieldType>, where: string, type: string): void {
  if (value === null || value === undefined) return;
  if (!isRecord(value)) throw new Refusal(500, goTypeError(value, where, type));
  for (const [name, fieldType] of Object.entries(fields)) {
    const field = value[name];
    if (field === undefined || field === null) continue;
    const at = `${where}.${name}`;
    if (fieldType === "string" && typeof field !== "string") {
      throw new Refusal(500, goTypeError(field, at, "string"));
    }
    if (fieldType === "bool" && typeof field !== "boolean") {
      throw new Refusal(500, goTypeError(field, at, "bool"));
    }
    if (fieldType === "int" && !Number.isInteger(field)) {
      throw new Refusal(500, goTypeError(field, at, "int"));
    }
    if (fieldType === "time") {
      if (typeof field !== "string") throw new Refusal(500, goTypeError(field, at, "time.Time"));
      if (!RFC3339.test(field) || Number.isNaN(Date.parse(field))) {
        throw new Refusal(
          500,
          `parsing time "\\"${field}\\"" as "\\"2006-01-02T15:04:05Z07:00\\"": cannot parse "\\"" as "T"`,
        );
      }
    }
    if (fieldType === "strings") {
      if (!Array.isArray(field)) throw new Refusal(500, goTypeError(field, at, "[]string"));
      for (const entry of field) {
        if (typeof entry !== "string") throw new Refusal(500, goTypeError(entry, at, "string"));
      }
    }
    if (typeof fieldType === "object" && "object" in fieldType) {
      decodeFields(field, fieldType.object, at, "models.Object");
    }
    if (typeof fieldType === "object" && "list" in fieldType) {
      if (!Array.isArray(field)) throw new Refusal(500, goTypeError(field, at, "[]models.Item"));
      for (const entry of field) decodeFields(entry, fieldType.list, at, "models.Item");
    }
  }
}

/** Decodes a CV as RT-CV's JSON decoder does; throws a 500 Refusal with Go's wording. */
function decodeCv(value: unknown, where: string): Record<string, unknown> {
  if (!isRecord(value)) throw new Refusal(500, goTypeError(value, where, "models.CV"));
  decodeFields(value, CV_FIELDS, where, "models.CV");
  const phone = isRecord(value.personalDetails) ? value.personalDetails.phoneNumber : undefined;
  if (
    typeof phone === "string" && phone !== "" && !/^\+?[0-9]{6,15}$/.test(phone.replace(/[\s\-().]/g, ""))
  ) {
    throw new Refusal(500, "invalid phone number");
  }
  for (const license of (value.driversLicenses ?? []) as string[]) {
    if (!DRIVERS_LICENSES.has(license.toUpperCase())) throw new Refusal(500, "invalid drivers licence");
  }
  return value;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** RT-CV's `CV.Validate()`: 400 with its wording. */
function validateCv(cv: Record<string, unknown>): void {
  if (typeof cv.referenceNumber !== "string" || cv.referenceNumber === "") {
    throw new Refusal(400, "referenceNumber must be set");
  }
  const now = Date.now();
  for (const field of ["createdAt", "lastChanged"]) {
    const value = cv[field];
    if (typeof value === "string" && Date.parse(value) > now + DAY_MS) {
      throw new Refusal(400, `${field} can't be more than 24 hours in the future`);
    }
  }
  const dob = isRecord(cv.personalDetails) ? cv.personalDetails.dob : undefined;
  if (typeof dob === "string" && Date.parse(dob) > now - 13 * 365.25 * DAY_MS) {
    throw new Refusal(400, "date of birth must be at least 13 years ago");
  }
  for (const language of (Array.isArray(cv.languages) ? cv.languages : []) as Record<string, unknown>[]) {
    for (const level of [language?.levelSpoken, language?.levelWritten]) {
      if (typeof level === "number" && (level < 0 || level > 3)) {
        throw new Refusal(400, "language level must be between 0 and 3");
      }
    }
  }
}

function fromBase64(text: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
  } catch {
    return null;
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
