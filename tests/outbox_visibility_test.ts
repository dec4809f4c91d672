/**
 * PROTOCOL.md section 11, what is visible and how the client ends, as a scraper sees it: `outbox_status`,
 * `ingest_status`, `dead_letters`, the health JSON and `/metrics` of a process without credentials count
 * every entry in the store (also those another process holds, and dead letters, for CVs and job data); all
 * deliveries share one drain deadline at exit; `next_server_request` stops waiting at the signal and at the
 * end of input.
 */

import assert from "node:assert/strict";
import { FAKE_INGEST_TOKEN, startFakeIngest } from "./fake_ingest.ts";
import { startFakeRtcv } from "./fake_rtcv.ts";
import {
  credentialsLine,
  liveDir,
  ok,
  SCAN_CV,
  scanRequests,
  sendCv,
  startLiveClient,
  waitFor,
} from "./live_helpers.ts";
import { outboxStatus, waitForStatus } from "./helpers/scripted_mirror.ts";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

Deno.test("a process without credentials sees every entry: held by another process, dead, CVs and job data; that process's exit shares one drain deadline", async () => {
  await using primary = await startFakeRtcv();
  await using held = await startFakeRtcv({ delayRoutes: new Map([[SCAN_CV, 60_000]]) }); // in flight
  await using refusing = await startFakeRtcv();
  refusing.failNext(Infinity, 400, { error: "referenceNumber must be set" }, { route: SCAN_CV });
  const ingest = startFakeIngest();
  await using dir = await liveDir();
  const apiKey = primary.wireCredentials().api_key;
  try {
    // Process A holds a CV copy in flight to `held` and two job items in flight; `refusing` made its copy
    // of the same CV a dead letter, and the ingest server refused one item.
    const a = await startLiveClient(dir, {
      RTCV_SCRAPER_CLIENT_DRAIN_MS: "1500",
      RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "20000",
    });
    try {
      await ok(a, credentialsLine(primary, [held, refusing]));
      await ok(a, { type: "set_ingest", content: { base_url: ingest.url, token: FAKE_INGEST_TOKEN } });
      ingest.refuse = (batch) => batch.items.some((item) => item.bad === true) ? 400 : null;
      const store = (items: unknown[]) => ({
        type: "store_data",
        content: { data_type: "job", platform: "boss", items },
      });
      await ok(a, store([{ job_id: "bad", bad: true }]));
      assert.deepEqual(await ok(a, { type: "flush_data" }), { delivered: 0, pending: 0, dead: 1 });
      ingest.latencyMs = 60_000;
      await ok(a, store([{ job_id: "w1" }, { job_id: "w2" }]));
      await ok(a, sendCv("held-1"));
      await waitFor(() => ingest.requests.length >= 2, 5000, "the job items are in flight");
      await waitFor(() => scanRequests(held, "held-1") === 1, 5000, "the CV is in flight");
      await waitForStatus(a, (status) => status.mirrors[refusing.origin]?.dead === 1);

      const port = freePort();
      await using b = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT: String(port) });
      const status = await outboxStatus(b);
      const text = JSON.stringify(status);
      assert.deepEqual(Object.keys(status.mirrors).sort(), [held.origin, refusing.origin].sort(), text);
      const heldLine = status.mirrors[held.origin];
      assert.deepEqual([heldLine.pending, heldLine.dead, heldLine.last_error], [1, 0, null], text);
      assert.ok(
        heldLine.oldest_age_s !== null && heldLine.oldest_age_s >= 0 && heldLine.oldest_age_s < 60,
        text,
      );
      assert.deepEqual(status.mirrors[refusing.origin], {
        pending: 0,
        dead: 1,
        oldest_age_s: null,
        last_error: "answered 400: referenceNumber must be set",
      });
      assert.deepEqual([status.ingest.pending, status.ingest.dead], [2, 1], text);
      assert.deepEqual(Object.keys(status.ingest.streams), ["job/boss"], text);
      assert.deepEqual(
        [status.ingest.streams["job/boss"].pending, status.ingest.streams["job/boss"].dead],
        [2, 1],
        text,
      );
      assert.match(String(status.ingest.last_error), /answered 400/);
      const ingestStatus = await ok(b, { type: "ingest_status" }) as Record<string, unknown>;
      assert.deepEqual([ingestStatus.delivered, ingestStatus.pending, ingestStatus.dead], [0, 2, 1]);

      // dead_letters: newest first (the CV died after the item), the documented fields only.
      const letters = await ok(b, { type: "dead_letters" }) as Record<string, unknown>[];
      assert.equal(letters.length, 2, JSON.stringify(letters));
      assert.deepEqual(Object.keys(letters[0]).sort(), [
        "at",
        "reason",
        "reference_number",
        "route",
        "server",
      ]);
      assert.deepEqual(
        [letters[0].server, letters[0].route, letters[0].reference_number, letters[0].reason],
        [refusing.origin, "scanCV", "held-1", "answered 400: referenceNumber must be set"],
      );
      assert.deepEqual(Object.keys(letters[1]).sort(), [
        "at",
        "data_type",
        "items",
        "platform",
        "reason",
        "server",
      ]);
      assert.deepEqual(
        [letters[1].server, letters[1].data_type, letters[1].platform, letters[1].items],
        ["ingest", "job", "boss", 1],
      );
      assert.match(String(letters[1].reason), /answered 400/);
      for (const letter of letters) assert.equal(new Date(String(letter.at)).toISOString(), letter.at);

      // The health JSON and /metrics: pending and dead per server and stream.
      const health = await (await fetch(`http://127.0.0.1:${port}/`)).json();
      assert.deepEqual(health.outbox_detail, {
        mirrors: { [held.origin]: { pending: 1, dead: 0 }, [refusing.origin]: { pending: 0, dead: 1 } },
        ingest: { "job/boss": { pending: 2, dead: 1 } },
      });
      assert.equal(health.outbox, 3);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      for (
        const [kind, target, state, value] of [
          ["cv", held.origin, "pending", 1],
          ["cv", refusing.origin, "dead", 1],
          ["ingest", "job/boss", "pending", 2],
          ["ingest", "job/boss", "dead", 1],
        ]
      ) {
        const line =
          `rtcv_scraper_client_outbox_items{kind="${kind}",target="${target}",state="${state}"} ${value}`;
        assert.ok(metrics.includes(line), `${line} in\n${metrics}`);
      }
      for (
        const shown of [
          text,
          JSON.stringify(ingestStatus),
          JSON.stringify(letters),
          JSON.stringify(health),
          metrics,
        ]
      ) {
        assert.ok(!shown.includes(apiKey) && !shown.includes(FAKE_INGEST_TOKEN), "a secret was shown");
      }
      assert.equal((await b.finish()).status.code, 0);

      // A's end of input: the CV and the job items wait for the same 1.5 s, not one after the other.
      const started = performance.now();
      const finished = await a.finish();
      const ms = performance.now() - started;
      assert.equal(finished.status.code, 0);
      assert.ok(ms < 1500 + 1000, `exited after ${ms.toFixed(0)} ms (drain 1500 ms)`);
    } finally {
      await a.close();
    }
  } finally {
    await ingest.close();
  }
});

