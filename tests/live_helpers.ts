/**
 * Shared helpers of the live-mode tests (`tests/live_*_test.ts`): a client process in a temp dir with its own
 * Kv file, credentials lines for fake RT-CV servers, polling and timing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ClientProcess, parseAnswer, type ProtocolAnswer, spawnClient } from "./helpers/spawn_client.ts";
import sodium from "libsodium-wrappers";
import type { FakeRtcv } from "./fake_rtcv.ts";

await sodium.ready;

/** The scanCV route. */
export const SCAN_CV = "/api/v1/scraper/scanCV";
/** The warm-up route (prefix). */
export const SCANNED = "/api/v1/scraper/scannedReferenceNrs";
/** The secrets route (prefix). */
export const SECRETS = "/api/v1/secrets/myKey/";

/** A temp dir holding the client's working directory and its Kv file; removed by `await using`. */
export interface LiveDir extends AsyncDisposable {
  /** The working directory of the clients started in it. */
  readonly path: string;
  /** `RTCV_SCRAPER_CLIENT_KV`: a Kv file in the dir. */
  readonly kv: string;
}

/** A fresh temp dir with a Kv file path in it. */
export async function liveDir(): Promise<LiveDir> {
  const path = await Deno.makeTempDir({ prefix: "rtcv_live_test_" });
  return {
    path,
    kv: join(path, "cache.kv"),
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/**
 * Starts the client in `dir` (its Kv file as `RTCV_SCRAPER_CLIENT_KV`) with small timeouts by default and
 * reads the ready line. Bind it with `await using`.
 */
export async function startLiveClient(
  dir: LiveDir,
  env: Record<string, string> = {},
): Promise<ClientProcess> {
  const client = spawnClient({
    cwd: dir.path,
    env: {
      RTCV_SCRAPER_CLIENT_KV: dir.kv,
      RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "2000",
      RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "50",
      RTCV_SCRAPER_CLIENT_DRAIN_MS: "1000",
      ...env,
    },
  });
  try {
    await client.ready();
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}

/** `{server_location, api_key_id, api_key, primary}` of a fake. */
export function server(
  rtcv: FakeRtcv,
  primary?: boolean,
): { server_location: string; api_key_id: string; api_key: string; primary?: boolean } {
  return primary === undefined ? rtcv.wireCredentials() : { ...rtcv.wireCredentials(), primary };
}

/** The credentials line for a primary and its mirrors (array form; a single server is sent as an object). */
export function credentialsLine(
  primary: FakeRtcv,
  mirrors: FakeRtcv[] = [],
  type = "set_credentials",
): { type: string; content: unknown } {
  if (mirrors.length === 0) return { type, content: server(primary) };
  return { type, content: [server(primary, true), ...mirrors.map((mirror) => server(mirror, false))] };
}

/** Sends a command and asserts an `ok` answer; returns its content. */
export async function ok(client: ClientProcess, command: object): Promise<unknown> {
  const answer = await client.request(command);
  assert.equal(
    answer.type,
    "ok",
    `expected ok for ${JSON.stringify(command)}, got ${JSON.stringify(answer)}`,
  );
  return answer.content;
}

/** Sends a command and asserts an `error` answer; returns its message. */
export async function error(client: ClientProcess, command: object): Promise<string> {
  const answer = await client.request(command);
  assert.equal(
    answer.type,
    "error",
    `expected an error for ${JSON.stringify(command)}, got ${JSON.stringify(answer)}`,
  );
  return answer.content as string;
}

/** Sends a command and returns the answer and how long it took, in ms. */
export async function timed(
  client: ClientProcess,
  command: object,
): Promise<{ answer: ProtocolAnswer; ms: number }> {
  const started = performance.now();
  await client.send(command);
  const line = await client.readLine();
  const ms = performance.now() - started;
  return { answer: parseAnswer(line), ms };
}

/** Polls `condition` every 20 ms until it holds; fails with `message` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs: number, message: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`${message} (waited ${timeoutMs} ms)`);
    await sleep(20);
  }
}

/** Waits `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How many CVs with this reference number the fake accepted. */
export function received(rtcv: FakeRtcv, reference: string): number {
  return rtcv.receivedCvs.filter((cv) => cv.referenceNumber === reference).length;
}

/** How many scanCV requests (also failed ones) carried this reference number. */
export function scanRequests(rtcv: FakeRtcv, reference?: string): number {
  return rtcv.requestsTo(SCAN_CV).filter((request) => {
    if (reference === undefined) return true;
    const body = request.body as { cv?: { referenceNumber?: unknown } } | undefined;
    return body?.cv?.referenceNumber === reference;
  }).length;
}

/** A small CV. */
export function cv(reference: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { referenceNumber: reference, presentation: `CV ${reference}`, ...extra };
}

/** The `send_cv` line for {@link cv}. */
export function sendCv(reference: string, extra: Record<string, unknown> = {}): object {
  return { type: "send_cv", content: cv(reference, extra) };
}

/** The text of a file in the dir, or "" when it does not exist. */
export async function readIfExists(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) return "";
    throw cause;
  }
}

/** The list route of the newest servers. */
export const ALL_CVS = "/api/v1/scraper/allCVs";
/** The login-users routes of the newest servers (prefix). */
export const SCRAPER_USERS = "/api/v1/scraperUsers/";

/** A NaCl box key pair as the scraper configures it: base64 of 32 bytes each. */
export interface TestKeyPair {
  readonly public_key: string;
  readonly private_key: string;
}

/** A fresh key pair, made with libsodium (independent of the client's crypto code). */
export function newKeyPair(): TestKeyPair {
  const pair = sodium.crypto_box_keypair();
  const base64 = (bytes: Uint8Array) => sodium.to_base64(bytes, sodium.base64_variants.ORIGINAL);
  return { public_key: base64(pair.publicKey), private_key: base64(pair.privateKey) };
}

/** The text of every file in `dir` whose name starts with `prefix` (the Kv store and its side files). */
export async function storeText(dir: LiveDir, prefix = "cache.kv"): Promise<string> {
  let text = "";
  for (const entry of await Array.fromAsync(Deno.readDir(dir.path))) {
    if (entry.name.startsWith(prefix)) {
      text += new TextDecoder("latin1").decode(await Deno.readFile(join(dir.path, entry.name)));
    }
  }
  return text;
}
