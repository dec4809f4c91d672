/**
 * Which RT-CV route an outbox entry for a mirror goes to, and how that is written into the entry's payload.
 * This is the one place that knows the encoding, so a replacement outbox can carry it over as it is.
 *
 * - `scanCV`: the payload is the CV's JSON (the format of every entry written before lists existed).
 * - `allCVs`: the payload is `allCVs ` followed by the JSON `{"cvs":[...]}`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeOutboxPayload, encodeOutboxPayload } from "./outbox_route.ts";
 * const payload = encodeOutboxPayload({ route: "allCVs", cvs: [{ referenceNumber: "a" }] });
 * assert.deepEqual(decodeOutboxPayload(payload), { route: "allCVs", cvs: [{ referenceNumber: "a" }] });
 * assert.deepEqual(decodeOutboxPayload('{"referenceNumber":"b"}'), { route: "scanCV", cv: { referenceNumber: "b" } });
 * ```
 *
 * @module
 */

import type { RtcvApiClient } from "./api_client.ts";

/** What one outbox entry delivers: a CV to scanCV, or a list to allCVs. */
export type OutboxDelivery =
  | { readonly route: "scanCV"; readonly cv: Record<string, unknown> }
  | { readonly route: "allCVs"; readonly cvs: readonly Record<string, unknown>[] };

const ALL_CVS_PREFIX = "allCVs ";

/** The payload text of an outbox entry. */
export function encodeOutboxPayload(delivery: OutboxDelivery): string {
  return delivery.route === "scanCV"
    ? JSON.stringify(delivery.cv)
    : ALL_CVS_PREFIX + JSON.stringify({ cvs: delivery.cvs });
}

/** The delivery an outbox entry's payload text describes. */
export function decodeOutboxPayload(payload: string): OutboxDelivery {
  if (payload.startsWith(ALL_CVS_PREFIX)) {
    return { route: "allCVs", cvs: JSON.parse(payload.slice(ALL_CVS_PREFIX.length)).cvs };
  }
  return { route: "scanCV", cv: JSON.parse(payload) };
}

/** Sends a delivery to its route on `client`; throws the client's errors. */
export async function deliverTo(
  client: RtcvApiClient,
  delivery: OutboxDelivery,
  signal?: AbortSignal,
): Promise<void> {
  if (delivery.route === "scanCV") await client.scanCv(delivery.cv, signal);
  else await client.scanCvList(delivery.cvs, signal);
}
