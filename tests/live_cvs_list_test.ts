/**
 * Live mode, `send_cvs_list` (PROTOCOL.md section 7): one `POST /api/v1/scraper/allCVs` with `{"cvs":[...]}`
 * to the primary and, through the outbox, to every mirror; each CV checked like send_cv; duplicates dropped;
 * the reference cache neither read nor written. Mock mode accepts lists too.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startFakeRtcv } from "./fake_rtcv.ts";
import {
  ALL_CVS,
  credentialsLine,
  cv,
  error,
  liveDir,
  ok,
  SCAN_CV,
  server,
  startLiveClient,
  waitFor,
} from "./live_helpers.ts";

const ZIP = { personalDetails: { zip: "1234 AB" } };

Deno.test("send_cvs_list: an array or {cvs}, one allCVs request, duplicates dropped (first kept), alias applied", async () => {
  await using rtcv = await startFakeRtcv({ variant: "newest" });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, { type: "set_credentials", content: server(rtcv) });

  const list = [
    cv("l-1", { ...ZIP, presentation: "first copy" }),
    { reference_number: "l-2", ...ZIP },
    cv("l-1", { presentation: "second copy" }),
    cv("l-3"),
  ];
  assert.deepEqual(await ok(client, { type: "send_cvs_list", content: list }), { sent: 3, duplicates: 1 });
  const requests = rtcv.requestsTo(ALL_CVS);
  assert.equal(requests.length, 1);
  assert.equal(requests[0].method, "POST");
  assert.deepEqual(requests[0].body, {
    cvs: [list[0], { referenceNumber: "l-2", ...ZIP }, list[3]],
  });
  assert.equal(rtcv.requestsTo(SCAN_CV).length, 0, "a list is not sent CV by CV");

  assert.deepEqual(await ok(client, { type: "send_cvs_list", content: { cvs: [cv("l-4")] } }), {
    sent: 1,
    duplicates: 0,
  });
  assert.equal(rtcv.receivedCvLists.length, 2);
  assert.deepEqual(rtcv.receivedCvLists[1].map((entry) => entry.referenceNumber), ["l-4"]);
});

Deno.test("send_cvs_list: a bad CV makes the command an error naming its index, and nothing is sent", async () => {
  await using rtcv = await startFakeRtcv({ variant: "newest" });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, { type: "set_credentials", content: server(rtcv) });

  const cases: [unknown, RegExp][] = [
    [[cv("a"), cv("b"), { referenceNumber: 12 }], /cvs\[2\]\.referenceNumber must be a non-empty string/],
    [[cv("a"), { referenceNumber: "" }], /cvs\[1\]\.referenceNumber must be a non-empty string/],
    [[cv("a"), "not a cv"], /cvs\[1\] must be an object/],
    [{ cvs: [{ presentation: "no reference" }] }, /cvs\[0\]\.referenceNumber/],
    [[], /at least one CV, got an empty list/],
    [{ cvs: [] }, /at least one CV/],
    [{ cvs: "x" }, /cvs/],
    ["x", /array of CVs/],
  ];
  for (const [content, expected] of cases) {
    const message = await error(client, { type: "send_cvs_list", content });
    assert.match(message, /^send_cvs_list: /);
    assert.match(message, expected, JSON.stringify(content));
  }
  assert.equal(rtcv.requestsTo(ALL_CVS).length, 0);
});

Deno.test("send_cvs_list neither reads nor writes the reference cache", async () => {
  await using rtcv = await startFakeRtcv({ variant: "newest", hasMatches: true });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, { type: "set_credentials", content: server(rtcv) });
  await ok(client, { type: "set_cached_reference", content: "cached-1" });

  assert.deepEqual(await ok(client, { type: "send_cvs_list", content: [cv("cached-1"), cv("new-1")] }), {
    sent: 2,
    duplicates: 0,
  });
  assert.deepEqual(rtcv.receivedCvLists[0].map((entry) => entry.referenceNumber), ["cached-1", "new-1"]);
  assert.equal(await ok(client, { type: "has_cached_reference", content: "new-1" }), false);
});

Deno.test("send_cvs_list to a primary and two mirrors: each gets the list once; a failing mirror gets it from the outbox", async () => {
  await using primary = await startFakeRtcv({ variant: "newest" });
  await using mirrorA = await startFakeRtcv({ variant: "newest" });
  await using mirrorB = await startFakeRtcv({ variant: "newest" });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirrorA, mirrorB]));
  mirrorB.failNext(Infinity, 503, { error: "busy" }, { route: ALL_CVS, retryAfter: "0" });

  assert.deepEqual(await ok(client, { type: "send_cvs_list", content: [cv("m-1"), cv("m-2")] }), {
    sent: 2,
    duplicates: 0,
  });
  assert.equal(primary.receivedCvLists.length, 1);
  await waitFor(
    () => mirrorB.requestsTo(ALL_CVS).length >= 5,
    10_000,
    "the live attempt and a background round",
  );
  mirrorB.clearFailures();
  await waitFor(
    () => mirrorA.receivedCvLists.length === 1 && mirrorB.receivedCvLists.length === 1,
    10_000,
    "mirrors",
  );
  assert.equal((await client.finish()).status.code, 0);
  for (const rtcv of [primary, mirrorA, mirrorB]) {
    assert.equal(rtcv.receivedCvLists.length, 1, rtcv.url);
    assert.deepEqual(rtcv.receivedCvLists[0].map((entry) => entry.referenceNumber), ["m-1", "m-2"]);
    assert.equal(rtcv.requestsTo(SCAN_CV).length, 0, "the outbox sent the list to allCVs, not scanCV");
  }
});

Deno.test("send_cvs_list of about 1 MB with a mirror: its waiting copy is stored and delivered once", async () => {
  await using primary = await startFakeRtcv({ variant: "newest" });
  await using mirror = await startFakeRtcv({ variant: "newest" });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  const filler = "x".repeat(3_500);
  const cvs = Array.from({ length: 300 }, (_, index) => ({ ...cv(`big-${index}`), presentation: filler }));
  assert.deepEqual(await ok(client, { type: "send_cvs_list", content: cvs }), { sent: 300, duplicates: 0 });
  await waitFor(() => mirror.receivedCvLists.length === 1, 10_000, "the mirror's copy");
  assert.equal((await client.finish()).status.code, 0);
  assert.equal(mirror.receivedCvLists.length, 1);
  assert.equal(mirror.receivedCvLists[0].length, 300);
});

Deno.test("send_cvs_list: a list waiting for a mirror at exit goes to its allCVs route after a restart, once", async () => {
  await using primary = await startFakeRtcv({ variant: "newest" });
  await using mirror = await startFakeRtcv({ variant: "newest" });
  await using dir = await liveDir();
  mirror.failNext(Infinity, 503, { error: "down" }, { route: ALL_CVS, retryAfter: "0" });
  {
    await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_DRAIN_MS: "100" });
    await ok(client, credentialsLine(primary, [mirror]));
    await ok(client, { type: "send_cvs_list", content: [cv("r-1"), cv("r-2")] });
    await ok(client, { type: "send_cv", content: cv("r-single") });
    assert.equal((await client.finish()).status.code, 0);
  }
  assert.equal(mirror.receivedCvLists.length, 0);
  mirror.clearFailures();
  {
    await using client = await startLiveClient(dir);
    await ok(client, credentialsLine(primary, [mirror]));
    await waitFor(
      () => mirror.receivedCvLists.length === 1 && mirror.receivedCvs.length === 1,
      10_000,
      "outbox",
    );
    assert.equal((await client.finish()).status.code, 0);
  }
  assert.deepEqual(mirror.receivedCvLists.map((list) => list.map((entry) => entry.referenceNumber)), [[
    "r-1",
    "r-2",
  ]]);
  assert.deepEqual(mirror.receivedCvs.map((entry) => entry.referenceNumber), ["r-single"]);
});

Deno.test("send_cvs_list: the primary's refusal is the command's error; an older primary has no allCVs route", async () => {
  await using newest = await startFakeRtcv({ variant: "newest" });
  await using older = await startFakeRtcv({ variant: "older" });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);

  await ok(client, { type: "set_credentials", content: server(newest) });
  const bad = await error(client, {
    type: "send_cvs_list",
    content: [cv("p-1", { personalDetails: { phoneNumber: "call me maybe" } })],
  });
  assert.equal(bad, `send_cvs_list: primary ${newest.origin} answered 500: invalid phone number`);
  assert.equal(newest.requestsTo(ALL_CVS).length, 1, "a refusal is not retried");

  await ok(client, { type: "set_credentials", content: server(older) });
  const missing = await error(client, { type: "send_cvs_list", content: [cv("o-1")] });
  assert.match(missing, /^send_cvs_list: primary .* has no allCVs route/);
  assert.ok(
    missing.includes(`${older.origin}`) && missing.includes(`answered 500: Cannot POST ${ALL_CVS}`),
    missing,
  );
  assert.match(missing, /send_cv/);
  assert.equal(older.requestsTo(ALL_CVS).length, 1, "a missing route is not retried");
});

Deno.test("send_cvs_list in mock mode: checked like live mode, answered without a server", async () => {
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  assert.match(await error(client, { type: "send_cvs_list", content: [cv("x")] }), /set_credentials first/);
  await ok(client, { type: "set_mock", content: {} });
  assert.deepEqual(await ok(client, { type: "send_cvs_list", content: [cv("x"), cv("x"), cv("y")] }), {
    sent: 2,
    duplicates: 1,
  });
  assert.match(
    await error(client, { type: "send_cvs_list", content: [cv("x"), {}] }),
    /cvs\[1\]\.referenceNumber/,
  );
});

Deno.test("send_cvs_list with an older mirror: its copy becomes a dead letter at once instead of being retried", async () => {
  await using primary = await startFakeRtcv({ variant: "newest" });
  await using mirror = await startFakeRtcv({ variant: "older" });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir, { ENABLE_SCRAPER_CLIENT_LOG: "true" });
  await ok(client, credentialsLine(primary, [mirror]));
  assert.deepEqual(await ok(client, { type: "send_cvs_list", content: [cv("old-m-1")] }), {
    sent: 1,
    duplicates: 0,
  });
  assert.equal(primary.receivedCvLists.length, 1);
  const log = join(dir.path, "scraper_client.log");
  let text = "";
  await waitFor(
    () => {
      try {
        text = Deno.readTextFileSync(log);
      } catch {
        text = ""; // not written yet
      }
      return text.includes("kept as a dead letter");
    },
    10_000,
    "the mirror's refusal is logged",
  );
  assert.match(text, /Cannot POST \/api\/v1\/scraper\/allCVs/);
  assert.equal((await client.finish()).status.code, 0);
  assert.equal(mirror.requestsTo(ALL_CVS).length, 1, "not retried");
});
