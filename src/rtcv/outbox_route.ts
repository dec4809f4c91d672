/**
 * Which RT-CV route an outbox entry for a mirror goes to, and how that is written into the entry's payload.
 * This is the one place that knows the encoding, so a replacement outbox can carry it over as it is.
 *
 * - `scanCV`: the payload is the CV's JSON (the format of every entry written before lists existed).
 * - `allCVs`: the payload is `allCVs ` followed by the JSON `{"cvs":[...]}`.
 * - `scanCVDocument`: the payload is `scanCVDocument ` followed by the JSON
 *   `{"cv":{...},"file_base64":"...","content_type":"..."}` (a CV document, multipart on the wire).
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

/** What one outbox entry delivers: a CV to scanCV, a list to allCVs, or a CV document to scanCVDocument. */
export type OutboxDelivery =
  | { readonly route: "scanCV"; readonly cv: Record<string, unknown> }
  | { readonly route: "allCVs"; readonly cvs: readonly Record<string, unknown>[] }
  | {
    readonly route: "scanCVDocument";
    readonly cv: Record<string, unknown>;
    readonly file: Uint8Array<ArrayBuffer>;
    readonly contentType: string;
  };

const ALL_CVS_PREFIX = "allCVs ";
const DOCUMENT_PREFIX = "scanCVDocument ";

/** The payload text of an outbox entry. */
export function encodeOutboxPayload(delivery: OutboxDelivery): string {
  switch (delivery.route) {
    case "scanCV":
      return JSON.stringify(delivery.cv);
    case "allCVs":
      return ALL_CVS_PREFIX + JSON.stringify({ cvs: delivery.cvs });
    case "scanCVDocument":
      return DOCUMENT_PREFIX + JSON.stringify({
        cv: delivery.cv,
        file_base64: delivery.file.toBase64(),
        content_type: delivery.contentType,
      });
  }
}

/** The delivery an outbox entry's payload text describes. */
export function decodeOutboxPayload(payload: string): OutboxDelivery {
  if (payload.startsWith(ALL_CVS_PREFIX)) {
    return { route: "allCVs", cvs: JSON.parse(payload.slice(ALL_CVS_PREFIX.length)).cvs };
  }
  if (payload.startsWith(DOCUMENT_PREFIX)) {
    const document = JSON.parse(payload.slice(DOCUMENT_PREFIX.length));
    return {
      route: "scanCVDocument",
      cv: document.cv,
      file: Uint8Array.fromBase64(document.file_base64),
      contentType: document.content_type,
    };
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
  else if (delivery.route === "allCVs") await client.scanCvList(delivery.cvs, signal);
  else await client.scanCvDocument(delivery.cv, delivery.file, delivery.contentType, signal);
}
