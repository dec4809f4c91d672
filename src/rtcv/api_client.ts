/**
 * The HTTP client for one RT-CV server: authentication, the endpoints the scraper client uses, and one typed
 * error ({@linkcode RtcvApiError}) carrying the server's origin, status and message.
 *
 * @module
 */

import { ClientError } from "../errors.ts";
import { parseBaseUrl, readAnswer, Redactor } from "../http/http_answers.ts";
import { fetchWithRetries, type RequestPolicy } from "../http/request_policy.ts";
import type { SocketTarget } from "./server_socket.ts";
import { hexDigest } from "../crypto/hex_digest.ts";

/** Where an RT-CV server is and the api key to use with it. */
export interface RtcvCredentials {
  /** Base URL of the server, `http://` or `https://`; may end with `/` or carry a path prefix. */
  serverLocation: string;
  /** The api key's id (24 hex characters on a real RT-CV). */
  apiKeyId: string;
  /** The api key itself. Never sent as is: only its SHA-512 goes on the wire. */
  apiKey: string;
}

/** The part of `GET /api/v1/auth/keyinfo` the scraper client needs. */
export interface RtcvKeyInfo {
  /** The key's roles; role 1 is "scraper". Entries may carry more fields (`slug`, `description`). */
  roles: { role: number }[];
}

/** What `GET /api/v1/scraperUsers/<id>` answers, as the client uses it. */
export interface RtcvScraperUsers {
  /** The public key registered for this scraper (base64), or `""` when none is. */
  scraperPubKey: string;
  /** The login users; `encryptedPassword` (a base64 sealed box) is null when the server sent none. */
  users: { username: string; encryptedPassword: string | null }[];
}

/** What {@linkcode RtcvApiError} is built from, apart from the origin and the message detail. */
export interface RtcvApiErrorDetails {
  /** The HTTP status of the answer, or null when no answer came. */
  status?: number | null;
  /** The `error` field of the server's JSON error body, when there was one. */
  serverMessage?: string | null;
  /** Whether a later attempt may succeed (no answer, timeout, 408, 429 or 5xx). */
  retryable?: boolean;
  /** How many attempts were made (default 1). */
  attempts?: number;
  /** The wait a failed answer asked for with `Retry-After`, in ms, or null. */
  retryAfterMs?: number | null;
  /** The server's role in this client (`primary`, `mirror`), put in front of the message; none by default. */
  role?: string | null;
}

/**
 * A request to an RT-CV server failed. The message is `<origin> <what happened>`, for example
 * `https://rtcv.example.com answered 400: invalid referenceNumber` or
 * `http://127.0.0.1:1234 did not answer within 20000 ms (4 attempts)`; with a role (see
 * {@linkcode RtcvApiError.withRole}) it comes first: `primary https://rtcv.example.com answered 400: ...`.
 * It never contains the api key, its hash or the Authorization header.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RtcvApiError } from "./api_client.ts";
 * const error = new RtcvApiError("https://rtcv.example.com", "answered 400: bad", { status: 400, serverMessage: "bad" });
 * assert.equal(error.message, "https://rtcv.example.com answered 400: bad");
 * assert.equal(error.withRole("primary").message, "primary https://rtcv.example.com answered 400: bad");
 * ```
 */
export class RtcvApiError extends ClientError {
  /** Always `"RtcvApiError"`. */
  override readonly name = "RtcvApiError";
  /** The server's URL origin, e.g. `https://rtcv.example.com`. */
  readonly origin: string;
  /** The HTTP status of the answer, or null when no (complete) answer came. */
  readonly status: number | null;
  /** The message from the server's `{"error": "..."}` body, or null. */
  readonly serverMessage: string | null;
  /** Whether trying again later may succeed: no answer, timeout, 408, 429 or a 5xx, but not a missing route. */
  readonly retryable: boolean;
  /** How many attempts were made before giving up. */
  readonly attempts: number;
  /** The wait the server asked for with `Retry-After`, in ms, or null. */
  readonly retryAfterMs: number | null;
  /** What happened, as it follows the origin in the message (`answered 400: bad`). */
  readonly detail: string;
  /** The server's role in front of the message (`primary`), or null. */
  readonly role: string | null;

