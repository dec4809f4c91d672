/**
 * The types of {@linkcode ScraperClient}'s methods: camelCase on the TypeScript side, turned into the
 * protocol's snake_case on the wire.
 *
 * @module
 */

/**
 * One RT-CV server and the API key for it, as `setCredentials` takes it (the wire's
 * `{server_location, api_key_id, api_key, primary?}`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ServerCredentials } from "./types.ts";
 * const server: ServerCredentials = {
 *   serverLocation: "https://rtcv.example.com",
 *   apiKeyId: "aaaaaaaaaaaaaaaaaaaaaaaa",
 *   apiKey: "the key",
 *   primary: true,
 * };
 * assert.match(server.apiKeyId, /^[0-9a-f]{24}$/); // RT-CV key ids are 24 hex characters
 * ```
 */
export interface ServerCredentials {
  /** The server's origin, starting with `http://` or `https://`. */
  readonly serverLocation: string;
  /** The id of the API key (24 hex characters on RT-CV). */
  readonly apiKeyId: string;
  /** The API key itself (a secret: the client never logs it). */
  readonly apiKey: string;
  /** With several servers exactly one is the primary; a single server is the primary anyway. */
  readonly primary?: boolean;
}

/**
 * Options of `setMock`: the secrets `getSecret` and friends answer in mock mode.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { MockOptions } from "./types.ts";
 * const mock: MockOptions = { secrets: { user: { username: "foo", password: "bar" } } };
 * assert.deepEqual(Object.keys(mock.secrets ?? {}), ["user"]); // what get_user_secret reads by default
 * ```
 */
export interface MockOptions {
  /** Secret values by key; `get_user_secret` wants `{username, password}`, `get_users_secret` an array of those. */
  readonly secrets?: Readonly<Record<string, unknown>>;
}

/**
 * A CV in RT-CV's shape. Only `referenceNumber` is required (the client also accepts `reference_number` and
 * sends it as `referenceNumber`); everything else is sent to RT-CV unchanged.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Cv } from "./types.ts";
 * const cv: Cv = { referenceNumber: "job-123", presentation: "Hello", driversLicenses: ["B"] };
 * assert.equal(JSON.parse(JSON.stringify(cv)).referenceNumber, "job-123"); // sent as is
 * ```
 */
export interface Cv {
  /** The scraped site's reference for this CV; also the cache key. */
  readonly referenceNumber: string;
  /** RFC 3339 time the CV was created. */
  readonly createdAt?: string;
  /** RFC 3339 time the CV last changed. */
  readonly lastChanged?: string;
  /** Educations, in RT-CV's shape. */
  readonly educations?: readonly unknown[];
  /** Work experiences, in RT-CV's shape. */
  readonly workExperiences?: readonly unknown[];
  /** Preferred job titles. */
  readonly preferredJobs?: readonly string[];
  /** Languages, in RT-CV's shape. */
  readonly languages?: readonly unknown[];
  /** Name, contact and address details, in RT-CV's shape. */
  readonly personalDetails?: Readonly<Record<string, unknown>>;
  /** Free text. */
  readonly presentation?: string;
  /** Driver's licence categories. */
  readonly driversLicenses?: readonly string[];
  /** Any other field RT-CV knows. */
  readonly [field: string]: unknown;
}

/**
 * Which secret `getSecret` reads (the wire's `{key, encryption_key}`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { SecretRequest } from "./types.ts";
 * const request: SecretRequest = { key: "api", encryptionKey: "the encryption key" };
 * assert.equal(request.key, "api");
 * ```
 */
export interface SecretRequest {
  /** The secret's key. */
  readonly key: string;
  /** The key the secret was encrypted with. */
  readonly encryptionKey: string;
}

/**
 * Which secret `getUserSecret` / `getUsersSecret` read; `key` defaults to `user` / `users`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { UserSecretRequest } from "./types.ts";
 * const request: UserSecretRequest = { encryptionKey: "the encryption key" };
 * assert.equal(request.key, undefined); // user / users by default
 * ```
 */
export interface UserSecretRequest {
  /** The secret's key; default `user` (`getUserSecret`) or `users` (`getUsersSecret`). */
  readonly key?: string;
  /** The key the secret was encrypted with. */
  readonly encryptionKey: string;
}

/**
 * A login stored as a secret.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { UserSecret } from "./types.ts";
 * const login: UserSecret = { username: "foo", password: "bar" };
 * assert.deepEqual(Object.keys(login), ["username", "password"]);
 * ```
 */
export interface UserSecret {
  /** The user name. */
  readonly username: string;
  /** The password. */
  readonly password: string;
}

/**
 * How {@linkcode ScraperClient.spawn} starts the client.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { SpawnOptions } from "./types.ts";
 * const options: SpawnOptions = {
 *   command: ["/bin/rtcv_scraper_client"],
 *   env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" },
 * };
 * assert.equal(options.command?.[0], "/bin/rtcv_scraper_client");
 * ```
 */
export interface SpawnOptions {
  /**
   * The client's argv, e.g. `["/bin/rtcv_scraper_client"]` for a compiled binary. Default: this package's
   * `main.ts` under `deno run -A` with the running Deno.
   */
  readonly command?: readonly string[];
  /** Variables added to the client's environment (the scraper's own environment is passed on too). */
  readonly env?: Readonly<Record<string, string>>;
  /** The client's working directory (where its logs and default store go); default the current one. */
  readonly cwd?: string;
  /** Where the client's stderr (warnings, start-up errors) goes: `inherit` (default) or `null` (dropped). */
  readonly stderr?: "inherit" | "null";
}

/** A request an RT-CV server sent the scraper over its websocket (`next_server_request`). */
export interface ServerRequest {
  /** The request's type, as the server named it. */
  readonly type: unknown;
  /** `"<server index>-<the server's id>"`: pass it back to `serverResponse`. */
  readonly id: string;
  /** The request's data. */
  readonly data: unknown;
}

/** The scraper's answer to a {@link ServerRequest} (`server_response`). */
export interface ServerResponse {
  /** The id of the request answered. */
  readonly id: string;
  /** The answer's type; default the request's. */
  readonly type?: unknown;
  /** The answer's data. */
  readonly data?: unknown;
}

/**
 * What `sendCvsList` resolves with (the `send_cvs_list` answer).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { CvsListResult } from "./types.ts";
 * const result: CvsListResult = { sent: 2, duplicates: 1 };
 * assert.equal(result.sent + result.duplicates, 3); // three CVs in the list, one a duplicate
 * ```
 */
export interface CvsListResult {
  /** CVs in the request that was sent. */
  readonly sent: number;
  /** CVs dropped because an earlier one in the list had the same reference number. */
  readonly duplicates: number;
}

/**
 * A CV document for `sendCvDocument`: the CV (the document's metadata) and the file, by path or as base64.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { CvDocument } from "./types.ts";
 * const document: CvDocument = { cv: { referenceNumber: "job-1" }, file: "/tmp/cv.pdf" };
 * assert.equal(document.contentType, undefined); // application/pdf
 * ```
 */
export interface CvDocument {
  /** The CV the document belongs to (reference number rules as for `sendCv`). */
  readonly cv: Cv;
  /** Path of the file, read by the client (relative to its working directory). */
  readonly file?: string;
  /** The file's bytes as base64, instead of `file`. */
  readonly fileBase64?: string;
  /** Its content type; default `application/pdf`. */
  readonly contentType?: string;
}
