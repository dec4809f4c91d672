/**
 * What the HTTP clients share once {@linkcode fetchWithRetries} has brought something back: checking a
 * server's base URL, keeping secrets out of messages, and the wording of every failure (no answer, a failed
 * answer with an empty, JSON or non-JSON body, a success whose body is not JSON).
 *
 * Each client keeps its own error class and its own idea of where a server puts its message: this module
 * hands back the `detail` text and the fields such an error carries.
 *
 * @module
 */

import { isTransientStatus, parseRetryAfter, type RequestOutcome } from "./request_policy.ts";

const EXCERPT_CHARS = 200;
const REDACTED = "[redacted]";
/** Shorter secrets are not searched for in messages: replacing every "ab" would mangle them. */
const MIN_REDACTED_LENGTH = 4;

/**
 * Replaces secrets (api keys, tokens, Authorization headers) in text meant for messages with `[redacted]`.
 * Secrets shorter than 4 characters are left alone. List a secret before any shorter one it contains.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Redactor } from "./http_answers.ts";
 * const redactor = new Redactor(["s3cret-token"]);
 * assert.ok(redactor.redact("bad token s3cret-token") === "bad token [redacted]");
 * assert.ok(redactor.excerpt("a\n  b") === "a b");
 * ```
 */
export class Redactor {
  readonly #secrets: readonly string[];

  /** Hides `secrets` (those of at least 4 characters), in this order. */
  constructor(secrets: readonly string[]) {
    this.#secrets = secrets.filter((secret) => secret.length >= MIN_REDACTED_LENGTH);
  }