Deno.test("dead_letters: newest first, 100 by default, at most {limit}", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv();
  mirror.failNext(Infinity, 400, { error: "referenceNumber must be set" }, { route: SCAN_CV });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  const references = Array.from({ length: 101 }, (_, i) => `dl-${i}`);
  for (const reference of references) await ok(client, sendCv(reference));
  await waitForStatus(client, (status) => status.mirrors[mirror.origin]?.dead === 101);
  const letters = await ok(client, { type: "dead_letters" }) as { reference_number: string; at: string }[];
  assert.equal(letters.length, 100);
  const times = letters.map((letter) => Date.parse(letter.at));
  assert.ok(times.every((at, i) => i === 0 || at <= times[i - 1]), "newest first");
  assert.ok(times[0] > times.at(-1)!, "the list spans some time");
  assert.equal(new Set(letters.map((letter) => letter.reference_number)).size, 100);
  assert.deepEqual(await ok(client, { type: "dead_letters", content: { limit: 3 } }), letters.slice(0, 3));
  assert.equal(
    (await ok(client, { type: "dead_letters", content: { limit: 500 } }) as unknown[]).length,
    101,
  );
  assert.equal((await client.finish()).status.code, 0);
});

Deno.test("next_server_request stops waiting at SIGTERM and at the end of input: answered null at once, not after the drain time", async () => {
  await using dir = await liveDir();
  for (const how of ["SIGTERM", "end of input"] as const) {
    await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_DRAIN_MS: "10000" });
    await client.send({ type: "next_server_request" });
    // Without credentials nothing can arrive: the wait lasts until the client stops. A ping with an id is
    // answered at once (not behind the wait): then the wait's line was read.
    await client.send({ type: "ping", id: "after-wait" });
    assert.deepEqual(JSON.parse(await client.readLine()), { type: "pong", id: "after-wait" });
    const started = performance.now();
    if (how === "SIGTERM") client.kill("SIGTERM");
    else await client.closeStdin();
    const finished = await client.waitForExit(5000);
    const ms = performance.now() - started;
    assert.equal(finished.status.code, 0, how);
    assert.ok(finished.rest.includes('{"type":"ok","content":null}'), `${how}: ${finished.restText}`);
    assert.ok(ms < 3000, `${how}: answered and exited after ${ms.toFixed(0)} ms (drain 10 s)`);
  }
});
