/**
 * Live mode, mirrors (non-primary servers): a failing or hung mirror neither changes nor delays the answer,
 * and its CVs wait in the durable outbox until the mirror is back, in the same process or after a restart,
 * and are delivered exactly once.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { FAKE_RTCV_VARIANTS, startFakeRtcv } from "./fake_rtcv.ts";
import {
  credentialsLine,
  liveDir,
  ok,
  readIfExists,
  received,
  SCAN_CV,
  scanRequests,
  sendCv,
  sleep,
  startLiveClient,
  timed,
  waitFor,
} from "./live_helpers.ts";

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`mirror answering 503: the answer is the primary's and prompt; the CVs reach the mirror once it is back, once each [${variant}]`, async () => {
    await using primary = await startFakeRtcv({
      variant,
      hasMatches: (cv) => cv.referenceNumber !== "m503-2",
    });
    await using mirror = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir, { ENABLE_SCRAPER_CLIENT_LOG: "true" });
    await ok(client, credentialsLine(primary, [mirror]));
    mirror.failNext(Infinity, 503, { error: "mirror overloaded" }, { route: SCAN_CV });

    const references = ["m503-1", "m503-2", "m503-3"];
    for (const reference of references) {
      const { answer, ms } = await timed(client, sendCv(reference));
      assert.deepEqual(answer, { type: "ok", content: reference !== "m503-2" }, reference);
      // The mirror's own retries take 250 + 500 + 1000 ms (±50%) of backoff: the answer does not wait for them.
      assert.ok(ms < 500, `send_cv ${reference} waited for the failing mirror: ${ms.toFixed(0)} ms`);
    }
    await waitFor(() => scanRequests(mirror) >= 3, 2000, "the mirror is tried at once");
    // Each CV has its own attempts and backoff (first wait 50 ms here): every one is tried again.
    await waitFor(
      () => references.every((reference) => scanRequests(mirror, reference) >= 2),
      5000,
      "each CV is tried again in the background",
    );
    assert.equal(mirror.receivedCvs.length, 0);

    mirror.clearFailures();
    await waitFor(
      () => references.every((reference) => received(mirror, reference) >= 1),
      8000,
      "every CV reaches the mirror once it is healthy again",
    );
    // A positive signal that nothing is left to send: the outbox reports the mirror empty.
    const origin = new URL(mirror.url).origin;
    const deadline = Date.now() + 5000;
    let status = await ok(client, { type: "outbox_status" }) as {
      mirrors: Record<string, { pending: number }>;
    };
    while ((status.mirrors[origin]?.pending ?? 0) > 0 && Date.now() < deadline) {
      await sleep(20);
      status = await ok(client, { type: "outbox_status" }) as {
        mirrors: Record<string, { pending: number }>;
      };
    }
    assert.equal(status.mirrors[origin]?.pending ?? 0, 0, JSON.stringify(status));
    for (const reference of references) {
      assert.equal(received(mirror, reference), 1, `${reference} is delivered exactly once`);
      assert.equal(received(primary, reference), 1, `${reference} goes to the primary once`);
    }
    assert.equal((await client.finish()).status.code, 0);
    for (const reference of references) assert.equal(received(mirror, reference), 1);
    const log = await readIfExists(join(dir.path, "scraper_client.log"));
    assert.match(log, /failed \(answered 503: mirror overloaded\); again in \d+ ms/);
    assert.match(log, /outbox: delivered/);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`mirror hanging: the answer does not wait for the mirror's timeout; the CV arrives once it answers again [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant, hasMatches: true });
    await using mirror = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "600" });
    await ok(client, credentialsLine(primary, [mirror]));
    mirror.hang = true;

    const { answer, ms } = await timed(client, sendCv("hang-1"));
    assert.deepEqual(answer, { type: "ok", content: true });
    assert.ok(
      ms < 400,
      `send_cv waited for the hung mirror (timeout 600 ms × 4 attempts): ${ms.toFixed(0)} ms`,
    );
    assert.equal(await ok(client, { type: "has_cached_reference", content: "hang-1" }), true);
    await waitFor(() => scanRequests(mirror, "hang-1") >= 1, 2000, "the mirror is tried at once");

    mirror.hang = false;
    await waitFor(() => received(mirror, "hang-1") === 1, 8000, "the CV reaches the mirror once it answers");
    await sleep(300);
    assert.equal(received(mirror, "hang-1"), 1);
    assert.equal((await client.finish()).status.code, 0);
    assert.equal(received(mirror, "hang-1"), 1, "exactly once");
    assert.equal(received(primary, "hang-1"), 1);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`mirror down at exit: the CV stays in the outbox and is delivered once after a restart naming that mirror [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant, hasMatches: true });
    await using dir = await liveDir();
    const env = { RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "300", RTCV_SCRAPER_CLIENT_DRAIN_MS: "300" };

    // Process 1: the mirror passes the checks, then goes away (connections refused) before the CV is sent.
    const firstMirror = await startFakeRtcv({ variant });
    const mirrorPort = firstMirror.port;
    {
      await using client = await startLiveClient(dir, env);
      try {
        await ok(client, credentialsLine(primary, [firstMirror]));
      } finally {
        await firstMirror.close();
      }
      const { answer, ms } = await timed(client, sendCv("restart-1"));
      assert.deepEqual(answer, { type: "ok", content: true });
      assert.ok(ms < 500, `send_cv waited for the dead mirror: ${ms.toFixed(0)} ms`);
      const started = performance.now();
      const finished = await client.finish();
      assert.equal(finished.status.code, 0);
      assert.ok(
        performance.now() - started < 3000,
        "exit waits for the mirror only RTCV_SCRAPER_CLIENT_DRAIN_MS (plus an attempt in flight)",
      );
    }
    assert.equal(received(firstMirror, "restart-1"), 0);

    // The mirror comes back at the same URL; process 2 names it again with the same store.
    await using mirror = await startFakeRtcv({ variant, port: mirrorPort });
    assert.equal(mirror.url, firstMirror.url);
    {
      await using client = await startLiveClient(dir, env);
      await ok(client, credentialsLine(primary, [mirror]));
      await waitFor(
        () => received(mirror, "restart-1") === 1,
        5000,
        "the outbox is delivered after the restart",
      );
      assert.equal(await ok(client, sendCv("restart-1")), false, "cached by process 1: not sent again");
      assert.equal((await client.finish()).status.code, 0);
    }
    assert.equal(received(mirror, "restart-1"), 1);
    assert.equal(received(primary, "restart-1"), 1, "the primary got it once, from process 1");

    // Process 3: nothing is left in the outbox.
    {
      await using client = await startLiveClient(dir, env);
      await ok(client, credentialsLine(primary, [mirror]));
      await sleep(300);
      assert.equal((await client.finish()).status.code, 0);
    }
    assert.equal(received(mirror, "restart-1"), 1, "delivered exactly once over three processes");
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`mirror failing during process 1, healthy for process 2: delivered once, only to that mirror [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant });
    await using mirror = await startFakeRtcv({ variant });
    await using other = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    const env = { RTCV_SCRAPER_CLIENT_DRAIN_MS: "200" };
    mirror.failNext(Infinity, 502, "<html>bad gateway</html>", { route: SCAN_CV, retryAfter: "0" });

    {
      await using client = await startLiveClient(dir, env);
      await ok(client, credentialsLine(primary, [mirror]));
      assert.equal(await ok(client, sendCv("flip-1")), false);
      assert.equal((await client.finish()).status.code, 0);
    }
    assert.equal(received(mirror, "flip-1"), 0);
    assert.ok(scanRequests(mirror, "flip-1") >= 1);

    // A session naming another mirror does not deliver (nor lose) the first mirror's CVs.
    {
      await using client = await startLiveClient(dir, env);
      await ok(client, credentialsLine(primary, [other]));
      await sleep(200);
      assert.equal((await client.finish()).status.code, 0);
    }
    assert.equal(scanRequests(other, "flip-1"), 0);

    mirror.clearFailures();
    {
      await using client = await startLiveClient(dir, env);
      await ok(client, credentialsLine(primary, [mirror]));
      await waitFor(() => received(mirror, "flip-1") === 1, 5000, "delivered after the restart");
      await sleep(200);
      assert.equal((await client.finish()).status.code, 0);
    }
    assert.equal(received(mirror, "flip-1"), 1);
    assert.equal(received(primary, "flip-1"), 1);
    assert.equal(scanRequests(other, "flip-1"), 0);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`a former mirror named later as the primary (or the only server) still gets its waiting CVs, once [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant });
    await using mirror = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    const env = { RTCV_SCRAPER_CLIENT_DRAIN_MS: "200" };
    mirror.failNext(Infinity, 503, undefined, { route: SCAN_CV, retryAfter: "0" });
    {
      await using client = await startLiveClient(dir, env);
      await ok(client, credentialsLine(primary, [mirror]));
      assert.equal(await ok(client, sendCv("promoted-1")), false);
      assert.equal((await client.finish()).status.code, 0);
    }
    assert.equal(received(mirror, "promoted-1"), 0);

    mirror.clearFailures();
    {
      await using client = await startLiveClient(dir, env);
      await ok(client, credentialsLine(mirror));
      await waitFor(() => received(mirror, "promoted-1") === 1, 5000, "delivered to the new primary");
      await sleep(200);
      assert.equal((await client.finish()).status.code, 0);
    }
    assert.equal(received(mirror, "promoted-1"), 1);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`set_credentials again mid-session: answered without waiting for the old mirror deliveries; each CV arrives once [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant });
    await using mirror = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir, {
      RTCV_SCRAPER_CLIENT_DRAIN_MS: "3000",
      RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "50",
      RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "1500",
    });
    await ok(client, credentialsLine(primary, [mirror]));
    // The mirror refuses CVs for now: the old backend keeps retrying in the background.
    mirror.failNext(Infinity, 503, undefined, { route: SCAN_CV, retryAfter: "0" });
    assert.equal(await ok(client, sendCv("again-1")), false);
    await waitFor(() => scanRequests(mirror, "again-1") >= 2, 3000, "the mirror got attempts");

    const { answer, ms } = await timed(client, credentialsLine(primary, [mirror]));
    assert.equal(answer.type, "ok");
    assert.ok(ms < 1000, `set_credentials took ${ms} ms: it waited for the old backend's deliveries`);
    mirror.clearFailures();
    await waitFor(() => received(mirror, "again-1") === 1, 5000, "delivered by the new backend");
    await sleep(300);
    assert.equal((await client.finish()).status.code, 0);
    assert.equal(received(mirror, "again-1"), 1, "delivered once");
  });
}

Deno.test("a matched send_cv with a fast primary commits its mirror copy and its cache entry in one commit", async () => {
  await using primary = await startFakeRtcv({ hasMatches: true });
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  // The mirror's requests hang for the whole test (no timeout rewrites a copy).
  await using client = await startLiveClient(dir, {
    RTCV_SCRAPER_CLIENT_DRAIN_MS: "0",
    RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "60000",
  });
  await ok(client, credentialsLine(primary, [mirror]));
  mirror.hang = true; // the copies stay as they were committed (their deliveries hang)
  // A primary answering within 10 ms has the copies wait for its answer; a send answered within 9 ms had
  // one. A stall of this machine past that has them committed while it is awaited: such sends not counted.
  const fast: string[] = [];
  for (let i = 0; i < 8; i++) { // at most 8 in flight to the mirror (section 13)
    const { answer, ms } = await timed(client, sendCv(`one-commit-${i}`));
    assert.deepEqual(answer, { type: "ok", content: true });
    if (ms < 9) fast.push(`one-commit-${i}`);
  }
  assert.ok(fast.length >= 2, `only ${fast.length} of 8 sends answered within 9 ms: the machine is too busy`);
  await waitFor(() => scanRequests(mirror) === 8, 5000, "every copy is in flight");
  const kv = await Deno.openKv(dir.kv);
  try {
    const copies = await Array.fromAsync(kv.list<{ k: string }>({ prefix: ["outbox", "entry"] }));
    assert.equal(copies.length, 8);
    for (const copy of copies) {
      const reference = copy.value.k.replace(/^scanCV:/, "");
      const cached = await kv.get(["ref", reference]);
      assert.ok(cached.versionstamp !== null, `${reference} is cached`);
      if (!fast.includes(reference)) continue;
      assert.equal(cached.versionstamp, copy.versionstamp, `${reference}: one commit wrote both`);
    }
  } finally {
    kv.close();
  }
});

Deno.test("a slow primary: the mirrors' copies are committed and sent while it is awaited", async () => {
  await using primary = await startFakeRtcv({ hasMatches: true });
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  primary.latencyMs = 400;
  await client.send(sendCv("slow-primary-1"));
  await waitFor(
    () => received(mirror, "slow-primary-1") === 1,
    5000,
    "the mirror has the CV before the answer",
  );
  assert.equal(primary.receivedCvs.length, 0, "the primary has not answered yet");
  assert.deepEqual(JSON.parse(await client.readLine()), { type: "ok", content: true });
});

Deno.test("a slow primary: the mirror is asked in parallel; each copy arrives once, also after a failure", async () => {
  await using primary = await startFakeRtcv({ hasMatches: true });
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "20" });
  await ok(client, credentialsLine(primary, [mirror]));
  primary.latencyMs = 150;
  mirror.failNext(2, 503, { error: "busy" }, { route: SCAN_CV }); // the first two requests fail
  const references = Array.from({ length: 5 }, (_, i) => `early-${i}`);
  for (const reference of references) {
    const before = scanRequests(mirror, reference);
    assert.equal(await ok(client, sendCv(reference)), true);
    assert.ok(
      scanRequests(mirror, reference) > before,
      `${reference}: the mirror was asked before the answer`,
    );
  }
  const origin = new URL(mirror.url).origin;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const status = await ok(client, { type: "outbox_status" }) as {
      mirrors: Record<string, { pending: number }>;
    };
    if ((status.mirrors[origin]?.pending ?? 0) === 0) break;
    assert.ok(Date.now() < deadline, JSON.stringify(status));
    await sleep(20);
  }
  for (const reference of references) assert.equal(received(mirror, reference), 1, reference);
  assert.equal(scanRequests(mirror), references.length + 2, "two retries, nothing else");
  assert.equal((await client.finish()).status.code, 0);
  for (const reference of references) assert.equal(received(mirror, reference), 1, reference);
});