  /**
   * True when the server does not have the route at all: the newest one answers 500
   * `{"error":"Cannot GET /api/..."}` (before any auth check), others 404 `Cannot GET ...`, a 404 naming the
   * route, or a 404 without a JSON message. A 404 `item not found` (an unknown secret) is not.
   */
  get missingRoute(): boolean {
    const message = this.serverMessage ?? "";
    if ((this.status === 404 || this.status === 500) && /^Cannot [A-Z]+ \//.test(message)) return true;
    // A 404 about the route itself; a 404 `item not found` is about the thing asked for (an unknown secret).
    return this.status === 404 && (this.serverMessage === null || /route/i.test(message));
  }

  /**
   * True for a 500 with a JSON `error` body that is not a missing route: RT-CV's answer to a request it
   * cannot decode (a bad date, an invalid phone number, ...). The same request will fail again.
   */
  get refused(): boolean {
    return this.status === 500 && this.serverMessage !== null && !this.missingRoute;
  }

  /** Builds the error; `detail` follows the origin in the message. */
  constructor(origin: string, detail: string, details: RtcvApiErrorDetails = {}) {
    const role = details.role ?? null;
    super(`${role === null ? "" : `${role} `}${origin} ${detail}`);
    this.origin = origin;
    this.detail = detail;
    this.role = role;
    this.status = details.status ?? null;
    this.serverMessage = details.serverMessage ?? null;
    // A server without the route will not grow it on a retry (the newest RT-CV answers 500 for it).
    this.retryable = (details.retryable ?? false) && !this.missingRoute;
    this.attempts = details.attempts ?? 1;
    this.retryAfterMs = details.retryAfterMs ?? null;
  }

  /** The same failure, its message led by the server's role: `primary <origin> answered 400: ...`. */
  withRole(role: string): RtcvApiError {
    return new RtcvApiError(this.origin, this.detail, {
      status: this.status,
      serverMessage: this.serverMessage,
      retryable: this.retryable,
      attempts: this.attempts,
      retryAfterMs: this.retryAfterMs,
      role,
    });
  }
}

/**
 * A client for one RT-CV server. Build it with {@linkcode RtcvApiClient.create}, which computes the
 * Authorization header once (`Basic <apiKeyId>:<lower-case hex SHA-512 of apiKey>`).
 *
 * Every request carries `Authorization` and `Content-Type: application/json`, has a per-attempt timeout and is
 * retried as the {@linkcode RequestPolicy} says. Failures throw {@linkcode RtcvApiError}; a caller's `signal`
 * aborting rejects with the signal's reason. The key never shows in `toString`, `JSON.stringify` or
 * `Deno.inspect` of the client.
 *
 * @example
 * ```ts ignore
 * import { RtcvApiClient } from "./api_client.ts";
 * import { defaultRequestPolicy } from "../http/request_policy.ts";
 * const client = await RtcvApiClient.create(
 *   { serverLocation: "http://localhost:4000", apiKeyId: "111111111111111111111111", apiKey: "ddd" },
 *   defaultRequestPolicy(),
 * );
 * await client.health();
 * const matched = await client.scanCv({ referenceNumber: "abc" });
 * ```
 */
export class RtcvApiClient {
  #origin: string;
  #baseUrl: string;
  #apiKeyId: string;
  #headers: Record<string, string>;
  #redactor: Redactor;
  #policy: RequestPolicy;

  private constructor(
    origin: string,
    baseUrl: string,
    apiKeyId: string,
    authorization: string,
    redactor: Redactor,
    policy: RequestPolicy,
  ) {
    this.#origin = origin;
    this.#baseUrl = baseUrl;
    this.#apiKeyId = apiKeyId;
    this.#headers = {
      "Authorization": authorization,
      "Content-Type": "application/json",
      "Accept": "application/json",
    };
    this.#redactor = redactor;
    this.#policy = policy;
  }

