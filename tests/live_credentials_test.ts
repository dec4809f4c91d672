/**
 * Live mode, `set_credentials`: the forms of the line, the checks against every server, the cache warm-up,
 * and that a failed line leaves the session as it was. The client runs as a child process against fake
 * RT-CV servers on 127.0.0.1.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DEFAULT_FAKE_KEY,
  FAKE_RTCV_VARIANTS,
  type FakeRtcv,
  type FakeRtcvVariant,
  rtcvAuthHeader,
  sha512Hex,
  startFakeRtcv,
} from "./fake_rtcv.ts";
import {
  credentialsLine,
  error,
  liveDir,
  ok,
  readIfExists,
  received,
  SCAN_CV,
  SCANNED,
  scanRequests,
  sendCv,
  server,
  startLiveClient,
} from "./live_helpers.ts";

const HEALTH = "/api/v1/health";
const KEYINFO = "/api/v1/auth/keyinfo";

Deno.test("set_credentials with one server object: health, key check and warm-up, then send_cv uses it", async () => {
  await using rtcv = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);

  assert.equal(await ok(client, { type: "set_credentials", content: server(rtcv) }), undefined);
  assert.deepEqual(
    rtcv.requests.map((request) => `${request.method} ${request.path}`),
    [`GET ${HEALTH}`, `GET ${KEYINFO}`, `GET ${SCANNED}/since/days/30`],
  );
  const header = await rtcvAuthHeader(DEFAULT_FAKE_KEY.apiKeyId, DEFAULT_FAKE_KEY.apiKey);
  assert.equal(header.length, 159);
  for (const request of rtcv.requests.slice(1)) assert.equal(request.authorization, header);

  assert.equal(await ok(client, sendCv("one-1")), false);
  assert.equal(received(rtcv, "one-1"), 1);
  const scan = rtcv.requestsTo(SCAN_CV)[0];
  assert.equal(scan.authorization, header);
  assert.match(scan.contentType ?? "", /^application\/json/);
  assert.equal((await client.finish()).status.code, 0);
});

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`set_credentials with a one-element array: that server is the primary without saying so [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant, hasMatches: true });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);

    await ok(client, { type: "set_credentials", content: [server(rtcv)] });
    assert.equal(await ok(client, sendCv("arr-1")), true);
    assert.equal(received(rtcv, "arr-1"), 1);
  });
}

Deno.test("set_credentials array and set_multiple_credentials: every server checked, warm-up from the primary only", async () => {
  await using primary = await startFakeRtcv({ scannedReferenceNrs: ["w1"] });
  await using mirrorA = await startFakeRtcv({ scannedReferenceNrs: ["from-mirror"] });
  await using mirrorB = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);

  // Array form under set_credentials, the primary not listed first.
  await ok(client, { type: "set_credentials", content: [server(mirrorA, false), server(primary, true)] });
  for (const rtcv of [primary, mirrorA]) {
    assert.equal(rtcv.requestsTo(HEALTH).length, 1);
    assert.equal(rtcv.requestsTo(KEYINFO).length, 1);
  }
  assert.equal(primary.requestsTo(SCANNED).length, 1);
  assert.equal(mirrorA.requestsTo(SCANNED).length, 0, "the warm-up asks the primary only");
  assert.equal(await ok(client, { type: "has_cached_reference", content: "w1" }), true);
  assert.equal(await ok(client, { type: "has_cached_reference", content: "from-mirror" }), false);

  await ok(client, credentialsLine(primary, [mirrorA, mirrorB], "set_multiple_credentials"));
  assert.equal(mirrorB.requestsTo(KEYINFO).length, 1);
  assert.equal(await ok(client, sendCv("multi-1")), false);
  assert.equal((await client.finish()).status.code, 0); // exit drains the mirrors
  for (const rtcv of [primary, mirrorA, mirrorB]) assert.equal(received(rtcv, "multi-1"), 1, rtcv.url);
});

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`set_credentials with a wrong key: error names the server and the step, never the key [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    const wrongKey = "wrong-key-7d1e0c5b9a";

    const message = await error(client, {
      type: "set_credentials",
      content: { ...server(rtcv), api_key: wrongKey },
    });
    assert.match(message, /^set_credentials: /);
    assert.ok(message.includes(rtcv.origin), message);
    assert.match(message, /key check/);
    assert.match(message, /401/);
    assert.match(message, /401: auth header is invalid/);
    assert.ok(!message.includes(wrongKey), message);
    assert.ok(!message.includes(await sha512Hex(wrongKey)), message);
    assert.equal(rtcv.requestsTo(KEYINFO).length, 1, "a 401 is not retried");
    assert.equal(rtcv.requestsTo(SCANNED).length, 0, "no warm-up after a failed check");

    // Still no session: commands that need a server say so.
    assert.match(await error(client, sendCv("x")), /set_credentials first/);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`set_credentials: a mirror failing its check is an error naming that mirror [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant });
    await using mirror = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    mirror.failNext(1, 500, { error: "database is gone" }, { route: HEALTH });

    const message = await error(client, credentialsLine(primary, [mirror]));
    assert.match(message, /mirror/);
    assert.ok(message.includes(mirror.origin), message);
    assert.match(message, /health check/);
    assert.match(message, /database is gone/);
    assert.ok(!message.includes(primary.origin), `only the failing server is named: ${message}`);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`set_credentials with a key without the scraper role: error says so [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant, keys: [{ ...DEFAULT_FAKE_KEY, roles: [2] }] });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);

    const message = await error(client, { type: "set_credentials", content: server(rtcv) });
    assert.ok(message.includes(rtcv.origin), message);
    assert.match(message, /scraper role/);
    assert.ok(!message.includes(DEFAULT_FAKE_KEY.apiKey), message);
    assert.equal(rtcv.requestsTo(SCANNED).length, 0);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`set_credentials: primary rules and locations are checked before any server is contacted [${variant}]`, async () => {
    await using a = await startFakeRtcv({ variant });
    await using b = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);

    const noPrimary = await error(client, {
      type: "set_multiple_credentials",
      content: [server(a), server(b)],
    });
    assert.match(noPrimary, /exactly one/);
    assert.match(noPrimary, /primary/);
    assert.match(noPrimary, /found 0/);

    const twoPrimaries = await error(client, {
      type: "set_credentials",
      content: [server(a, true), server(b, true)],
    });
    assert.match(twoPrimaries, /primary/);
    assert.match(twoPrimaries, /found 2/);

    for (const location of ["ftp://127.0.0.1:1", "127.0.0.1:8080", ""]) {
      const message = await error(client, {
        type: "set_credentials",
        content: [server(a, true), { ...server(b, false), server_location: location }],
      });
      assert.match(message, /content\[1\]\.server_location/);
      assert.match(message, /http:\/\//);
    }
    const emptyKey = await error(client, {
      type: "set_multiple_credentials",
      content: [{ ...server(a), api_key: "" }],
    });
    assert.match(emptyKey, /api_key/);
    assert.match(await error(client, { type: "set_credentials", content: [] }), /at least one/);
    assert.match(await error(client, { type: "set_credentials" }), /server object/);

    assert.equal(a.requests.length, 0);
    assert.equal(b.requests.length, 0);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`a failed set_credentials leaves mock mode active [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);

    await ok(client, { type: "set_mock", content: { secrets: { s: { v: 1 } } } });
    await error(client, { type: "set_credentials", content: { ...server(rtcv), api_key: "not-the-key" } });
    assert.equal(await ok(client, sendCv("mock-1")), true, "the mock answers true for a new CV");
    assert.equal(await ok(client, sendCv("mock-1")), false);
    assert.deepEqual(await ok(client, { type: "get_secret", content: { key: "s", encryption_key: "x" } }), {
      v: 1,
    });
    assert.equal(scanRequests(rtcv), 0, "nothing went to the server whose check failed");
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`a failed set_credentials leaves the earlier live servers in use [${variant}]`, async () => {
    await using first = await startFakeRtcv({ variant });
    await using second = await startFakeRtcv({ variant });
    await using broken = await startFakeRtcv({ variant, keys: [{ ...DEFAULT_FAKE_KEY, roles: [2] }] });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);

    await ok(client, { type: "set_credentials", content: server(first) });
    // A new set whose primary is fine but whose mirror fails its check.
    await error(client, credentialsLine(second, [broken]));
    assert.equal(await ok(client, sendCv("keep-1")), false);
    assert.equal((await client.finish()).status.code, 0);
    assert.equal(received(first, "keep-1"), 1);
    assert.equal(scanRequests(second), 0);
    assert.equal(scanRequests(broken), 0);
  });
}

Deno.test("warm-up: reference numbers scanned recently are cached before any send_cv", async () => {
  await using rtcv = await startFakeRtcv({ scannedReferenceNrs: ["a", "b"], hasMatches: true });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);

  await ok(client, { type: "set_credentials", content: server(rtcv) });
  assert.equal(await ok(client, { type: "has_cached_reference", content: "a" }), true);
  assert.equal(await ok(client, { type: "get_cached_reference", content: "b" }), true);
  assert.equal(await ok(client, { type: "has_cached_reference", content: "c" }), false);
  assert.equal(await ok(client, sendCv("a")), false, "a warmed-up reference is not sent again");
  assert.equal(scanRequests(rtcv), 0);
});

/** What the warm-up route may answer; each case must leave set_credentials ok and the warm-up skipped. */
const WARM_UP_FAILURES: {
  name: string;
  variant: FakeRtcvVariant;
  setup(rtcv: FakeRtcv): void;
  logged: RegExp;
}[] = [
  {
    name: "the newest server's 500 Cannot GET",
    variant: "newest",
    setup() {},
    logged: /answered 500: Cannot GET \/api\/v1\/scraper\/scannedReferenceNrs\/since\/days\/30/,
  },
  {
    name: "a 404",
    variant: "older",
    setup: (rtcv) => rtcv.notFoundRoutes.add(SCANNED),
    logged: /answered 404: route not found/,
  },
  {
    name: "a 500 with another message",
    variant: "older",
    setup: (rtcv) => rtcv.failNext(1, 500, { error: "query failed" }, { route: SCANNED }),
    logged: /answered 500: query failed/,
  },
  {
    name: "junk (not JSON)",
    variant: "older",
    setup: (rtcv) => rtcv.failNext(1, 200, "<html>hello</html>", { route: SCANNED }),
    logged: /non-JSON body: <html>hello<\/html>/,
  },
  {
    name: "junk (JSON of another shape)",
    variant: "older",
    setup: (rtcv) => rtcv.failNext(1, 200, { numbers: [1, 2] }, { route: SCANNED }),
    logged: /expected an array of strings/,
  },
  {
    name: "no answer within the timeout",
    variant: "older",
    setup: (rtcv) => rtcv.delayRoutes.set(SCANNED, 5_000),
    logged: /did not answer within 500 ms \(1 attempt\)/,
  },
];

