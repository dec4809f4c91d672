/**
 * The job-data dedupe index of a fleet on a real `redis-server`: check and mark are one atomic step, so
 * processes storing the same ids at once queue each id once. Ignored without `redis-server` (see
 * `redis_cache_test.ts` for the install line).
 *
 * @module
 */

import assert from "node:assert/strict";
import { DEDUPE_LIFETIME_MS } from "../src/ingest/dedupe_index.ts";
import { dedupeKey, PENDING_CLAIM_MS } from "../src/store/redis/redis_dedupe_index.ts";
import { RedisStore } from "../src/store/redis/redis_store.ts";
import { parseRedisUrl } from "../src/store/redis/redis_url.ts";
import { FAKE_INGEST_TOKEN, startFakeIngest } from "./fake_ingest.ts";
import { jobItems } from "./ingest_helpers.ts";
import { REDIS_MISSING, RedisServer } from "./helpers/redis_server.ts";
import { spawnClient } from "./helpers/spawn_client.ts";
import { ok } from "./live_helpers.ts";

const STREAM = { dataType: "job", platform: "boss" } as const;

Deno.test({
  name: "redis dedupe: two connections deciding overlapping ids at once accept each id exactly once",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start();
    const stores = [0, 1].map(() => new RedisStore(parseRedisUrl(redis.url), { timeoutMs: 2000 }));
    try {
      const [first, second] = await Promise.all(stores.map((store) => store.dedupeIndex()));
      const idsA = Array.from({ length: 500 }, (_, i) => `j-${i}`); // j-0 .. j-499
      const idsB = Array.from({ length: 500 }, (_, i) => `j-${i + 250}`); // j-250 .. j-749
      const [a, b] = await Promise.all([
        first.decide(STREAM, "job_id", idsA),
        second.decide(STREAM, "job_id", idsB),
      ]);
      const accepted = new Map<string, number>();
      idsA.forEach((id, i) => a.accepted[i] && accepted.set(id, (accepted.get(id) ?? 0) + 1));
      idsB.forEach((id, i) => b.accepted[i] && accepted.set(id, (accepted.get(id) ?? 0) + 1));
      assert.equal(accepted.size, 750, "every id accepted by one of them");
      assert.ok([...accepted.values()].every((count) => count === 1), "no id accepted twice");
      assert.deepEqual(a.marks, []);

      // Before its line is committed a claim is short; committed, it lasts 72 h; released, it is gone.
      const key = (id: string) => dedupeKey(STREAM, "job_id", id);
      const claimTtl = Number(await redis.cli("PTTL", key("j-0")));
      assert.ok(claimTtl > 0 && claimTtl <= PENDING_CLAIM_MS, `PTTL ${claimTtl}`);
      a.settle(true);
      b.settle(false);
      // The other process's release lands on its own: wait until Redis shows it.
      const deadline = Date.now() + 5000;
      while (await redis.cli("EXISTS", key("j-700")) !== "0") {
        assert.ok(Date.now() < deadline, "the failed line's claims were not released");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // A later decision of the same process waits for its own settling, so it sees its outcome.
      const again = await first.decide(STREAM, "job_id", ["j-0", "j-700", null]);
      assert.deepEqual(again.accepted, [false, true, true], "j-0 stored; j-700 released by the failed line");
      again.settle(true);
      assert.ok(Number(await redis.cli("PTTL", key("j-0"))) > DEDUPE_LIFETIME_MS - 60_000);
      const fromB = idsB.find((_, i) => b.accepted[i] && idsB[i] !== "j-700")!;
      assert.equal(await redis.cli("EXISTS", key(fromB)), "0");
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  },
});

Deno.test({
  name: "redis dedupe: job data from two processes with overlapping ids is delivered once",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start();
    const server = startFakeIngest();
    try {
      const env = { RTCV_SCRAPER_CLIENT_KV: redis.url, RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "3000" };
      await using a = spawnClient({ env });
      await using b = spawnClient({ env });
      await Promise.all([a.ready(), b.ready()]);
      for (const client of [a, b]) {
        await ok(client, { type: "set_ingest", content: { base_url: server.url, token: FAKE_INGEST_TOKEN } });
      }
      const store = (items: unknown[]) => ({
        type: "store_data",
        content: { data_type: "job", platform: "boss", items, dedupe_key: "job_id" },
      });
      // Both write their lines at once: ids 0-299 from one, 150-449 from the other, in batches of 50.
      const linesA = [0, 1, 2, 3, 4, 5].map((i) => store(jobItems(50, "p", i * 50)));
      const linesB = [3, 4, 5, 6, 7, 8].map((i) => store(jobItems(50, "p", i * 50)));
      const text = (lines: object[]) => lines.map((line) => JSON.stringify(line) + "\n").join("");
      await Promise.all([a.sendRaw(text(linesA)), b.sendRaw(text(linesB))]);
      const answers = [...await a.readLines(linesA.length), ...await b.readLines(linesB.length)]
        .map((line) => JSON.parse(line));
      const queued = answers.reduce((sum, answer) => {
        assert.equal(answer.type, "ok", JSON.stringify(answer));
        return sum + answer.content.queued;
      }, 0);
      const skipped = answers.reduce((sum, answer) => sum + answer.content.skipped, 0);
      assert.equal(queued, 450, "each id queued once across both processes");
      assert.equal(skipped, 150);
      for (const client of [a, b]) await ok(client, { type: "flush_data" });
      const ids = server.items("job", "boss").map((item) => item.job_id as string);
      assert.equal(ids.length, 450, "delivered once each");
      assert.equal(new Set(ids).size, 450);
      assert.equal((await a.finish()).status.code, 0);
      assert.equal((await b.finish()).status.code, 0);
    } finally {
      await server.close();
    }
  },
});
