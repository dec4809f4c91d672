/**
 * The CV adapter of the outbox: copies of CVs (and CV lists, CV documents) for one RT-CV server, keyed once
 * per server, and the sender that posts them with that server's client.
 *
 * @module
 */

import type { RtcvApiClient } from "../rtcv/api_client.ts";
import { RtcvApiError } from "../rtcv/api_client.ts";
import type { ChannelSender } from "./outbox.ts";
import type { LeasedEntry, NewOutboxEntry, OutboxRoute } from "./outbox_store.ts";
import type { DeliveryFailure } from "./retry_rules.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Posts one entry's payload on its route with a server's client. */
export type RouteSend = (client: RtcvApiClient, payload: Uint8Array, signal: AbortSignal) => Promise<unknown>;

/**
 * How each CV route is posted: `scanCV` sends `{"cv": <payload JSON>}`, `allCVs` the payload `{"cvs": [...]}`,
 * `scanCVDocument` the document's payload (see {@link cvDocumentCopies}) as multipart.
 */
export const CV_ROUTES: Partial<Record<OutboxRoute, RouteSend>> = {
  scanCV: (client, payload, signal) => client.scanCv(JSON.parse(decoder.decode(payload)), signal),
  allCVs: (client, payload, signal) => client.scanCvList(JSON.parse(decoder.decode(payload)).cvs, signal),
  scanCVDocument: (client, payload, signal) => {
    const { cv, contentType, file } = decodeDocumentPayload(payload);
    return client.scanCvDocument(cv, file, contentType, signal);
  },
};

const NEWLINE = 0x0a;

/**
 * A document's payload: one line of JSON `{"cv":{...},"contentType":"..."}`, a newline, then the file's
 * bytes as they are (JSON text never holds a raw newline, so the first one ends the header).
 */
function encodeDocumentPayload(
  document: { cv: Record<string, unknown>; contentType: string; file: Uint8Array },
): Uint8Array {
  const header = encoder.encode(
    JSON.stringify({ cv: document.cv, contentType: document.contentType }) + "\n",
  );
  const payload = new Uint8Array(header.length + document.file.length);
  payload.set(header);
  payload.set(document.file, header.length);
  return payload;
}

function decodeDocumentPayload(
  payload: Uint8Array,
): { cv: Record<string, unknown>; contentType: string; file: Uint8Array<ArrayBuffer> } {
  const end = payload.indexOf(NEWLINE);
  const { cv, contentType } = JSON.parse(decoder.decode(payload.subarray(0, end)));
  return { cv, contentType, file: payload.slice(end + 1) };
}

/**
 * Payloads up to this size are keyed; a keyed put is one atomic commit of the store, which Deno.Kv limits to
 * 800 KiB, while an unkeyed put goes through the group commit, which splits a large write (parts first).
 */
const KEYED_DOCUMENT_BYTES = 512 * 1024;

/**
 * The copies of a CV document (`send_cv_document`, route `scanCVDocument`) for `mirrors`, keyed by its
 * reference number: a later document of the same reference for a mirror still waiting replaces the waiting
 * copy. A document over 512 KiB is not keyed (see {@link KEYED_DOCUMENT_BYTES}): it only reaches the mirrors
 * after the primary accepted it, and an accepted reference is cached or was not matched, so a second copy
 * needs a second accepted send.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { cvDocumentCopies } from "./cv_channel.ts";
 * const file = new TextEncoder().encode("%PDF-1.4");
 * const [copy] = cvDocumentCopies(["https://mirror.example"], {
 *   cv: { referenceNumber: "r1" },
 *   file,
 *   contentType: "application/pdf",
 * });
 * assert.strictEqual(copy.key, "scanCVDocument:r1");
 * assert.strictEqual(copy.route, "scanCVDocument");
 * ```
 */
export function cvDocumentCopies(
  mirrors: readonly string[],
  document: { cv: Record<string, unknown>; contentType: string; file: Uint8Array },
): NewOutboxEntry[] {
  const reference = String(document.cv.referenceNumber);
  const payload = encodeDocumentPayload(document);
  const key = payload.byteLength <= KEYED_DOCUMENT_BYTES ? `scanCVDocument:${reference}` : null;
  return copies(mirrors, { key, route: "scanCVDocument", label: `the document of ${reference}`, payload });
}

