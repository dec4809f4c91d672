/**
 * Timeouts, retries and backoff for HTTP calls to a remote service.
 *
 * Generic on purpose: it knows nothing about RT-CV. A caller hands {@linkcode fetchWithRetries} a function
 * that starts one attempt (`send`), and gets back a {@linkcode RequestOutcome}: the final answer with its body
 * already read, or why no answer came. Turning that into a typed error is the caller's job, so each backend
 * keeps its own error class and wording.
 *
 * @module
 */

import { DEFAULT_TIMEOUT_MS, MAX_TIMER_MS } from "../config/config.ts";
import type { InFlightLimiter } from "./in_flight_limiter.ts";

/** How hard to try before giving up on a request; see {@linkcode defaultRequestPolicy}. */
export interface RequestPolicy {
  /** Time allowed for one attempt, from sending the request to having read the whole answer body. */
  timeoutMs: number;
  /** Retries after the first attempt (so at most `maxRetries + 1` attempts). */
  maxRetries: number;
  /** Backoff before retry n (n = 1, 2, ...) is about `baseDelayMs * 2^(n-1)`, with jitter (0.5x to 1.5x). */
  baseDelayMs: number;
  /** Upper bound for a delay asked for by a `Retry-After` header. */
  maxRetryAfterMs: number;
  /**
   * Bounds the attempts in flight to each origin (`RTCV_SCRAPER_CLIENT_MAX_IN_FLIGHT`); one limiter is shared
   * by every client of the process, so RT-CV and the ingest API are bounded alike. None: no bound.
   */
  limiter?: InFlightLimiter;
  /** Source of jitter, in [0, 1); default `Math.random`. Tests inject a constant. */
  random?: () => number;
  /**
   * Waits between attempts; default a timer. It must reject when `signal` aborts. Tests inject one that
   * records the delay and returns at once.
   */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Called before each backoff wait (for the debug log and the retry metric). */
  onRetry?: (
    info: { origin: string; path: string; attempt: number; reason: string; delayMs: number },
  ) => void;
  /** Called after each attempt; `status` is null when no complete answer arrived (for metrics). */
  onRequest?: (info: { origin: string; path: string; status: number | null; ms: number }) => void;
}

/**
 * The policy of the protocol: `timeoutMs` (default {@linkcode DEFAULT_TIMEOUT_MS}, 20000) per attempt,
 * 3 retries, backoff from 250 ms, `Retry-After` capped at 10 s. The program passes the configured timeout
 * (`config.timeoutMs`, which the config checks).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultRequestPolicy } from "./request_policy.ts";
 * const policy = defaultRequestPolicy(5000);
 * assert.ok(policy.timeoutMs === 5000 && policy.maxRetries === 3);
 * ```
 */
export function defaultRequestPolicy(timeoutMs: number = DEFAULT_TIMEOUT_MS): RequestPolicy {
  return { timeoutMs, maxRetries: 3, baseDelayMs: 250, maxRetryAfterMs: 10_000 };
}

/** One logical request, as {@linkcode fetchWithRetries} needs it. */
export interface RetryingRequest {
  /** The server's origin, passed to the hooks. */
  origin: string;
  /**
   * The path passed to the hooks. It may be a template (`/secrets/:key`) so that secrets in the real path
   * never reach logs or metric labels.
   */
  path: string;
  /** Starts one attempt; must hand `signal` to `fetch` so timeouts and cancellation reach it. */
  send(signal: AbortSignal): Promise<Response>;
  /** Which answer statuses are worth another attempt; default {@linkcode isRetryableStatus}. */
  retryStatus?(status: number): boolean;
}

/**
 * What came of a request after all attempts. The body of a `response` has been read in full. For `network`,
 * `status` is the status line received before the connection broke off while reading the body of the last
 * attempt, or null when no answer started at all (refused, reset, DNS, TLS).
 */
export type RequestOutcome =
  | { kind: "response"; status: number; headers: Headers; body: string; attempts: number }
  | { kind: "timeout"; attempts: number; timeoutMs: number }
  | { kind: "network"; attempts: number; reason: string; status: number | null };

