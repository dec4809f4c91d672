/**
 * Drive `rtcv_scraper_client` from a Deno scraper: {@linkcode ScraperClient} starts the client as a child
 * process and gives each protocol command a typed method.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ScraperClient } from "./mod.ts";
 *
 * await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
 * await client.setMock();
 * if (!(await client.hasCachedReference("job-1"))) {
 *   assert.equal(await client.sendCv({ referenceNumber: "job-1", presentation: "Hello" }), true);
 * }
 * assert.equal(await client.hasCachedReference("job-1"), true);
 * ```
 *
 * @module
 */

export { ScraperClient } from "./src/module/scraper_client.ts";
export {
  ScraperClientError,
  type ScraperClientErrorKind,
  type ScraperClientErrorOptions,
} from "./src/module/scraper_client_error.ts";
export type {
  Cv,
  CvDocument,
  CvsListResult,
  MockOptions,
  SecretRequest,
  ServerCredentials,
  ServerRequest,
  ServerResponse,
  SpawnOptions,
  UserSecret,
  UserSecretRequest,
} from "./src/module/types.ts";
