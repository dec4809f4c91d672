/**
 * The outbox's store on a real `redis-server` (`RedisOutboxStore`), called as several processes would:
 * each "process" has its own connection. Times are passed in, as the outbox engine does, so lapsed leases
 * need no waiting. Ignored without `redis-server` (see `redis_cache_test.ts` for the install line).
 *
 * @module
 */

import assert from "node:assert/strict";
import { RedisOutboxStore } from "../src/outbox/redis_outbox_store.ts";
import type { NewOutboxEntry } from "../src/outbox/outbox_store.ts";
import { RedisStore } from "../src/store/redis/redis_store.ts";
import { parseRedisUrl } from "../src/store/redis/redis_url.ts";
import { REDIS_MISSING, RedisServer } from "./helpers/redis_server.ts";

const MIRROR = "http://mirror.example";
const encoder = new TextEncoder();

function cvEntry(reference: string, body = `{"referenceNumber":"${reference}"}`): NewOutboxEntry {
  return {
    channel: MIRROR,
    key: reference,
    route: "scanCV",
    label: reference,
    count: 1,
    payload: encoder.encode(body),
  };
}

/** Runs `fn` with `count` stores on one fresh Redis, each on its own connection (as separate processes). */
async function withStores(
  count: number,
  fn: (stores: RedisOutboxStore[], redis: RedisServer) => Promise<void>,
) {
  await using redis = await RedisServer.start();
  const opened = Array.from(
    { length: count },
    () => new RedisStore(parseRedisUrl(redis.url), { timeoutMs: 3000 }),
  );
  try {
    const stores = await Promise.all(opened.map(async (store) => {
      const { connection, batcher } = await store.open();
      return new RedisOutboxStore(connection, batcher);
    }));
    await fn(stores, redis);
  } finally {
    await Promise.all(opened.map((store) => store.close()));
  }
}

const none = new Set<string>();

Deno.test({
  name: "redis outbox store: a put is leased to its owner; another takes it over once the lease lapsed",
  ignore: REDIS_MISSING,
  async fn() {
    await withStores(2, async ([a, b]) => {
      const payload = new Uint8Array([0, 1, 2, 255, 254, 10, 13]); // bytes, not text
      const put = await a.put(
        [cvEntry("ref-1"), { channel: MIRROR, key: null, route: "allCVs", label: "list", count: 3, payload }],
        "A",
        10_000,
        1_000,
      );
      assert.equal(put.length, 2);
      assert.notEqual(put[0].entry.id, put[1].entry.id);
      assert.deepEqual((await a.status()).get(MIRROR)?.pending, 4);
      // Leased to A until 10 000: B finds nothing before, and learns when to look again.
      const early = await b.take(MIRROR, { owner: "B", now: 5_000, until: 35_000, limit: 10, skip: none });
      assert.deepEqual(early, { taken: [], nextCheckAt: 10_000 });
      // A died: after the lease B takes both, oldest first, with their payloads intact.
      const late = await b.take(MIRROR, { owner: "B", now: 10_001, until: 40_000, limit: 10, skip: none });
      assert.deepEqual(late.taken.map((item) => item.entry.id), put.map((item) => item.entry.id));
      assert.deepEqual(late.taken[1].payload, payload);
      assert.equal(late.taken[0].entry.key, "ref-1");
      assert.equal(late.taken[1].entry.key, null);
      assert.equal(late.taken[1].entry.count, 3);
      // A's stale ack (it was slow, not dead) changes nothing; B's removes them and counts them delivered.
      await a.ack(put.map((item) => item.lease), "A");
      assert.equal((await b.status()).get(MIRROR)?.pending, 4);
      await b.ack(late.taken.map((item) => item.lease), "B");
      const status = (await a.status()).get(MIRROR)!;
      assert.deepEqual(status, { pending: 0, dead: 0, delivered: 4, oldestAt: null, lastError: null });
      // Nothing left: not even the once-per-channel key, so a new put of ref-1 is a new entry.
      const again = await a.put([cvEntry("ref-1")], "A", 50_000, 45_000);
      assert.notEqual(again[0].entry.id, put[0].entry.id);
    });
  },
});

Deno.test({
  name: "redis outbox store: a keyed put of a waiting entry replaces it (same id, counted once)",
  ignore: REDIS_MISSING,
  async fn() {
    await withStores(2, async ([a, b]) => {
      const first = await a.put([cvEntry("ref-9", '{"v":1}')], "A", 10_000, 1_000);
      const second = await b.put([cvEntry("ref-9", '{"v":2}')], "B", 12_000, 2_000);
      assert.equal(second[0].entry.id, first[0].entry.id);
      assert.equal((await a.status()).get(MIRROR)?.pending, 1);
      // A's lease on the old copy is stale: its ack leaves the new copy for B to deliver.
      await a.ack([first[0].lease], "A");
      const taken = await b.take(MIRROR, { owner: "B", now: 12_001, until: 20_000, limit: 5, skip: none });
      assert.equal(taken.taken.length, 1);
      assert.equal(new TextDecoder().decode(taken.taken[0].payload), '{"v":2}');
    });
  },
});

