/**
 * Why a {@linkcode ScraperClientError} was raised.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ScraperClientError, type ScraperClientErrorKind } from "./scraper_client_error.ts";
 * const retryable = (error: ScraperClientError) => (["exited", "protocol"] as ScraperClientErrorKind[]).includes(error.kind);
 * assert.equal(retryable(new ScraperClientError("the client exited with code 1", { kind: "exited" })), true);
 * assert.equal(retryable(new ScraperClientError("send_cv: ...", { kind: "answer" })), false);
 * ```
 */
export type ScraperClientErrorKind =
  /** The client answered the command with `{"type":"error"}`; the message is its content. */
  | "answer"
  /** The client process could not be started, or exited before it was ready. */
  | "spawn"
  /** The client process exited before answering the command. */
  | "exited"
  /** The client wrote something that is not a protocol answer (or an answer nobody asked for). */
  | "protocol"
  /** The command was called after `close()`. */
  | "closed";

/**
 * What a {@linkcode ScraperClientError} is built from, besides its message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ScraperClientError } from "./scraper_client_error.ts";
 * const error = new ScraperClientError("the client exited with code 1 before answering ping", {
 *   kind: "exited",
 *   command: "ping",
 *   exitCode: 1,
 * });
 * assert.deepEqual([error.kind, error.command, error.exitCode], ["exited", "ping", 1]);
 * ```
 */
export interface ScraperClientErrorOptions extends ErrorOptions {
  /** Why it was raised. */
  readonly kind: ScraperClientErrorKind;
  /** The command type the error belongs to (`send_cv`), when it belongs to one. */
  readonly command?: string | null;
  /** The exit code of the client, when it had exited. */
  readonly exitCode?: number | null;
}

/**
 * A command of {@linkcode ScraperClient} failed: the client answered an error line (`kind` `answer`; the
 * message is the client's, e.g. `send_cv: content.referenceNumber must be a non-empty string ...`), or the
 * client process could not start, exited, broke the protocol or was closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ScraperClient } from "./scraper_client.ts";
 * import { ScraperClientError } from "./scraper_client_error.ts";
 * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
 * // before set_credentials / set_mock:
 * await assert.rejects(client.sendCv({ referenceNumber: "abc" }), (error) => {
 *   assert.ok(error instanceof ScraperClientError);
 *   assert.equal(error.kind, "answer");
 *   assert.equal(error.command, "send_cv");
 *   assert.match(error.message, /^send_cv: .*set_credentials/);
 *   return true;
 * });
 * ```
 */
export class ScraperClientError extends Error {
  /** Why it was raised; see {@linkcode ScraperClientErrorKind}. */
  readonly kind: ScraperClientErrorKind;
  /** The command type it belongs to, or null. */
  readonly command: string | null;
  /** The client's exit code when it had exited, else null. */
  readonly exitCode: number | null;

  /** `message` is the client's error answer, or says what went wrong with the process. */
  constructor(message: string, options: ScraperClientErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ScraperClientError";
    this.kind = options.kind;
    this.command = options.command ?? null;
    this.exitCode = options.exitCode ?? null;
  }
}