/** The statuses that are retried by default: 429, 502, 503 and 504. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504;
}

/**
 * The statuses after which the same request may succeed later: 408, 429 and every 5xx. Wider than
 * {@linkcode isRetryableStatus}: it says whether a failure is worth trying again at all, not whether to
 * retry at once.
 */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Parses a `Retry-After` header value (delay seconds or an HTTP date) into milliseconds from `nowMs`.
 * Returns null when the value is missing or unreadable; a date in the past gives 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRetryAfter } from "./request_policy.ts";
 * assert.ok(parseRetryAfter("2") === 2000);
 * ```
 */
export function parseRetryAfter(value: string | null, nowMs: number = Date.now()): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  if (!/[a-z]/i.test(trimmed)) return null; // e.g. "-1": not a date either
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/** Waits `ms` milliseconds; rejects with the signal's reason as soon as `signal` aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Waits for `promise` to settle (fulfilled or rejected alike) or until `deadline` (ms since the epoch),
 * whichever comes first; never rejects.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withDeadline } from "./request_policy.ts";
 * const started = Date.now();
 * await withDeadline(new Promise(() => {}), Date.now() + 10); // gives up after 10 ms
 * assert.ok(Date.now() - started < 1000);
 * ```
 */
export async function withDeadline(promise: Promise<unknown>, deadline: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      promise.catch(() => {}),
      new Promise<void>((resolve) => timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

type AttemptResult =
  | { kind: "response"; status: number; headers: Headers; body: string }
  | { kind: "retry-status"; status: number; retryAfter: string | null }
  | { kind: "timeout" }
  | { kind: "network"; reason: string; status: number | null };

/**
 * Sends a request with a per-attempt timeout, retrying network errors, timeouts and retryable statuses
 * (429, 502, 503, 504 by default) at most `policy.maxRetries` times, with exponential backoff and jitter,
 * honouring `Retry-After` (capped at `policy.maxRetryAfterMs`); every wait is capped at {@linkcode MAX_BACKOFF_MS}.
 * Each attempt first waits for its turn at `policy.limiter` (in order); its timeout starts once it is sent.
 *
 * Every answer body is read or cancelled, so no resource is left open. A retryable status on the last attempt
 * is returned as a `response` (its body holds the server's message). When `signal` aborts, the current attempt
 * and any wait stop at once and the promise rejects with `signal.reason`; nothing is retried after that.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultRequestPolicy, fetchWithRetries } from "./request_policy.ts";
 * const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => new Response("hi"));
 * const origin = `http://127.0.0.1:${server.addr.port}`;
 * const outcome = await fetchWithRetries(
 *   { origin, path: "/", send: (signal) => fetch(origin + "/", { signal }) },
 *   defaultRequestPolicy(),
 * );
 * assert.ok(outcome.kind === "response" && outcome.body === "hi");
 * await server.shutdown();
 * ```
 */
export async function fetchWithRetries(
  request: RetryingRequest,
  policy: RequestPolicy,
  signal?: AbortSignal,
): Promise<RequestOutcome> {
  const sleep = policy.sleep ?? abortableSleep;
  const random = policy.random ?? Math.random;
  const maxAttempts = Math.max(0, Math.floor(policy.maxRetries)) + 1;
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    const isLast = attempt >= maxAttempts;
    const result = await attemptOnce(request, policy, isLast, signal);
    if (result.kind === "response") return { ...result, attempts: attempt };
    if (isLast) {
      if (result.kind === "timeout") {
        return { kind: "timeout", attempts: attempt, timeoutMs: policy.timeoutMs };
      }
      if (result.kind === "network") {
        return { kind: "network", attempts: attempt, reason: result.reason, status: result.status };
      }
      // A retry-status result is never produced on the last attempt (the body is read instead).
    }
    const backoff = policy.baseDelayMs * 2 ** (attempt - 1) * (0.5 + random());
    let delayMs = capWait(backoff, MAX_BACKOFF_MS);
    let reason: string;
    if (result.kind === "retry-status") {
      reason = `answered ${result.status}`;
      const retryAfter = parseRetryAfter(result.retryAfter);
      if (retryAfter !== null) {
        delayMs = capWait(retryAfter, Math.min(policy.maxRetryAfterMs, MAX_BACKOFF_MS));
        reason += ` (Retry-After: ${result.retryAfter})`;
      }
    } else if (result.kind === "timeout") {
      reason = `no answer within ${policy.timeoutMs} ms`;
    } else {
      reason = result.status === null
        ? `could not be reached: ${result.reason}`
        : `broke off its answer (status ${result.status}): ${result.reason}`;
    }
    callHook(() =>
      policy.onRetry?.({ origin: request.origin, path: request.path, attempt, reason, delayMs })
    );
    await sleep(delayMs, signal);
  }
}

/** The longest wait between two attempts, whatever the backoff or a `Retry-After` computes: a minute. */
export const MAX_BACKOFF_MS = 60_000;

/** A computed wait as a whole number of ms in [0, cap] (NaN and negatives: 0). */
function capWait(ms: number, cap: number): number {
  return ms > 0 ? Math.round(Math.min(ms, cap, MAX_TIMER_MS)) : 0;
}

async function attemptOnce(
  request: RetryingRequest,
  policy: RequestPolicy,
  isLast: boolean,
  signal: AbortSignal | undefined,
): Promise<AttemptResult> {
  const release = policy.limiter ? await policy.limiter.acquire(request.origin, signal) : null;
  try {
    return await sendAttempt(request, policy, isLast, signal);
  } finally {
    release?.();
  }
}

async function sendAttempt(
  request: RetryingRequest,
  policy: RequestPolicy,
  isLast: boolean,
  signal: AbortSignal | undefined,
): Promise<AttemptResult> {
  const timeout = new AbortController();
  const timer = setTimeout(
    () => timeout.abort(new DOMException(`no answer within ${policy.timeoutMs} ms`, "TimeoutError")),
    Math.min(policy.timeoutMs, MAX_TIMER_MS),
  );
  const attemptSignal = signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal;
  const started = performance.now();
  let status: number | null = null;
  let answerStatus: number | null = null;
  try {
    const response = await request.send(attemptSignal);
    answerStatus = response.status;
    const retryStatus = request.retryStatus ?? isRetryableStatus;
    if (!isLast && retryStatus(response.status)) {
      await response.body?.cancel().catch(() => {});
      status = response.status;
      return { kind: "retry-status", status, retryAfter: response.headers.get("retry-after") };
    }
    const body = await response.text();
    status = response.status;
    return { kind: "response", status, headers: response.headers, body };
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    if (timeout.signal.aborted) return { kind: "timeout" };
    return { kind: "network", reason: describeNetworkError(error), status: answerStatus };
  } finally {
    clearTimeout(timer);
    const ms = performance.now() - started;
    callHook(() => policy.onRequest?.({ origin: request.origin, path: request.path, status, ms }));
  }
}

function callHook(hook: () => void): void {
  try {
    hook();
  } catch {
    // Hooks are for logs and metrics; a broken one must not break the request.
  }
}

/**
 * Turns a fetch failure into a short reason such as `Connection refused`.
 *
 * Deno's messages look like `error sending request for url (<url>): client error (Connect): tcp connect
 * error: Connection refused (os error 111)`. The URL may hold secrets (a path segment), and a URL built with
 * `encodeURIComponent` never contains ": ", so everything up to the segment naming the URL is dropped, as
 * are the generic wrapper segments.
 */
function describeNetworkError(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : null;
  const message = cause?.message ?? (error instanceof Error ? error.message : String(error));
  let segments = message.split(": ");
  const urlSegment = segments.findLastIndex((segment) => segment.includes("for url ("));
  if (urlSegment >= 0) segments = segments.slice(urlSegment + 1);
  segments = segments
    .filter((segment) => !/^(client error \(\w+\)|tcp connect error)$/i.test(segment))
    .map((segment) => segment.replace(/\s*\(os error \d+\)$/, "").trim())
    .filter((segment) => segment !== "");
  const reason = segments.join(": ");
  if (reason === "" || /https?:\/\//i.test(reason)) return "network error";
  return reason.length > 200 ? reason.slice(0, 200) + "…" : reason;
}