  /**
   * Checks the credentials' form and computes the Authorization header. Throws a `TypeError` when
   * `serverLocation` is not an `http(s)://` URL or the key id or key is empty; contacts no server.
   */
  static async create(credentials: RtcvCredentials, policy: RequestPolicy): Promise<RtcvApiClient> {
    const { serverLocation, apiKeyId, apiKey } = credentials;
    const { url, baseUrl } = parseBaseUrl("server_location", serverLocation);
    if (typeof apiKeyId !== "string" || apiKeyId === "") {
      throw new TypeError(`api_key_id for ${url.origin} must be a non-empty string`);
    }
    if (typeof apiKey !== "string" || apiKey === "") {
      throw new TypeError(`api_key for ${url.origin} must be a non-empty string`);
    }
    const hash = await hexDigest("SHA-512", apiKey);
    const authorization = `Basic ${apiKeyId}:${hash}`;
    const redactor = new Redactor([authorization, hash, apiKey]);
    return new RtcvApiClient(url.origin, baseUrl, apiKeyId, authorization, redactor, policy);
  }

  /** The server's URL origin, e.g. `http://127.0.0.1:4000`; never includes the key. */
  get origin(): string {
    return this.#origin;
  }

  /** The server location without a trailing slash (origin plus any path prefix). */
  get baseUrl(): string {
    return this.#baseUrl;
  }

  /** The api key id this client authenticates with (not secret). */
  get apiKeyId(): string {
    return this.#apiKeyId;
  }

