/**
 * The errors of the job-data ingestion sink that a scraper author can act on (besides
 * {@linkcode import("./ingest_client.ts").IngestApiError}, a failed request, and
 * {@linkcode import("./ingest_client.ts").IngestServerError}, a malformed address or token). The command
 * registry answers each with its message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IngestNotConfiguredError } from "./ingest_errors.ts";
 * assert.match(new IngestNotConfiguredError().message, /^no ingest server is set: call set_ingest first/);
 * ```
 *
 * @module
 */

import { ClientError } from "../errors.ts";

/** An ingest command that needs a server came before `set_ingest` (and the config named none). */
export class IngestNotConfiguredError extends ClientError {
  override name = "IngestNotConfiguredError";
  /** The message every such command answers. */
  constructor() {
    super('no ingest server is set: call set_ingest first (or configure "ingest" in the config)');
  }
}

/** An ingest command came after the sink was closed (the client is shutting down). */
export class IngestClosedError extends ClientError {
  override name = "IngestClosedError";
  /** The message every such command answers. */
  constructor() {
    super("the ingest sink is closed");
  }
}

/**
 * The sink could not use the store: it cannot be opened for the ingest outbox, or items could not be
 * written to it. The message says which, and why.
 */
export class IngestStoreError extends ClientError {
  override name = "IngestStoreError";
}
