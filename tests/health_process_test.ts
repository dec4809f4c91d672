/**
 * The health check and metrics as a deployment sees them: a client started with
 * RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT serves `GET /` and `GET /metrics` while it speaks the protocol.
 */
import assert from "node:assert/strict";
import { startFakeRtcv } from "./fake_rtcv.ts";
import { credentialsLine, liveDir, SCAN_CV, startLiveClient } from "./live_helpers.ts";
import { spawnClient } from "./helpers/spawn_client.ts";

/** A port that was free a moment ago on 127.0.0.1. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The value of one sample line of a Prometheus text page, or undefined. */
function sample(page: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of page.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = (match[2] ?? "").split(",").filter((part) => part !== "");
    if (wanted.every((label) => present.includes(label)) && present.length === wanted.length) {
      return Number(match[3]);
    }
  }
  return undefined;
}

Deno.test("health check: GET / and GET /metrics report mode, commands and cache lookups", async () => {
  const port = freePort();
  await using client = spawnClient({ env: { RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT: String(port) } });
  await client.ready();
  const base = `http://127.0.0.1:${port}`;

  let response = await fetch(`${base}/`);
  assert.equal(response.status, 200);
  assert.deepEqual({ ...(await response.json()), uptime_seconds: 0 }, {
    status: "ok",
    mode: "none",
    servers: [],
    outbox: 0,
    outbox_detail: { mirrors: {}, ingest: {} },
    uptime_seconds: 0,
  });

  assert.deepEqual(await client.request({ type: "set_mock" }), { type: "ok" });
  assert.deepEqual(await client.request({ type: "send_cv", content: { referenceNumber: "a" } }), {
    type: "ok",
    content: true,
  });
  assert.deepEqual(await client.request({ type: "send_cv", content: { referenceNumber: "a" } }), {
    type: "ok",
    content: false,
  });
  assert.equal((await client.request("not json")).type, "error");

  response = await fetch(`${base}/`);
  assert.equal((await response.json()).mode, "mock");
  response = await fetch(`${base}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const page = await response.text();
  assert.equal(sample(page, "rtcv_scraper_client_commands_total", { type: "send_cv", result: "ok" }), 2);
  assert.equal(sample(page, "rtcv_scraper_client_commands_total", { type: "set_mock", result: "ok" }), 1);
  assert.equal(sample(page, "rtcv_scraper_client_cache_lookups_total", { result: "miss" }), 1);
  assert.equal(sample(page, "rtcv_scraper_client_cache_lookups_total", { result: "hit" }), 1);
  assert.equal(sample(page, "rtcv_scraper_client_commands_total", { type: "(line)", result: "error" }), 1);

  const finished = await client.finish();
  assert.equal(finished.status.code, 0);
  assert.deepEqual(finished.rest, [], "the health server writes nothing on stdout");
});

Deno.test("health check: a failing primary turns GET / into 503; sends and retries are counted per server", async () => {
  await using rtcv = await startFakeRtcv();
  await using dir = await liveDir();
  const port = freePort();
  await using client = await startLiveClient(dir, {
    RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT: String(port),
    RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "200",
  });
  assert.deepEqual(await client.request(credentialsLine(rtcv)), { type: "ok" });
  assert.deepEqual(await client.request({ type: "send_cv", content: { referenceNumber: "ok-1" } }), {
    type: "ok",
    content: false,
  });
  const base = `http://127.0.0.1:${port}`;
  let status = await (await fetch(`${base}/`)).json();
  assert.equal(status.status, "ok");
  assert.equal(status.mode, "live");
  assert.deepEqual(status.servers, [rtcv.origin]);

  rtcv.failNext(Infinity, 400, { error: "nope" }, { route: SCAN_CV });
  for (let i = 0; i < 3; i++) {
    const answer = await client.request({ type: "send_cv", content: { referenceNumber: `bad-${i}` } });
    assert.equal(answer.type, "error");
  }
  const response = await fetch(`${base}/`);
  assert.equal(response.status, 503);
  status = await response.json();
  assert.equal(status.status, "failing");

  const page = await (await fetch(`${base}/metrics`)).text();
  assert.equal(sample(page, "rtcv_scraper_client_cv_sent_total", { server: rtcv.origin, result: "ok" }), 1);
  assert.equal(
    sample(page, "rtcv_scraper_client_cv_sent_total", { server: rtcv.origin, result: "error" }),
    3,
  );
  assert.ok(
    (sample(page, "rtcv_scraper_client_request_duration_seconds_count", { server: rtcv.origin }) ?? 0) >= 6,
  );
  rtcv.clearFailures();
  assert.equal((await client.finish()).status.code, 0);
});

Deno.test("health check: the outbox size follows CVs waiting for a mirror, across a restart, and drops when they are delivered", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  const port = freePort();
  const env = {
    RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT: String(port),
    RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "50",
    RTCV_SCRAPER_CLIENT_DRAIN_MS: "100",
  };
  const outbox = async () => (await (await fetch(`http://127.0.0.1:${port}/`)).json()).outbox;
  const gauge = async () =>
    sample(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), "rtcv_scraper_client_outbox_size");
  mirror.failNext(Infinity, 503, undefined, { route: SCAN_CV, retryAfter: "0" });
  {
    await using client = await startLiveClient(dir, env);
    assert.deepEqual(await client.request(credentialsLine(primary, [mirror])), { type: "ok" });
    for (const reference of ["wait-1", "wait-2"]) {
      assert.equal(
        (await client.request({ type: "send_cv", content: { referenceNumber: reference } })).type,
        "ok",
      );
    }
    assert.equal(await outbox(), 2);
    assert.equal(await gauge(), 2);
    assert.equal((await client.finish()).status.code, 0);
  }
  await using client = await startLiveClient(dir, env);
  assert.deepEqual(await client.request(credentialsLine(primary, [mirror])), { type: "ok" });
  assert.equal(await outbox(), 2, "the waiting CVs of the earlier run are counted");
  assert.equal(
    (await client.request({ type: "send_cv", content: { referenceNumber: "wait-3" } })).type,
    "ok",
  );
  assert.equal(await outbox(), 3);
  mirror.clearFailures();
  const deadline = Date.now() + 5000;
  while ((await outbox()) !== 0) {
    assert.ok(Date.now() < deadline, "the outbox did not empty");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(await gauge(), 0);
  assert.equal((await client.finish()).status.code, 0);
});
