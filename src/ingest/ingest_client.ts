/**
 * The HTTP client for the job-data ingest server: the token header, the three routes the scraper client
 * uses, and one typed error ({@linkcode IngestApiError}) carrying the server's origin, status and message.
 *
 * @module
 */

import { ClientError } from "../errors.ts";
import { parseBaseUrl, readAnswer, Redactor } from "../http/http_answers.ts";
import { fetchWithRetries, isTransientStatus, type RequestPolicy } from "../http/request_policy.ts";

/** Where the ingest server is and the token it wants. */
export interface IngestServer {
  /** Base URL, `http://` or `https://`; may end with `/` or carry a path prefix. */
  readonly baseUrl: string;
  /** Sent as the `token` header. A secret: never in messages, logs or the store. */
  readonly token: string;
}

/** The batch route: `POST` with `{"data_list": [...], "data_type": ..., "platform": ...}`. */
export const BATCH_PATH = "/api/v1/universal/data/batch-store-async";
/** The keyword route: `GET`, optionally with `?platform=`. */
export const KEYWORD_PATH = "/api/v1/keyword/available";
/** The platform-token route: `GET`. */
export const TOKENS_PATH = "/api/v1/token/tokens";

/**
 * What a failed request means for the caller:
 * - `transient`: no answer, a timeout, 408, 429 or 5xx; the same request may succeed later.
 * - `config`: 401, 403, 404 or 405; the server does not take requests from this client as configured
 *   (token or address). Not the data's fault: keep it and try again later or after `set_ingest`.
 * - `rejected`: any other answer outside 2xx; the server refused this request's content.
 */
export type IngestFailure = "transient" | "config" | "rejected";

/** What {@linkcode IngestApiError} is built from, apart from the origin and the message detail. */
export interface IngestApiErrorDetails {
  /** The HTTP status of the answer, or null when no answer came. */
  readonly status?: number | null;
  /** The server's own message from its JSON error body, when there was one. */
  readonly serverMessage?: string | null;
  /** How many attempts were made (default 1). */
  readonly attempts?: number;
  /** The delay the server asked for with `Retry-After`, in ms, or null. */
  readonly retryAfterMs?: number | null;
}

/**
 * A request to the ingest server failed. The message is `ingest server <origin> <what happened>`, e.g.
 * `ingest server https://ingest.example.com answered 400: data_list is empty`. It never contains the token.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IngestApiError } from "./ingest_client.ts";
 * const error = new IngestApiError("https://ingest.example.com", "answered 503: busy", { status: 503 });
 * assert.ok(error.failure === "transient");
 * ```
 */
export class IngestApiError extends ClientError {
  /** Always `"IngestApiError"`. */
  override readonly name = "IngestApiError";
  /** The server's URL origin. */
  readonly origin: string;
  /** The HTTP status, or null when no (complete) answer came. */
  readonly status: number | null;
  /** The server's message, or null. */
  readonly serverMessage: string | null;
  /** How many attempts were made. */
  readonly attempts: number;
  /** The delay the server asked for (`Retry-After`), in ms, or null. */
  readonly retryAfterMs: number | null;

  /** Builds the error; `detail` follows `ingest server <origin>` in the message. */
  constructor(origin: string, detail: string, details: IngestApiErrorDetails = {}) {
    super(`ingest server ${origin} ${detail}`);
    this.origin = origin;
    this.status = details.status ?? null;
    this.serverMessage = details.serverMessage ?? null;
    this.attempts = details.attempts ?? 1;
    this.retryAfterMs = details.retryAfterMs ?? null;
  }

  /** What the failure means for trying again; see {@linkcode IngestFailure}. */
  get failure(): IngestFailure {
    return classifyStatus(this.status);
  }
}

/** Classifies an answer status (null: no answer); see {@linkcode IngestFailure}. */
export function classifyStatus(status: number | null): IngestFailure {
  if (status === null || isTransientStatus(status)) return "transient";
  if (status === 401 || status === 403 || status === 404 || status === 405) return "config";
  return "rejected";
}

/**
 * An ingest server's address or token is malformed (`set_ingest`, the config's `ingest`); the message names
 * the field (`base_url ...`, `token ...`) and never quotes the token.
 */
export class IngestServerError extends ClientError {
  override name = "IngestServerError";
}

/**
 * Checks an ingest server's address and token and returns the normalized base URL (origin plus path
 * prefix, no trailing slash). Throws an {@linkcode IngestServerError} naming the field (never quoting the
 * token).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkIngestServer } from "./ingest_client.ts";
 * assert.ok(checkIngestServer({ baseUrl: "http://a.example/x/", token: "t" }) === "http://a.example/x");
 * ```
 */
