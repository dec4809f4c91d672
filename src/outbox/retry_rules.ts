/**
 * What the outbox does after a failed delivery (PROTOCOL.md section 11): a refusal of the request's
 * content (4xx) is a dead letter at once; the same refusal `maxAttempts` times is a dead letter; transient
 * failures (no answer, timeout, 408, 429, 502-504) are retried until the entry's age limit. Each adapter
 * classifies: for CVs every other 4xx is a refusal (`cv_channel.ts`); for job data an ingest server not
 * taking this client's requests as configured (401/403/404/405: the token or address, not the data) is
 * transient too (`ingest_channel.ts`). Waits grow from `retryMs`, with jitter, honouring `Retry-After`, capped.
 *
 * @module
 */

import {
  DEFAULT_OUTBOX_MAX_AGE_MS,
  DEFAULT_OUTBOX_MAX_ATTEMPTS,
  DEFAULT_OUTBOX_RETRY_MS,
} from "../config/config.ts";
import type { OutboxEntry, Reschedule } from "./outbox_store.ts";

/** How a delivery failed, as the adapter classifies it. */
export interface DeliveryFailure {
  /** `refused`: the content was refused (4xx); `repeated`: a refusal that counts (e.g. 500 with a message); `transient`: retry. */
  readonly kind: "refused" | "repeated" | "transient";
  /** What to show: `answered 500: parsing time ...` (never a secret). */
  readonly message: string;
  /** The wait the server asked for, in ms, or null. */
  readonly retryAfterMs: number | null;
}

/** The settings of the rules (from the config). */
export interface RetrySettings {
  /** `RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS`: the first wait. */
  readonly retryMs: number;
  /** `RTCV_SCRAPER_CLIENT_OUTBOX_MAX_ATTEMPTS`: the same refusal this many times makes a dead letter. */
  readonly maxAttempts: number;
  /** `RTCV_SCRAPER_CLIENT_OUTBOX_MAX_AGE_MS`: transient failures are retried this long after the put. */
  readonly maxAgeMs: number;
  /** The longest wait between attempts (also caps `Retry-After`). */
  readonly maxDelayMs: number;
  /** Jitter source in [0, 1). */
  readonly random: () => number;
}

/** Defaults: the config's (1 s first wait, 5 attempts, 72 h age limit), waits capped at 5 minutes. */
export const DEFAULT_RETRY_SETTINGS: RetrySettings = {
  retryMs: DEFAULT_OUTBOX_RETRY_MS,
  maxAttempts: DEFAULT_OUTBOX_MAX_ATTEMPTS,
  maxAgeMs: DEFAULT_OUTBOX_MAX_AGE_MS,
  maxDelayMs: 300_000,
  random: Math.random,
};

/**
 * The decision for `entry` after `failure` at `now`: a dead letter with its reason, or the new schedule.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { decideRetry, DEFAULT_RETRY_SETTINGS } from "./retry_rules.ts";
 * const entry = { id: "1", channel: "c", key: null, route: "scanCV", label: "r", count: 1, createdAt: 0,
 *   nextAt: 0, attempts: 0, refusal: null, refusals: 0, lastError: null } as const;
 * const decision = decideRetry(entry, { kind: "refused", message: "answered 400: bad", retryAfterMs: null }, 0,
 *   DEFAULT_RETRY_SETTINGS);
 * assert.deepStrictEqual(decision, { dead: "answered 400: bad" });
 * ```
 */
export function decideRetry(
  entry: OutboxEntry,
  failure: DeliveryFailure,
  now: number,
  settings: RetrySettings,
): { dead: string } | { retry: Reschedule } {
  const attempts = entry.attempts + 1;
  if (failure.kind === "refused") return { dead: failure.message };
  let refusal = entry.refusal;
  let refusals = entry.refusals;
  if (failure.kind === "repeated") {
    refusals = refusal === failure.message ? refusals + 1 : 1;
    refusal = failure.message;
    if (refusals >= settings.maxAttempts) return { dead: failure.message };
  }
  if (now - entry.createdAt >= settings.maxAgeMs) {
    return { dead: `${failure.message} (still failing after the age limit of ${settings.maxAgeMs} ms)` };
  }
  const exponent = Math.min(attempts - 1, 30);
  let delay = Math.min(settings.maxDelayMs, settings.retryMs * 2 ** exponent) * (0.5 + settings.random());
  if (failure.retryAfterMs !== null) delay = Math.max(delay, failure.retryAfterMs);
  delay = Math.round(Math.min(delay, settings.maxDelayMs));
  return { retry: { nextAt: now + delay, attempts, refusal, refusals, lastError: failure.message } };
}