/** One entry of one CV request per mirror. */
function copies(
  mirrors: readonly string[],
  copy: Omit<NewOutboxEntry, "channel" | "count">,
): NewOutboxEntry[] {
  return mirrors.map((channel) => ({ channel, count: 1, ...copy }));
}

/** The outbox channel of a server: its location (origin and path prefix), never its key. */
export function cvChannel(client: RtcvApiClient): string {
  return client.baseUrl;
}

/**
 * The copies of one CV for `mirrors`, keyed by its reference number: a later copy of the same reference for
 * a mirror still waiting replaces the waiting one.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { cvCopies } from "./cv_channel.ts";
 * const [copy] = cvCopies(["https://mirror.example"], { referenceNumber: "r1" });
 * assert.strictEqual(copy.key, "scanCV:r1");
 * ```
 */
export function cvCopies(mirrors: readonly string[], cv: Record<string, unknown>): NewOutboxEntry[] {
  const reference = String(cv.referenceNumber);
  const payload = encoder.encode(JSON.stringify(cv));
  return copies(mirrors, { key: `scanCV:${reference}`, route: "scanCV", label: reference, payload });
}

/**
 * The copies of a CV list (`send_cvs_list`, route `allCVs`, body `{"cvs": [...]}`) for `mirrors`, keyed by
 * the list's text (the store keeps a digest of a long key): the same list sent again while its copy waits
 * replaces the waiting copy. The `allCVs` sender is added to {@link CV_ROUTES} with the API client's method.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { cvListCopies } from "./cv_channel.ts";
 * const [copy] = cvListCopies(["https://mirror.example"], [{ referenceNumber: "a" }, { referenceNumber: "b" }]);
 * assert.strictEqual(copy.route, "allCVs");
 * assert.strictEqual(copy.label, "a list of 2 CVs");
 * ```
 */
export function cvListCopies(
  mirrors: readonly string[],
  cvs: readonly Record<string, unknown>[],
): NewOutboxEntry[] {
  const text = JSON.stringify({ cvs });
  const label = `a list of ${cvs.length} CVs`;
  return copies(mirrors, { key: `allCVs:${text}`, route: "allCVs", label, payload: encoder.encode(text) });
}

/** The sender of a server's channel: one entry per request, on the entry's route. */
export function cvSender(client: RtcvApiClient): ChannelSender {
  return {
    async deliver(batch: readonly LeasedEntry[], signal: AbortSignal) {
      for (const { entry, payload } of batch) {
        const send = CV_ROUTES[entry.route];
        if (!send) throw new TypeError(`this client cannot send outbox entries of route ${entry.route}`);
        await send(client, payload, signal);
      }
    },
    classify: classifyRtcvFailure,
  };
}

/**
 * RT-CV's answers as outbox failures: no answer, a timeout, 408, 429 and 502-504 are transient; another
 * 4xx is a refusal (a dead letter at once); anything else (a 500 with a message, an unexpected answer)
 * counts towards the same-refusal limit.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { RtcvApiError } from "../rtcv/api_client.ts";
 * import { classifyRtcvFailure } from "./cv_channel.ts";
 * const failure = classifyRtcvFailure(new RtcvApiError("https://a.example", "answered 400: bad", { status: 400 }));
 * assert.deepStrictEqual(failure, { kind: "refused", message: "answered 400: bad", retryAfterMs: null });
 * ```
 */
export function classifyRtcvFailure(error: unknown): DeliveryFailure {
  if (!(error instanceof RtcvApiError)) {
    return {
      kind: "repeated",
      message: error instanceof Error ? error.message : String(error),
      retryAfterMs: null,
    };
  }
  const message = error.message.startsWith(error.origin + " ")
    ? error.message.slice(error.origin.length + 1)
    : error.message;
  const status = error.status;
  const retryAfterMs = error.retryAfterMs;
  if (error.missingRoute) return { kind: "refused", message, retryAfterMs }; // an older server: never
  if (status === null || status === 408 || status === 429 || (status >= 502 && status <= 504)) {
    return { kind: "transient", message, retryAfterMs };
  }
  if (status >= 400 && status < 500) return { kind: "refused", message, retryAfterMs };
  return { kind: "repeated", message, retryAfterMs };
}