Deno.test({
  name: "redis outbox store: processes taking at once never both get an entry",
  ignore: REDIS_MISSING,
  async fn() {
    await withStores(3, async (stores) => {
      const entries = Array.from({ length: 300 }, (_, i) => cvEntry(`ref-${i}`));
      await stores[0].put(entries, "P0", 1, 0); // leases that lapsed at once
      const got = new Map<string, string>();
      await Promise.all(stores.map(async (store, index) => {
        for (;;) {
          const { taken } = await store.take(MIRROR, {
            owner: `P${index}`,
            now: 10,
            until: 100_000,
            limit: 7,
            skip: none,
          });
          if (taken.length === 0) return;
          for (const item of taken) {
            assert.ok(
              !got.has(item.entry.id),
              `${item.entry.id} taken by ${got.get(item.entry.id)} and P${index}`,
            );
            got.set(item.entry.id, `P${index}`);
          }
          await store.ack(taken.map((item) => item.lease), `P${index}`);
        }
      }));
      assert.equal(got.size, 300);
      assert.deepEqual((await stores[1].status()).get(MIRROR)?.delivered, 300);
    });
  },
});

Deno.test({
  name: "redis outbox store: renew, reschedule, release, bury; status and dead letters newest first",
  ignore: REDIS_MISSING,
  async fn() {
    await withStores(1, async ([store]) => {
      const [one, two, three] = await store.put(
        [cvEntry("r1"), cvEntry("r2"), cvEntry("r3")],
        "A",
        10_000,
        1_000,
      );
      const renewed = await store.renew([one.lease, two.lease], "A", 60_000);
      assert.ok(renewed[0] !== null && renewed[1] !== null);
      // A renewal keeps the token (a lost answer must not strand the entry); a wrong token renews nothing.
      assert.equal(renewed[0].token, one.lease.token);
      assert.deepEqual(await store.renew([{ ...one.lease, token: "0" }], "A", 70_000), [null]);
      assert.deepEqual(await store.renew([renewed[1]], "Z", 70_000), [null], "nor another owner");
      await store.reschedule(renewed[0], "A", {
        nextAt: 30_000,
        attempts: 1,
        refusal: "answered 500: bad",
        refusals: 1,
        lastError: "answered 500: bad",
      });
      await store.release([three.lease], "A");
      // r3 is free at once, r1 waits for its backoff, r2 is still leased.
      const now = await store.take(MIRROR, { owner: "B", now: 11_000, until: 90_000, limit: 10, skip: none });
      assert.deepEqual(now.taken.map((item) => item.entry.label), ["r3"]);
      assert.equal(now.nextCheckAt, 30_000);
      const later = await store.take(MIRROR, {
        owner: "B",
        now: 30_000,
        until: 90_000,
        limit: 10,
        skip: none,
      });
      assert.deepEqual(later.taken.map((item) => item.entry.label), ["r1"]);
      assert.equal(later.taken[0].entry.attempts, 1);
      assert.equal(later.taken[0].entry.refusal, "answered 500: bad");
      await store.bury(later.taken[0].lease, "B", "answered 400: invalid", 31_000);
      await store.bury(now.taken[0].lease, "B", "answered 422: nope", 32_000);
      const status = (await store.status()).get(MIRROR)!;
      assert.deepEqual(status, {
        pending: 1,
        dead: 2,
        delivered: 0,
        oldestAt: 1_000,
        lastError: "answered 422: nope",
      });
      assert.deepEqual(await store.deadLetters(10), [
        { channel: MIRROR, route: "scanCV", label: "r3", count: 1, reason: "answered 422: nope", at: 32_000 },
        {
          channel: MIRROR,
          route: "scanCV",
          label: "r1",
          count: 1,
          reason: "answered 400: invalid",
          at: 31_000,
        },
      ]);
      assert.equal((await store.deadLetters(1)).length, 1);
    });
  },
});

Deno.test({
  name: "redis outbox store: a big payload comes back whole; a lease taken over is not renewed",
  ignore: REDIS_MISSING,
  async fn() {
    await withStores(2, async ([a, b]) => {
      const big = "履历".repeat(300_000); // ~1.8 MB of UTF-8
      const [mine] = await a.put([{ ...cvEntry("big"), payload: encoder.encode(big) }], "A", 100, 0);
      const stolen = await b.take(MIRROR, { owner: "B", now: 101, until: 1000, limit: 1, skip: none });
      assert.equal(new TextDecoder().decode(stolen.taken[0].payload), big);
      assert.deepEqual(await a.renew([mine.lease], "A", 5000), [null]);
      const again = await b.renew([stolen.taken[0].lease], "B", 5000);
      assert.ok(again[0] !== null);
      const other = await a.take(MIRROR, { owner: "C", now: 1001, until: 2000, limit: 1, skip: none });
      assert.equal(other.taken.length, 0, "the renewed lease holds past its first end");
    });
  },
});

Deno.test({
  name:
    "redis outbox store: a put sets the keys it is given (a match's cache entry) in its script, with their expiry",
  ignore: REDIS_MISSING,
  async fn() {
    await withStores(1, async ([store], redis) => {
      const also = { setPx: [["rtcv:ref:ref-5", "1", 72 * 3_600_000] as const] };
      const [copy] = await store.put([cvEntry("ref-5")], "A", 10_000, 1_000, also);
      assert.equal(copy.entry.key, "ref-5");
      const ttl = Number(await redis.cli("PTTL", "rtcv:ref:ref-5"));
      assert.ok(ttl > 71 * 3_600_000 && ttl <= 72 * 3_600_000, `PTTL ${ttl}`);
      assert.equal((await store.status()).get(MIRROR)?.pending, 1);
      // Deno.Kv mutations have no place on Redis: refused, nothing written.
      await assert.rejects(
        store.put([cvEntry("ref-6")], "A", 10_000, 1_000, [{ type: "set", key: ["x"], value: 1 }]),
        /cannot commit Deno.Kv mutations/,
      );
      assert.equal((await store.status()).get(MIRROR)?.pending, 1);
    });
  },
});