export function checkIngestServer(server: IngestServer): string {
  let parsed: { url: URL; baseUrl: string };
  try {
    parsed = parseBaseUrl(
      "base_url",
      server.baseUrl,
      "base_url is not a URL; expected http(s)://host[:port][/prefix]",
    );
  } catch (error) {
    throw new IngestServerError(error instanceof Error ? error.message : String(error));
  }
  const { url, baseUrl } = parsed;
  if (url.search !== "" || url.hash !== "") {
    throw new IngestServerError(`base_url of ${url.origin} must not have a query or a fragment`);
  }
  if (typeof server.token !== "string" || server.token === "") {
    throw new IngestServerError("token must be a non-empty string");
  }
  // fetch accepts header values of visible ASCII, spaces and tabs only; say so before it fails.
  if (!/^[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?$/.test(server.token)) {
    throw new IngestServerError(
      "token must be printable ASCII without line breaks or leading or trailing spaces",
    );
  }
  return baseUrl;
}

/**
 * A client for one ingest server with one token. Every request carries the `token` header, has a
 * per-attempt timeout and is retried as the {@linkcode RequestPolicy} says (network errors, timeouts, 408,
 * 429 and 5xx). Failures throw {@linkcode IngestApiError}. The token never shows in `toString`,
 * `JSON.stringify` or `Deno.inspect` of the client, nor in any message.
 *
 * @example
 * ```ts ignore
 * import { IngestClient } from "./ingest_client.ts";
 * import { defaultRequestPolicy } from "../http/request_policy.ts";
 * const client = IngestClient.create({ baseUrl: "http://127.0.0.1:9999", token: "dev" }, defaultRequestPolicy());
 * const keyword = await client.nextKeyword("boss");
 * ```
 */
export class IngestClient {
  readonly #origin: string;
  readonly #baseUrl: string;
  readonly #token: string;
  readonly #redactor: Redactor;
  readonly #policy: RequestPolicy;

  private constructor(origin: string, baseUrl: string, token: string, policy: RequestPolicy) {
    this.#origin = origin;
    this.#baseUrl = baseUrl;
    this.#token = token;
    this.#redactor = new Redactor([token]);
    this.#policy = policy;
  }

  /** Checks the server's form (see {@linkcode checkIngestServer}); contacts nothing. */
  static create(server: IngestServer, policy: RequestPolicy): IngestClient {
    const baseUrl = checkIngestServer(server);
    return new IngestClient(new URL(baseUrl).origin, baseUrl, server.token, policy);
  }

  /** The server's URL origin, e.g. `http://127.0.0.1:9999`. */
  get origin(): string {
    return this.#origin;
  }

  /**
   * `POST <base>/api/v1/universal/data/batch-store-async` with a body already encoded as JSON. Resolves
   * on any 2xx. `policy` replaces the client's (the deliverer passes one without retries: it keeps its
   * own backoff).
   */
  async storeBatch(
    body: Uint8Array<ArrayBuffer>,
    options: { signal?: AbortSignal; policy?: RequestPolicy } = {},
  ): Promise<void> {
    await this.#request("POST", BATCH_PATH, body, options);
  }

  /** `GET <base>/api/v1/keyword/available[?platform=<platform>]`: the server's JSON. */
  nextKeyword(platform?: string, signal?: AbortSignal): Promise<unknown> {
    const query = platform === undefined ? "" : `?platform=${encodeURIComponent(platform)}`;
    return this.#request("GET", KEYWORD_PATH + query, undefined, { signal });
  }

  /** `GET <base>/api/v1/token/tokens`: the server's JSON. */
  getTokens(signal?: AbortSignal): Promise<unknown> {
    return this.#request("GET", TOKENS_PATH, undefined, { signal });
  }

  /** `IngestClient(<origin>)`; never the token. */
  toString(): string {
    return `IngestClient(${this.#origin})`;
  }

  /** What `JSON.stringify` shows: the origin only. */
  toJSON(): { origin: string } {
    return { origin: this.#origin };
  }

  /** What `Deno.inspect` shows: same as {@linkcode IngestClient.toString}. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }

  async #request(
    method: "GET" | "POST",
    path: string,
    body: Uint8Array<ArrayBuffer> | undefined,
    options: { signal?: AbortSignal; policy?: RequestPolicy },
  ): Promise<unknown> {
    const url = this.#baseUrl + path;
    const headers: Record<string, string> = { "token": this.#token, "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const label = path.split("?")[0];
    const outcome = await fetchWithRetries(
      {
        origin: this.#origin,
        path: label,
        send: (signal) => fetch(url, { method, headers, body, signal }),
        retryStatus: isTransientStatus,
      },
      options.policy ?? this.#policy,
      options.signal,
    );
    const answer = readAnswer(outcome, {
      request: `${method} ${label}`,
      redactor: this.#redactor,
      serverMessage: (body) => {
        const message = serverMessageOf(body);
        return message === null ? null : this.#redactor.excerpt(message);
      },
      anyBody: method === "POST", // any 2xx accepts the batch, whatever its body
    });
    if (!answer.ok) throw new IngestApiError(this.#origin, answer.failure.detail, answer.failure);
    return answer.value;
  }
}

/**
 * The message of an error body: `error`, `msg`, `message` or `detail` (FastAPI: a string, or a list of
 * `{loc, msg}` for a validation error).
 */
function serverMessageOf(body: unknown): string | null {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return null;
  const record = body as Record<string, unknown>;
  for (const field of ["error", "msg", "message", "detail"]) {
    const value = record[field];
    if (typeof value === "string" && value !== "") return value;
  }
  if (Array.isArray(record.detail)) {
    const messages = record.detail.flatMap((entry) => {
      if (entry === null || typeof entry !== "object") return [];
      const { loc, msg } = entry as { loc?: unknown; msg?: unknown };
      if (typeof msg !== "string") return [];
      return [Array.isArray(loc) ? `${loc.join(".")}: ${msg}` : msg];
    });
    if (messages.length > 0) return messages.slice(0, 3).join("; ");
  }
  return null;
}