  /** A redactor that hides `more` too, after these secrets. */
  with(more: readonly string[]): Redactor {
    return new Redactor([...this.#secrets, ...more]);
  }

  /** `text` with every secret replaced by `[redacted]`. */
  redact(text: string): string {
    let result = text;
    for (const secret of this.#secrets) result = result.replaceAll(secret, REDACTED);
    return result;
  }

  /** `text` redacted, its whitespace runs made one space, cut after 200 characters (with `…`). */
  excerpt(text: string): string {
    const flat = this.redact(text).replace(/\s+/g, " ").trim();
    return flat.length > EXCERPT_CHARS ? flat.slice(0, EXCERPT_CHARS) + "…" : flat;
  }

  /** What `Deno.inspect` shows: never the secrets. */
  [Symbol.for("Deno.customInspect")](): string {
    return "Redactor";
  }
}

/**
 * Checks a server's base URL and normalizes it: origin plus path prefix, without a trailing slash. Throws a
 * `TypeError` naming `field` when `text` is not a URL (the message is `notAUrl` when given), is not
 * `http(s)://`, or holds a user name or password.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBaseUrl } from "./http_answers.ts";
 * const { url, baseUrl } = parseBaseUrl("base_url", "http://a.example/x/");
 * assert.ok(baseUrl === "http://a.example/x" && url.origin === "http://a.example");
 * ```
 */
export function parseBaseUrl(
  field: string,
  text: string,
  notAUrl = `${field} ${JSON.stringify(text)} is not a URL; expected http(s)://host[:port]`,
): { url: URL; baseUrl: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(notAUrl);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`${field} must start with http:// or https://, not ${url.protocol}//`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new TypeError(`${field} of ${url.origin} must not contain a user name or password`);
  }
  return { url, baseUrl: url.origin + url.pathname.replace(/\/+$/, "") };
}

/** Why a request failed, as the fields of a client's error (see {@linkcode readAnswer}). */
export interface FailedRequest {
  /**
   * What happened, to follow the server's name: `answered 400: invalid cv`, `answered 502 with an empty
   * body (4 attempts)`, `did not answer within 20000 ms (4 attempts)`. Secrets are redacted.
   */
  readonly detail: string;
  /** The status of the answer, or null when no (complete) answer came. */
  readonly status: number | null;
  /** The server's own message from its error body, as the caller shaped it, or null. */
  readonly serverMessage: string | null;
  /** Whether a later try may succeed: no answer, a timeout, 408, 429 or 5xx. */
  readonly retryable: boolean;
  /** The delay a failed answer asked for with `Retry-After`, in ms, or null. */
  readonly retryAfterMs: number | null;
  /** How many attempts were made. */
  readonly attempts: number;
}

/** What {@linkcode readAnswer} needs besides the outcome. */
export interface ReadAnswerOptions {
  /** The request as messages name it, e.g. `GET /api/v1/health` (a path template, never a secret). */
  readonly request: string;
  /** Hides the secrets of the request in every message. */
  readonly redactor: Redactor;
  /** The server's message in a failed answer's parsed JSON body, ready to show (redacted), or null. */
  serverMessage(body: unknown): string | null;
  /** When true, any 2xx answer succeeds (with value `undefined`) whatever its body. */
  readonly anyBody?: boolean;
}

/**
 * Turns the outcome of a request into the JSON value of a 2xx answer, or a {@linkcode FailedRequest}: no
 * (complete) answer, an answer outside 2xx, or a 2xx answer whose body is not JSON.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readAnswer, Redactor } from "./http_answers.ts";
 * const answer = readAnswer(
 *   { kind: "response", status: 503, headers: new Headers(), body: "", attempts: 4 },
 *   { request: "GET /x", redactor: new Redactor([]), serverMessage: () => null },
 * );
 * assert.ok(!answer.ok && answer.failure.detail === "answered 503 with an empty body (4 attempts)");
 * ```
 */
export function readAnswer(
  outcome: RequestOutcome,
  options: ReadAnswerOptions,
): { ok: true; value: unknown } | { ok: false; failure: FailedRequest } {
  const { redactor } = options;
  const { attempts } = outcome;
  if (outcome.kind !== "response") {
    const detail = describeNoAnswer(outcome, redactor);
    return fail({ detail, status: null, retryable: true, attempts });
  }
  const { status, body } = outcome;
  const suffix = attempts > 1 ? ` (${attempts} attempts)` : "";
  const ok = status >= 200 && status <= 299;
  if (ok && options.anyBody) return { ok: true, value: undefined };
  const parsed = parseJsonBody(body);
  if (!ok) {
    const retryable = isTransientStatus(status);
    const retryAfterMs = parseRetryAfter(outcome.headers.get("retry-after"));
    const serverMessage = parsed.ok ? options.serverMessage(parsed.value) : null;
    if (serverMessage !== null) {
      const detail = `answered ${status}: ${serverMessage}${suffix}`;
      return fail({ detail, status, serverMessage, retryable, retryAfterMs, attempts });
    }
    const what = body.trim() === ""
      ? "with an empty body"
      : `with a${parsed.ok ? " JSON body without an error message" : " non-JSON body"}: ${
        redactor.excerpt(body)
      }`;
    return fail({ detail: `answered ${status} ${what}${suffix}`, status, retryable, retryAfterMs, attempts });
  }
  if (!parsed.ok) {
    const what = body.trim() === "" ? "an empty body" : `a non-JSON body: ${redactor.excerpt(body)}`;
    return fail({ detail: `answered ${status} to ${options.request} with ${what}`, status, attempts });
  }
  return { ok: true, value: parsed.value };
}

function fail(
  failure: Pick<FailedRequest, "detail" | "status" | "attempts"> & Partial<FailedRequest>,
): { ok: false; failure: FailedRequest } {
  return {
    ok: false,
    failure: { serverMessage: null, retryable: false, retryAfterMs: null, ...failure },
  };
}

/** `did not answer within 20000 ms (4 attempts)`, `could not be reached: Connection refused (1 attempt)`. */
function describeNoAnswer(
  outcome: Exclude<RequestOutcome, { kind: "response" }>,
  redactor: Redactor,
): string {
  const attempts = `${outcome.attempts} attempt${outcome.attempts === 1 ? "" : "s"}`;
  if (outcome.kind === "timeout") return `did not answer within ${outcome.timeoutMs} ms (${attempts})`;
  const reason = redactor.redact(outcome.reason);
  return outcome.status === null
    ? `could not be reached: ${reason} (${attempts})`
    : `broke off its answer (status ${outcome.status}): ${reason} (${attempts})`;
}

function parseJsonBody(text: string): { ok: true; value: unknown } | { ok: false; value: undefined } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, value: undefined };
  }
}
