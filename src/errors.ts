/**
 * The one base class of the errors a scraper author can act on. Services (the RT-CV client, live mode, the
 * session, the store, the ingest sink) throw their own subclasses; the command registry
 * (`src/commands/registry.ts`) is the one place that turns them into answers:
 * `{"type":"error","content":"<command>: <message>"}`. Any other error thrown under a command is a bug: it is
 * answered as `<command>: failed unexpectedly: ...` and reported on stderr.
 *
 * @module
 */

/**
 * Something could not be done, for a reason the scraper author can act on; the message says what and why,
 * and never holds a secret. Extend it with a named class per cause (`StoreError`, `RtcvApiError`, ...).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientError } from "./errors.ts";
 * class ExampleError extends ClientError {
 *   override name = "ExampleError";
 * }
 * const error = new ExampleError("no example server is set: call set_example first");
 * assert.ok(error instanceof ClientError);
 * assert.equal(error.message, "no example server is set: call set_example first");
 * ```
 */
export class ClientError extends Error {
  override name = "ClientError";
}
