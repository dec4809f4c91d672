/**
 * The ingest adapter of the outbox: one channel per stream (`ingest/<data_type>/<platform>`), rows of up to
 * 100 items as entries, and a sender that joins rows into requests of at most 100 items, halving the
 * request size when the server answers 413.
 *
 * @module
 */

import type { ChannelSender } from "../outbox/outbox.ts";
import type { LeasedEntry } from "../outbox/outbox_store.ts";
import type { DeliveryFailure } from "../outbox/retry_rules.ts";
import type { RequestPolicy } from "../http/request_policy.ts";
import { IngestApiError, type IngestClient } from "./ingest_client.ts";
import { batchBody, splitItems } from "./item_rows.ts";
import { isDataType, isPlatform, type StreamId, streamName } from "./streams.ts";

const PREFIX = "ingest/";

/** The outbox channel of a stream. */
export function ingestChannel(stream: StreamId): string {
  return PREFIX + streamName(stream);
}

/**
 * The stream of an ingest channel, or null for another channel.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { ingestChannel, streamOfChannel } from "./ingest_channel.ts";
 * assert.deepStrictEqual(streamOfChannel(ingestChannel({ dataType: "job", platform: "boss" })),
 *   { dataType: "job", platform: "boss" });
 * ```
 */
export function streamOfChannel(channel: string): StreamId | null {
  if (!channel.startsWith(PREFIX)) return null;
  const [dataType, platform] = channel.slice(PREFIX.length).split("/");
  return isDataType(dataType) && isPlatform(platform) ? { dataType, platform } : null;
}

interface Piece {
  readonly count: number;
  readonly data: Uint8Array;
}

/** Delivers one stream's rows to the ingest server configured at the time of delivery. */
export class IngestSender implements ChannelSender {
  /** Items per request. */
  readonly batchItems: number;
  /** How long a request that is not full waits for more rows. */
  readonly lingerMs: number;
  readonly #stream: StreamId;
  readonly #client: () => IngestClient | null;
  readonly #policy: RequestPolicy;
  readonly #log: (message: string) => void;
  /** Lowered by a 413 answer: the server takes no more items per request. */
  #maxItems = Infinity;

  /** `client` is read at each delivery (the server `set_ingest` named last). */
  constructor(
    stream: StreamId,
    client: () => IngestClient | null,
    options: { batchItems: number; lingerMs: number; policy: RequestPolicy; log: (message: string) => void },
  ) {
    this.#stream = stream;
    this.#client = client;
    this.batchItems = options.batchItems;
    this.lingerMs = options.lingerMs;
    this.#policy = { ...options.policy, maxRetries: 0 }; // the outbox retries
    this.#log = options.log;
  }

  async deliver(batch: readonly LeasedEntry[], signal: AbortSignal): Promise<void> {
    const client = this.#client();
    if (client === null) throw new NotConfiguredError();
    await this.#send(
      client,
      batch.map(({ entry, payload }) => ({ count: entry.count, data: payload })),
      signal,
    );
  }

  async #send(client: IngestClient, pieces: Piece[], signal: AbortSignal): Promise<void> {
    const items = pieces.reduce((sum, piece) => sum + piece.count, 0);
    if (items > this.#maxItems) {
      const [head, tail] = splitPieces(pieces, Math.ceil(items / 2));
      if (head.length > 0 && tail.length > 0) {
        await this.#send(client, head, signal);
        await this.#send(client, tail, signal);
        return;
      }
    }
    try {
      await client.storeBatch(batchBody(this.#stream, pieces.map((piece) => piece.data)), {
        signal,
        policy: this.#policy,
      });
    } catch (error) {
      if (!(error instanceof IngestApiError) || error.status !== 413 || items <= 1) throw error;
      this.#maxItems = Math.ceil(items / 2);
      this.#log(
        `ingest: ${error.message}; sending ${streamName(this.#stream)} in batches of ${this.#maxItems}`,
      );
      await this.#send(client, pieces, signal);
    }
  }

  classify(error: unknown): DeliveryFailure {
    const message = error instanceof Error ? error.message : String(error);
    if (!(error instanceof IngestApiError)) return { kind: "transient", message, retryAfterMs: null };
    const status = error.status;
    const retryAfterMs = error.retryAfterMs;
    // No answer, a busy server, or one not taking this token or address (not the data's fault): retry.
    if (status === null || error.failure === "config" || [408, 429, 502, 503, 504].includes(status)) {
      return { kind: "transient", message, retryAfterMs };
    }
    if (status >= 400 && status < 500) return { kind: "refused", message, retryAfterMs };
    return { kind: "repeated", message, retryAfterMs };
  }
}

/** No ingest server is set yet: the rows wait. */
class NotConfiguredError extends Error {
  constructor() {
    super("no ingest server is set (set_ingest)");
  }
}

/** Splits pieces after `count` items, splitting a row at an item boundary where needed. */
function splitPieces(pieces: Piece[], count: number): [Piece[], Piece[]] {
  const head: Piece[] = [];
  let left = count;
  for (let index = 0; index < pieces.length; index++) {
    const piece = pieces[index];
    if (left <= 0) return [head, pieces.slice(index)];
    if (piece.count <= left) {
      head.push(piece);
      left -= piece.count;
      continue;
    }
    const split = splitItems(piece.data, left);
    if (split === null) return [[...head, piece], pieces.slice(index + 1)];
    head.push({ count: left, data: split[0] });
    return [head, [{ count: piece.count - left, data: split[1] }, ...pieces.slice(index + 1)]];
  }
  return [head, []];
}