  /**
   * The server's scraper websocket, `ws(s)://<server location>/api/v1/scraper/ws`, with the Authorization
   * header to open it (for the socket module only: the header is a secret).
   */
  socketTarget(): SocketTarget {
    return {
      url: this.#baseUrl.replace(/^http/i, "ws") + "/api/v1/scraper/ws",
      headers: { Authorization: this.#headers.Authorization },
      origin: this.#origin,
    };
  }

  /** `GET /api/v1/health`; resolves when the server answers `{"status": true}`. */
  async health(signal?: AbortSignal): Promise<void> {
    const body = await this.#request("GET", "/api/v1/health", { signal });
    if (!isRecord(body) || body.status !== true) {
      throw new RtcvApiError(
        this.#origin,
        `reports it is not healthy: ${this.#redactor.excerpt(JSON.stringify(body))}`,
        {
          status: 200,
          retryable: true,
        },
      );
    }
  }

  /** `GET /api/v1/auth/keyinfo`: the roles of this client's key (role 1 is "scraper"). */
  async keyInfo(signal?: AbortSignal): Promise<RtcvKeyInfo> {
    const body = await this.#request("GET", "/api/v1/auth/keyinfo", { signal });
    const roles = isRecord(body) ? body.roles : undefined;
    if (!Array.isArray(roles) || !roles.every((entry) => isRecord(entry) && typeof entry.role === "number")) {
      throw this.#unexpected("/api/v1/auth/keyinfo", "roles: [{role: <number>}, ...]", body);
    }
    return { roles: roles as { role: number }[] };
  }

  /**
   * `GET /api/v1/scraper/scannedReferenceNrs/since/days/<days>`: the reference numbers scanned recently.
   * Throws {@linkcode RtcvApiError} for any failure; {@linkcode RtcvApiError.missingRoute} tells a server
   * without the route (older ones answer 404, the newest 500 `Cannot GET ...`).
   */
  async scannedReferenceNrs(
    days: number,
    signal?: AbortSignal,
    options: { retries?: number } = {},
  ): Promise<string[]> {
    if (!Number.isSafeInteger(days) || days < 0) {
      throw new RangeError(`days must be a whole number >= 0, got ${days}`);
    }
    const path = `/api/v1/scraper/scannedReferenceNrs/since/days/${days}`;
    const body = await this.#request("GET", path, { signal, retries: options.retries });
    if (body === null) return []; // Go encodes an empty slice as null
    if (!Array.isArray(body) || !body.every((entry) => typeof entry === "string")) {
      throw this.#unexpected(path, "an array of strings", body);
    }
    return body;
  }

  /**
   * `POST /api/v1/scraper/scanCV` with body `{"cv": cv}`; resolves the server's `hasMatches`
   * (false when the field is missing, as the Go client read it).
   */
  async scanCv(cv: Record<string, unknown>, signal?: AbortSignal): Promise<boolean> {
    if (!isRecord(cv)) throw new TypeError("cv must be a JSON object");
    const path = "/api/v1/scraper/scanCV";
    const body = await this.#request("POST", path, { signal, body: { cv } });
    const hasMatches = isRecord(body) ? body.hasMatches : undefined;
    if (hasMatches === undefined && isRecord(body)) return false;
    if (typeof hasMatches !== "boolean") throw this.#unexpected(path, `{"hasMatches": <boolean>}`, body);
    return hasMatches;
  }

  /**
   * `POST /api/v1/scraper/scanCVDocument` as multipart: a part `metadata` (the CV as JSON) and a part `cv`
   * (the file, named `cv.pdf`, with `contentType`); resolves the server's `hasMatches`. Every attempt sends
   * the whole body again.
   */
  async scanCvDocument(
    cv: Record<string, unknown>,
    file: Uint8Array<ArrayBuffer>,
    contentType: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const path = "/api/v1/scraper/scanCVDocument";
    const form = new FormData();
    form.append("metadata", JSON.stringify(cv));
    form.append("cv", new Blob([file], { type: contentType }), "cv.pdf");
    const body = await this.#request("POST", path, { signal, form });
    const hasMatches = isRecord(body) ? body.hasMatches : undefined;
    if (hasMatches === undefined && isRecord(body)) return false;
    if (typeof hasMatches !== "boolean") throw this.#unexpected(path, `{"hasMatches": <boolean>}`, body);
    return hasMatches;
  }

  /**
   * `POST /api/v1/scraper/allCVs` with body `{"cvs": cvs}` (a list, e.g. a search result page). The server
   * matches lists later, so nothing comes back but success.
   */
  async scanCvList(cvs: readonly Record<string, unknown>[], signal?: AbortSignal): Promise<void> {
    if (cvs.length === 0) throw new RangeError("an allCVs list must not be empty");
    await this.#request("POST", ALL_CVS_PATH, { signal, body: { cvs } });
  }

  /**
   * `GET /api/v1/scraperUsers/<api key id>`: this scraper's registered public key (empty string when none)
   * and its login users with their sealed passwords. Servers without the route throw an
   * {@linkcode RtcvApiError} whose {@linkcode RtcvApiError.missingRoute} is true.
   */
  async scraperUsers(signal?: AbortSignal): Promise<RtcvScraperUsers> {
    const path = `/api/v1/scraperUsers/${encodeURIComponent(this.#apiKeyId)}`;
    const body = await this.#request("GET", path, { signal });
    if (!isRecord(body)) throw this.#unexpected(path, "{scraperPubKey, users: [...]}", body);
    const users = body.users ?? [];
    const valid = Array.isArray(users) &&
      users.every((user) =>
        isRecord(user) && typeof user.username === "string" &&
        (user.encryptedPassword === undefined || typeof user.encryptedPassword === "string")
      );
    const key = body.scraperPubKey ?? "";
    if (!valid || typeof key !== "string") {
      throw this.#unexpected(path, "{scraperPubKey: <string>, users: [{username, encryptedPassword}]}", body);
    }
    return {
      scraperPubKey: key,
      users: (users as { username: string; encryptedPassword?: string }[]).map((user) => ({
        username: user.username,
        encryptedPassword: user.encryptedPassword ?? null,
      })),
    };
  }

  /**
   * `PATCH /api/v1/scraperUsers/<api key id>/setPublicKey` with `{"publicKey": publicKey}` (base64). Replacing
   * a different key deletes the stored users on the server: callers only register a key where none is.
   */
  async setPublicKey(publicKey: string, signal?: AbortSignal): Promise<void> {
    const path = `/api/v1/scraperUsers/${encodeURIComponent(this.#apiKeyId)}/setPublicKey`;
    await this.#request("PATCH", path, { signal, body: { publicKey }, anyBody: true });
  }

  /**
   * `GET /api/v1/secrets/myKey/<key>/<encryptionKey>`: the decrypted secret value (older servers only). RT-CV
   * takes path segments as sent, without percent-decoding them, so both are sent as they are where a URL
   * path allows it (see {@linkcode encodePathSegment}). The hooks of the policy see the path as
   * `/api/v1/secrets/myKey/:key/:encryptionKey`.
   */
  async getSecret(key: string, encryptionKey: string, signal?: AbortSignal): Promise<unknown> {
    const encodedKey = encodePathSegment(key);
    const encodedEncryptionKey = encodePathSegment(encryptionKey);
    const path = `/api/v1/secrets/myKey/${encodedKey}/${encodedEncryptionKey}`;
    return await this.#request("GET", path, {
      signal,
      label: "/api/v1/secrets/myKey/:key/:encryptionKey",
      extraSecrets: [encryptionKey, encodedEncryptionKey],
    });
  }

  /** A description without secrets: `RtcvApiClient(<origin>, key id <id>)`. */
  toString(): string {
    return `RtcvApiClient(${this.#origin}, key id ${this.#apiKeyId})`;
  }

  /** What `JSON.stringify` shows: the origin and the key id only. */
  toJSON(): { origin: string; apiKeyId: string } {
    return { origin: this.#origin, apiKeyId: this.#apiKeyId };
  }

  /** What `Deno.inspect` and `console.log` show: same as {@linkcode RtcvApiClient.toString}. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }

  async #request(
    method: "GET" | "POST" | "PATCH",
    path: string,
    options: {
      signal?: AbortSignal;
      body?: unknown;
      /** A multipart body (then fetch sets the Content-Type with its boundary). */
      form?: FormData;
      label?: string;
      anyBody?: boolean;
      extraSecrets?: string[];
      /** Overrides the policy's retries for this request. */
      retries?: number;
    },
  ): Promise<unknown> {
    const url = this.#baseUrl + path;
    const requestBody = options.form ??
      (options.body === undefined ? undefined : JSON.stringify(options.body));
    let headers = this.#headers;
    if (options.form !== undefined) {
      const { "Content-Type": _json, ...rest } = this.#headers;
      headers = rest;
    }
    const outcome = await fetchWithRetries(
      {
        origin: this.#origin,
        path: options.label ?? path,
        send: (signal) => fetch(url, { method, headers, body: requestBody, signal }),
      },
      options.retries === undefined ? this.#policy : { ...this.#policy, maxRetries: options.retries },
      options.signal,
    );
    const redactor = this.#redactor.with(options.extraSecrets ?? []);
    const answer = readAnswer(outcome, {
      request: `${method} ${options.label ?? path}`,
      redactor,
      anyBody: options.anyBody,
      serverMessage: (body) =>
        isRecord(body) && typeof body.error === "string" ? redactor.redact(body.error) : null,
    });
    if (!answer.ok) throw new RtcvApiError(this.#origin, answer.failure.detail, answer.failure);
    return answer.value;
  }

  #unexpected(path: string, expected: string, body: unknown): RtcvApiError {
    const shown = this.#redactor.excerpt(JSON.stringify(body) ?? String(body));
    return new RtcvApiError(
      this.#origin,
      `gave an unexpected answer to ${path}: expected ${expected}, got ${shown}`,
      {
        status: 200,
      },
    );
  }
}

/**
 * A path segment with only what a URL path cannot carry percent-encoded (`/`, `?`, `#`, `%`, spaces, control
 * and non-ASCII characters); letters, digits and `-._~!$&'()*+,;=:@` stay as they are. RT-CV does not
 * percent-decode segments, so a secret named `a+b=` is only found when sent as `a+b=`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePathSegment } from "./api_client.ts";
 * assert.equal(encodePathSegment("a+b=c:d@e"), "a+b=c:d@e");
 * assert.equal(encodePathSegment("a/b c?#%"), "a%2Fb%20c%3F%23%25");
 * ```
 */
export function encodePathSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /%(24|26|2B|2C|3B|3D|3A|40)/gi,
    (escape) => decodeURIComponent(escape),
  );
}

/** The list route of the newest servers. */
export const ALL_CVS_PATH = "/api/v1/scraper/allCVs";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
