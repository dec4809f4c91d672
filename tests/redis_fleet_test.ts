/**
 * A fleet of scrapers on one real `redis-server`: client processes, each in its own working directory as
 * on its own machine, share the cache and the one outbox. Each mirror gets each reference once; a process
 * killed with SIGKILL while it holds leases is taken over after the lease; Redis restarting keeps what was
 * acknowledged. Deliveries are counted at the fakes after a positive signal (`outbox_status` empty).
 * Ignored without `redis-server` (see `redis_cache_test.ts` for the install line).
 *
 * Each test prints one `fleet figures:` line (duplicates, losses, take-over time) for the closing note.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DEFAULT_FAKE_KEY, type FakeRtcv, sha512Hex, startFakeRtcv } from "./fake_rtcv.ts";
import type { ClientProcess } from "./helpers/spawn_client.ts";
import { REDIS_MISSING, RedisServer } from "./helpers/redis_server.ts";
import { credentialsLine, liveDir, ok, received, SCAN_CV, sendCv, startLiveClient } from "./live_helpers.ts";

interface Status {
  mirrors: Record<string, { pending: number; dead: number }>;
}

function figures(text: string): void {
  // deno-lint-ignore no-console
  console.error(`fleet figures: ${text}`);
}

/** Waits until `outbox_status` (which counts the whole fleet's entries in Redis) shows none for `mirror`. */
async function waitMirrorEmpty(client: ClientProcess, mirror: FakeRtcv, timeoutMs = 20_000): Promise<void> {
  const origin = new URL(mirror.url).origin;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await ok(client, { type: "outbox_status" }) as Status;
    if ((status.mirrors[origin]?.pending ?? 0) === 0) return;
    if (Date.now() > deadline) throw new Error(`the outbox still holds CVs: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Starts a client "on its own machine": its own working directory, the fleet's Redis as its store. */
async function machine(redis: RedisServer, env: Record<string, string> = {}) {
  const dir = await liveDir();
  const client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_KV: redis.url, ...env });
  return {
    client,
    /** The names of the files in its working directory. */
    async files(): Promise<string[]> {
      const names: string[] = [];
      for await (const entry of Deno.readDir(dir.path)) names.push(entry.name);
      return names;
    },
    async [Symbol.asyncDispose]() {
      await client.close();
      await dir[Symbol.asyncDispose]();
    },
  };
}

const lines = (commands: object[]) => commands.map((command) => JSON.stringify(command) + "\n").join("");

Deno.test({
  name: "redis fleet: processes sending the same and different CVs; the mirror gets each reference once",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start();
    await using primary = await startFakeRtcv({ hasMatches: true });
    await using mirror = await startFakeRtcv();
    mirror.latencyMs = 3; // deliveries of the processes overlap
    await using m0 = await machine(redis);
    await using m1 = await machine(redis);
    await using m2 = await machine(redis);
    const clients = [m0.client, m1.client, m2.client];
    await Promise.all(clients.map((client) => ok(client, credentialsLine(primary, [mirror]))));

    // The same CVs: the first machine sends them; the others find them cached fleet-wide and send nothing.
    const shared = Array.from({ length: 10 }, (_, i) => `shared-${i}`);
    for (const reference of shared) assert.equal(await ok(m0.client, sendCv(reference)), true);
    for (const client of [m1.client, m2.client]) {
      for (const reference of shared) assert.equal(await ok(client, sendCv(reference)), false);
    }
    // Different CVs, pipelined by all machines at once.
    const own = clients.map((_, index) => Array.from({ length: 30 }, (_, i) => `m${index}-${i}`));
    await Promise.all(
      clients.map((client, index) => client.sendRaw(lines(own[index].map((r) => sendCv(r))))),
    );
    for (const [index, client] of clients.entries()) {
      const answers = await client.readLines(own[index].length);
      assert.ok(answers.every((answer) => answer === '{"type":"ok","content":true}'), answers.join("\n"));
    }
    await waitMirrorEmpty(m1.client, mirror);
    for (const client of clients) assert.equal((await client.finish()).status.code, 0);
    // Everything lived in Redis: no machine wrote a local store.
    for (const m of [m0, m1, m2]) {
      assert.deepEqual((await m.files()).filter((name) => name.includes(".kv")), []);
    }

    const all = [...shared, ...own.flat()];
    const copies = all.map((reference) => received(mirror, reference));
    const duplicates = copies.reduce((sum, n) => sum + Math.max(0, n - 1), 0);
    const losses = copies.filter((n) => n === 0).length;
    for (const [i, reference] of all.entries()) {
      assert.equal(copies[i], 1, `mirror copies of ${reference}`);
      assert.equal(received(primary, reference), 1, `primary copies of ${reference}`);
    }
    figures(`3 processes, ${all.length} references: mirror duplicates ${duplicates}, losses ${losses}`);
  },
});

Deno.test({
  name:
    "redis fleet: a process killed with SIGKILL while it holds leases; another delivers them after the lease",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start();
    await using primary = await startFakeRtcv();
    await using mirror = await startFakeRtcv();
    const leaseMs = 1500;
    const env = { RTCV_SCRAPER_CLIENT_OUTBOX_LEASE_MS: String(leaseMs) };
    const references = Array.from({ length: 12 }, (_, i) => `leased-${i}`);
    await using doomed = await machine(redis, env);
    await ok(doomed.client, credentialsLine(primary, [mirror]));
    mirror.hang = true; // the mirror takes the requests and never answers: the entries stay leased
    for (const reference of references) await ok(doomed.client, sendCv(reference));
    const hung = () => mirror.requests.filter((request) => request.path === SCAN_CV).length;
    const deadline = Date.now() + 10_000;
    while (hung() === 0) {
      assert.ok(Date.now() < deadline, "no delivery was started");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const inFlight = hung();
    doomed.client.kill("SIGKILL");
    const killedAt = performance.now();
    await doomed.client.waitForExit().catch(() => {});
    mirror.hang = false;

    await using heir = await machine(redis, env);
    await ok(heir.client, credentialsLine(primary, [mirror]));
    await waitMirrorEmpty(heir.client, mirror);
    const takeoverMs = performance.now() - killedAt;
    for (const reference of references) assert.equal(received(mirror, reference), 1, reference);
    assert.ok(
      takeoverMs >= leaseMs * 0.5,
      `taken over after ${takeoverMs} ms: before the lease could lapse?`,
    );
    assert.equal((await heir.client.finish()).status.code, 0);
    figures(
      `SIGKILL with ${references.length} entries leased (${inFlight} requests in flight): losses 0, ` +
        `duplicates 0, take-over after ${Math.round(takeoverMs)} ms (lease ${leaseMs} ms)`,
    );
  },
});

Deno.test({
  name: "redis fleet: CVs waiting in the shared outbox survive a Redis restart and are delivered once",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start();
    await using primary = await startFakeRtcv();
    await using mirror = await startFakeRtcv();
    // A short lease: an outbox call whose answer the restart cut off leaves its entries leased for that long.
    await using m0 = await machine(redis, {
      RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "100",
      RTCV_SCRAPER_CLIENT_OUTBOX_LEASE_MS: "2000",
    });
    await ok(m0.client, credentialsLine(primary, [mirror]));
    mirror.failNext(Infinity, 503, { error: "mirror overloaded" }, { route: SCAN_CV });
    const references = Array.from({ length: 8 }, (_, i) => `restart-${i}`);
    for (const reference of references) await ok(m0.client, sendCv(reference));
    const before = await ok(m0.client, { type: "outbox_status" }) as Status;
    assert.equal(before.mirrors[new URL(mirror.url).origin].pending, references.length);
    // The waiting copies are in Redis, and the api key (nor its hash) is not.
    const stored = await redis.allValues();
    assert.ok(stored.includes("restart-7"), "the payloads are in Redis");
    assert.ok(!stored.includes(DEFAULT_FAKE_KEY.apiKey));
    assert.ok(!stored.includes(await sha512Hex(DEFAULT_FAKE_KEY.apiKey)));
    await redis.restart();
    mirror.clearFailures();
    // The same process resumes: the entries acknowledged before the restart are still in Redis.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const answer = await m0.client.request({ type: "outbox_status" });
      const pending = answer.type === "ok"
        ? (answer.content as Status).mirrors[new URL(mirror.url).origin]?.pending ?? 0
        : -1; // an error while Redis is coming back
      if (pending === 0) break;
      assert.ok(Date.now() < deadline, `still waiting: ${JSON.stringify(answer)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const reference of references) assert.equal(received(mirror, reference), 1, reference);
    // New CVs after the restart go through the outbox too (its scripts are loaded into Redis again).
    await ok(m0.client, sendCv("after-restart"));
    await waitMirrorEmpty(m0.client, mirror);
    assert.equal(received(mirror, "after-restart"), 1);
    assert.equal((await m0.client.finish()).status.code, 0);
  },
});
