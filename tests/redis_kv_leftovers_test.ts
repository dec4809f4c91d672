/**
 * A scraper switching to Redis at the upgrade: what still waits in the local Deno.Kv file (entries of the
 * version before the one outbox, and the outbox's own) is not delivered by a client on Redis, so the client
 * says so on stderr at start, naming the file, the counts and how to deliver them; without the file it says
 * nothing and creates none. Ignored without `redis-server`.
 */

import assert from "node:assert/strict";
import { CommitBatcher } from "../src/cache/commit_batcher.ts";
import { cvCopies } from "../src/outbox/cv_channel.ts";
import { KvOutboxStore } from "../src/outbox/kv_outbox_store.ts";
import { oldCvId, oldRunId, putOldCv, putOldRow, writeRows } from "./helpers/legacy_store.ts";
import { REDIS_MISSING, RedisServer } from "./helpers/redis_server.ts";
import { cv, liveDir, startLiveClient, waitFor } from "./live_helpers.ts";

const encoder = new TextEncoder();

Deno.test({
  name:
    "on Redis, the local Kv file's waiting entries are named on stderr at start, with how to deliver them",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start();
    await using dir = await liveDir();
    const file = `${dir.path}/rtcv_scraper_client.kv`; // the default file, used before the switch
    const kv = await Deno.openKv(file);
    const start = Date.now() - 60_000;
    await writeRows(kv, (sink) => {
      for (let i = 0; i < 3; i++) {
        putOldCv(
          sink,
          "cv_outbox",
          "https://mirror.example",
          oldCvId(start, i),
          JSON.stringify(cv(`old-${i}`)),
        );
      }
      const row = [oldRunId(start), "job", "boss", 0, 0];
      putOldRow(sink, ["ingest", "out", ...row], ["ingest", "out_part", ...row], [{ job_id: "1" }, {
        job_id: "2",
      }]);
    });
    const store = new KvOutboxStore(kv, new CommitBatcher(kv));
    await store.put(cvCopies(["https://mirror.example"], cv("new-1")), "", 0, Date.now());
    await store.put(
      [{
        channel: "ingest/job/boss",
        key: null,
        route: "ingest",
        label: "job",
        count: 4,
        payload: encoder.encode("{},{},{},{}"),
      }],
      "",
      0,
      Date.now(),
    );
    kv.close();

    await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_KV: redis.url });
    await waitFor(() => client.stderrSoFar().includes("waiting for delivery"), 10_000, "the line on stderr");
    const line = client.stderrSoFar().split("\n").find((text) => text.includes("waiting for delivery"))!;
    assert.ok(line.includes(`${file} holds 4 CV copies and 6 job items`), line);
    assert.ok(line.includes(`RTCV_SCRAPER_CLIENT_KV=${file}`), `says how to deliver them: ${line}`);
    assert.ok(!line.includes(redis.url), line);
    assert.equal((await client.finish()).status.code, 0);

    // Nothing was taken out of the file: a client on it still finds them all.
    const after = await Deno.openKv(file);
    try {
      assert.equal((await Array.fromAsync(after.list({ prefix: ["cv_outbox"] }))).length, 3);
    } finally {
      after.close();
    }
  },
});

Deno.test({
  name: "on Redis without a local Kv file (or with nothing waiting in it): no line, no file made",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start();
    await using dir = await liveDir();
    const client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_KV: redis.url });
    // The check runs before the first line is served: once the client has exited, its stderr is complete.
    const finished = await client.finish();
    assert.equal(finished.status.code, 0);
    assert.ok(!finished.stderr.includes("waiting for delivery"), finished.stderr);
    const names = await Array.fromAsync(Deno.readDir(dir.path), (entry) => entry.name);
    assert.ok(!names.some((name) => name.startsWith("rtcv_scraper_client.kv")), names.join(", "));

    // A file with only other rows (the cache of before): nothing to say either.
    const kv = await Deno.openKv(`${dir.path}/rtcv_scraper_client.kv`);
    await kv.set(["some", "cache", "row"], 1);
    kv.close();
    const again = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_KV: redis.url });
    const second = await again.finish();
    assert.equal(second.status.code, 0);
    assert.ok(!second.stderr.includes("waiting for delivery"), second.stderr);
  },
});