for (const failure of WARM_UP_FAILURES) {
  Deno.test(`warm-up is best effort: ${failure.name} leaves set_credentials ok, skipped and logged`, async () => {
    await using rtcv = await startFakeRtcv({ variant: failure.variant, hasMatches: true });
    failure.setup(rtcv);
    await using dir = await liveDir();
    await using client = await startLiveClient(dir, {
      ENABLE_SCRAPER_CLIENT_LOG: "true",
      RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "500",
    });

    await ok(client, { type: "set_credentials", content: server(rtcv) });
    assert.equal(rtcv.requestsTo(SCANNED).length, 1, "the warm-up is tried once, not retried");
    assert.equal(await ok(client, sendCv("after-warm-up")), true, "the session works");
    assert.equal(received(rtcv, "after-warm-up"), 1);
    assert.equal((await client.finish()).status.code, 0);
    const log = await readIfExists(join(dir.path, "scraper_client.log"));
    const line = log.split("\n").find((entry) => entry.includes("warm-up skipped")) ?? "";
    assert.ok(
      line.includes("GET /api/v1/scraper/scannedReferenceNrs/since/days/30"),
      `names the route: ${log}`,
    );
    assert.ok(line.includes(rtcv.origin), line);
    assert.match(line, failure.logged);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`health and key check failures stay errors naming the server [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    rtcv.failNext(1, 500, { error: "database is gone" }, { route: HEALTH });
    const health = await error(client, { type: "set_credentials", content: server(rtcv) });
    assert.match(health, /health check failed/);
    assert.ok(health.includes(`${rtcv.origin} answered 500: database is gone`), health);
    rtcv.failNext(1, 500, { error: "keys table is gone" }, { route: KEYINFO });
    const key = await error(client, { type: "set_credentials", content: server(rtcv) });
    assert.match(key, /key check failed/);
    assert.ok(key.includes(`${rtcv.origin} answered 500: keys table is gone`), key);
    assert.match(await error(client, sendCv("x")), /set_credentials first/, "the session did not change");
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`set_credentials with one server object: the error names the invalid field [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);

    const badLocation = await error(client, {
      type: "set_credentials",
      content: { ...server(rtcv), server_location: "ftp://127.0.0.1:1" },
    });
    assert.match(
      badLocation,
      /server_location must start with http:\/\/ or https:\/\//,
      "the single-object form must say which field is wrong",
    );
    const emptyKey = await error(client, {
      type: "set_credentials",
      content: { ...server(rtcv), api_key: "" },
    });
    assert.match(
      emptyKey,
      /api_key must be a non-empty string/,
      "the single-object form must say which field is wrong",
    );
    assert.equal(rtcv.requests.length, 0);
  });
}
