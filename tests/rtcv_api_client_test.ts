import assert from "node:assert/strict";
import { RtcvApiClient, RtcvApiError } from "../src/rtcv/api_client.ts";
import { defaultRequestPolicy, parseRetryAfter, type RequestPolicy } from "../src/http/request_policy.ts";
import {
  DEFAULT_FAKE_KEY,
  type FakeRtcv,
  rtcvAuthHeader,
  sha512Hex,
  startFakeRtcv,
  unreachableRtcvUrl,
} from "./fake_rtcv.ts";

/** A policy that never really waits: backoff delays are recorded, jitter is fixed at 1x. */
function testPolicy(overrides: Partial<RequestPolicy> = {}) {
  const delays: number[] = [];
  const retries: { path: string; attempt: number; reason: string; delayMs: number }[] = [];
  const attempts: { path: string; status: number | null }[] = [];
  const policy: RequestPolicy = {
    timeoutMs: 2000,
    maxRetries: 3,
    baseDelayMs: 250,
    maxRetryAfterMs: 10_000,
    random: () => 0.5,
    sleep: (ms) => {
      delays.push(ms);
      return Promise.resolve();
    },
    onRetry: ({ path, attempt, reason, delayMs }) => retries.push({ path, attempt, reason, delayMs }),
    onRequest: ({ path, status }) => attempts.push({ path, status }),
    ...overrides,
  };
  return { policy, delays, retries, attempts };
}

async function withFake(
  fn: (rtcv: FakeRtcv, client: RtcvApiClient, t: ReturnType<typeof testPolicy>) => Promise<void>,
  policyOverrides: Partial<RequestPolicy> = {},
): Promise<void> {
  const rtcv = await startFakeRtcv();
  try {
    const t = testPolicy(policyOverrides);
    const client = await RtcvApiClient.create(rtcv.credentials(), t.policy);
    await fn(rtcv, client, t);
  } finally {
    await rtcv.close();
  }
}

async function rejectsWith(promise: Promise<unknown>): Promise<RtcvApiError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RtcvApiError, `expected an RtcvApiError, got ${error}`);
    return error;
  }
  assert.fail("expected the call to fail");
}

Deno.test("auth header is Basic <id>:<sha512 hex of key>, 159 characters, with JSON content type", async () => {
  await withFake(async (rtcv, client) => {
    await client.keyInfo();
    const expected = `Basic ${DEFAULT_FAKE_KEY.apiKeyId}:${await sha512Hex(DEFAULT_FAKE_KEY.apiKey)}`;
    assert.equal(expected, await rtcvAuthHeader(DEFAULT_FAKE_KEY.apiKeyId, DEFAULT_FAKE_KEY.apiKey));
    assert.match(expected, /^Basic 1{24}:[0-9a-f]{128}$/);
    assert.equal(expected.length, 159);
    assert.equal(rtcv.requests.length, 1);
    assert.equal(rtcv.requests[0].authorization, expected);
    assert.equal(rtcv.requests[0].contentType, "application/json");
    assert.equal(client.origin, rtcv.origin);
    assert.equal(client.apiKeyId, DEFAULT_FAKE_KEY.apiKeyId);
  });
});

Deno.test("a wrong key is rejected by the fake and surfaces its message", async () => {
  const rtcv = await startFakeRtcv();
  try {
    const client = await RtcvApiClient.create(
      { ...rtcv.credentials(), apiKey: "not-the-key" },
      testPolicy().policy,
    );
    const error = await rejectsWith(client.keyInfo());
    assert.equal(error.message, `${rtcv.origin} answered 401: auth header is invalid`);
    assert.equal(error.status, 401);
    assert.equal(error.serverMessage, "auth header is invalid");
    assert.equal(error.retryable, false);
    assert.equal(rtcv.requests.length, 1);
  } finally {
    await rtcv.close();
  }
});

Deno.test("server location may end with / or carry a path prefix; the origin never does", async () => {
  const rtcv = await startFakeRtcv();
  try {
    const { policy } = testPolicy();
    const slash = await RtcvApiClient.create(
      { ...rtcv.credentials(), serverLocation: rtcv.url + "//" },
      policy,
    );
    await slash.health();
    assert.equal(rtcv.requests.at(-1)?.path, "/api/v1/health");

    const prefixed = await RtcvApiClient.create({
      ...rtcv.credentials(),
      serverLocation: rtcv.url + "/rtcv/",
    }, policy);
    assert.equal(prefixed.origin, rtcv.origin);
    assert.equal(prefixed.baseUrl, rtcv.url + "/rtcv");
    const error = await rejectsWith(prefixed.health());
    assert.equal(rtcv.requests.at(-1)?.path, "/rtcv/api/v1/health");
    assert.equal(error.message, `${rtcv.origin} answered 500: Cannot GET /rtcv/api/v1/health`);
    assert.ok(error.missingRoute);
  } finally {
    await rtcv.close();
  }
});

Deno.test("create rejects bad credentials without contacting anything", async () => {
  const { policy } = testPolicy();
  const good = { serverLocation: "https://rtcv.example.com", apiKeyId: "1".repeat(24), apiKey: "k" };
  await assert.rejects(RtcvApiClient.create({ ...good, serverLocation: "ftp://x" }, policy), TypeError);
  await assert.rejects(
    RtcvApiClient.create({ ...good, serverLocation: "rtcv.example.com" }, policy),
    TypeError,
  );
  await assert.rejects(RtcvApiClient.create({ ...good, apiKeyId: "" }, policy), TypeError);
  await assert.rejects(RtcvApiClient.create({ ...good, apiKey: "" }, policy), /api_key for https:\/\/rtcv/);
});

Deno.test("health and keyInfo", async () => {
  await withFake(async (rtcv, client) => {
    await client.health();
    assert.deepEqual(rtcv.requests.map((r) => `${r.method} ${r.path}`), ["GET /api/v1/health"]);
    const info = await client.keyInfo();
    assert.deepEqual(info.roles.map((r) => r.role), [1]);

    rtcv.failNext(1, 200, { status: false });
    const error = await rejectsWith(client.health());
    assert.match(error.message, /^http:\/\/127\.0\.0\.1:\d+ reports it is not healthy: \{"status":false\}$/);
  });
});

Deno.test("keyInfo reports other roles as they are", async () => {
  const key = { apiKeyId: "abcdefabcdefabcdefabcdef", apiKey: "other-key-123", roles: [2, 4] };
  const rtcv = await startFakeRtcv({ keys: [key] });
  try {
    const client = await RtcvApiClient.create(rtcv.credentials(), testPolicy().policy);
    assert.deepEqual((await client.keyInfo()).roles.map((r) => r.role), [2, 4]);
    const error = await rejectsWith(client.scanCv({ referenceNumber: "x" }));
    assert.equal(error.status, 403);
    assert.equal(error.serverMessage, "your key does not have the role this route requires");
  } finally {
    await rtcv.close();
  }
});

Deno.test("scannedReferenceNrs returns the list; a removed route (404 or 500 Cannot GET) is a missingRoute error", async () => {
  await withFake(async (rtcv, client) => {
    rtcv.scannedReferenceNrs = ["a", "b"];
    assert.deepEqual(await client.scannedReferenceNrs(30), ["a", "b"]);
    assert.equal(rtcv.requests[0].path, "/api/v1/scraper/scannedReferenceNrs/since/days/30");

    rtcv.variant = "newest";
    const removed = await rejectsWith(client.scannedReferenceNrs(30));
    assert.equal(removed.status, 500);
    assert.equal(removed.serverMessage, "Cannot GET /api/v1/scraper/scannedReferenceNrs/since/days/30");
    assert.ok(removed.missingRoute && !removed.refused);
    assert.equal(rtcv.requests.length, 2, "a 500 is not retried");
    rtcv.variant = "older";
    rtcv.notFoundRoutes.add("/api/v1/scraper/scannedReferenceNrs");
    assert.ok((await rejectsWith(client.scannedReferenceNrs(30))).missingRoute);
    rtcv.notFoundRoutes.clear();

    rtcv.failNext(1, 200, null);
    assert.deepEqual(await client.scannedReferenceNrs(1), []);
    await assert.rejects(client.scannedReferenceNrs(-1), RangeError);
  });
});

Deno.test("scanCv posts {cv} and returns hasMatches; a bad referenceNumber is the server's 400", async () => {
  await withFake(async (rtcv, client) => {
    rtcv.hasMatches = (cv) => cv.referenceNumber === "match";
    const cv = { referenceNumber: "match", personalDetails: { firstName: "Ada" } };
    assert.equal(await client.scanCv(cv), true);
    assert.equal(await client.scanCv({ referenceNumber: "other" }), false);
    assert.deepEqual(rtcv.requests[0], { ...rtcv.requests[0], method: "POST", body: { cv } });
    assert.equal(rtcv.requests[0].path, "/api/v1/scraper/scanCV");
    assert.deepEqual(rtcv.receivedCvs.map((c) => c.referenceNumber), ["match", "other"]);

    const error = await rejectsWith(client.scanCv({ referenceNumber: "" }));
    assert.equal(error.message, `${rtcv.origin} answered 400: referenceNumber must be set`);
    assert.equal(error.status, 400);
    assert.equal(error.serverMessage, "referenceNumber must be set");
    assert.equal(error.retryable, false);
    assert.equal(error.attempts, 1);
    assert.equal(rtcv.requests.length, 3, "a 400 is not retried");
  });
});

Deno.test("getSecret sends segments as they are where a path allows; wrong and unknown keys get the server's message", async () => {
  await withFake(async (rtcv, client, t) => {
    // RT-CV takes the segments as sent: only what a path cannot carry is percent-encoded.
    const key = "site+a=b:c@d";
    const encryptionKey = "enc+key=1234567890";
    rtcv.setSecret(key, encryptionKey, { users: [{ username: "u", password: "p" }] });
    assert.deepEqual(await client.getSecret(key, encryptionKey), {
      users: [{ username: "u", password: "p" }],
    });
    assert.equal(rtcv.requests[0].path, `/api/v1/secrets/myKey/${key}/${encryptionKey}`);
    await rejectsWith(client.getSecret("a/b ?#c", encryptionKey));
    assert.equal(rtcv.requests[1].path, `/api/v1/secrets/myKey/a%2Fb%20%3F%23c/${encryptionKey}`);
    assert.equal(
      t.attempts[0].path,
      "/api/v1/secrets/myKey/:key/:encryptionKey",
      "hooks never see the secret",
    );

    const wrong = await rejectsWith(client.getSecret(key, "nope-nope-nope-nope"));
    assert.equal(wrong.message, `${rtcv.origin} answered 500: cipher: message authentication failed`);
    assert.ok(wrong.refused);
    const missing = await rejectsWith(client.getSecret("unknown", encryptionKey));
    assert.equal(missing.message, `${rtcv.origin} answered 404: item not found`);
    assert.equal(missing.status, 404);
  });
});

Deno.test("503 twice then ok: 3 requests, backoff 250 then 500 ms", async () => {
  await withFake(async (rtcv, client, t) => {
    rtcv.failNext(2, 503);
    assert.equal(await client.scanCv({ referenceNumber: "r1" }), false);
    assert.equal(rtcv.requests.length, 3);
    assert.deepEqual(t.delays, [250, 500]);
    assert.deepEqual(t.attempts.map((a) => a.status), [503, 503, 200]);
    assert.deepEqual(t.retries.map((r) => [r.attempt, r.reason]), [[1, "answered 503"], [2, "answered 503"]]);
  });
});

Deno.test("jitter spreads the backoff between 0.5x and 1.5x", async () => {
  await withFake(async (rtcv, client, t) => {
    rtcv.failNext(2, 502);
    await client.health();
    assert.deepEqual(t.delays, [125, 250]);
  }, { random: () => 0 });
});

Deno.test("4 failures: gives up after 4 attempts with the last answer's message", async () => {
  await withFake(async (rtcv, client, t) => {
    rtcv.failNext(Infinity, 503, { error: "maintenance" });
    const error = await rejectsWith(client.keyInfo());
    assert.equal(error.message, `${rtcv.origin} answered 503: maintenance (4 attempts)`);
    assert.equal(error.retryable, true);
    assert.equal(error.attempts, 4);
    assert.equal(rtcv.requests.length, 4);
    assert.deepEqual(t.delays, [250, 500, 1000]);
  });
});

Deno.test("other statuses are not retried: 400, 401, 404, 500", async () => {
  await withFake(async (rtcv, client) => {
    for (const status of [400, 401, 404, 500]) {
      rtcv.failNext(1, status, { error: `e${status}` });
      const error = await rejectsWith(client.getSecret("k", "e"));
      assert.equal(error.message, `${rtcv.origin} answered ${status}: e${status}`);
      assert.equal(error.retryable, status === 500);
    }
    assert.equal(rtcv.requests.length, 4);
  });
});

Deno.test("Retry-After in seconds and as an HTTP date is honoured, capped at maxRetryAfterMs", async () => {
  await withFake(async (rtcv, client, t) => {
    rtcv.failNext(1, 429, undefined, { retryAfter: "2" });
    rtcv.failNext(1, 503, undefined, { retryAfter: "3600" });
    rtcv.failNext(1, 503, undefined, { retryAfter: new Date(Date.now() + 3_600_000).toUTCString() });
    await client.health();
    assert.deepEqual(t.delays, [2000, 5000, 5000]);
    assert.equal(rtcv.requests.length, 4);

    rtcv.retryAfter = "1";
    rtcv.failNext(1, 504);
    await client.health();
    assert.deepEqual(t.delays.at(-1), 1000);
  }, { maxRetryAfterMs: 5000 });
});

Deno.test("parseRetryAfter", () => {
  const now = Date.parse("2025-01-01T00:00:00Z");
  assert.equal(parseRetryAfter(null, now), null);
  assert.equal(parseRetryAfter("0", now), 0);
  assert.equal(parseRetryAfter(" 7 ", now), 7000);
  assert.equal(parseRetryAfter("Wed, 01 Jan 2025 00:00:30 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Tue, 31 Dec 2024 00:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), null);
  assert.equal(parseRetryAfter("-5", now), null);
});

Deno.test("a hanging server is abandoned at the timeout and retried", async () => {
  await withFake(async (rtcv, client, t) => {
    rtcv.hang = true;
    const started = performance.now();
    const error = await rejectsWith(client.health());
    const elapsed = performance.now() - started;
    assert.equal(error.message, `${rtcv.origin} did not answer within 100 ms (2 attempts)`);
    assert.equal(error.status, null);
    assert.equal(error.retryable, true);
    assert.equal(rtcv.requests.length, 2);
    assert.deepEqual(t.attempts.map((a) => a.status), [null, null]);
    assert.ok(elapsed >= 190 && elapsed < 1500, `took ${elapsed} ms`);
  }, { timeoutMs: 100, maxRetries: 1 });
});

Deno.test("latency within the timeout is fine", async () => {
  await withFake(async (rtcv, client) => {
    rtcv.latencyMs = 30;
    await client.health();
    assert.equal(rtcv.requests.length, 1);
  }, { timeoutMs: 1000 });
});

Deno.test("a dropped connection is a network error, retried", async () => {
  await withFake(async (rtcv, client) => {
    rtcv.resetConnections = true;
    const error = await rejectsWith(client.scanCv({ referenceNumber: "r" }));
    assert.match(
      error.message,
      /^http:\/\/127\.0\.0\.1:\d+ broke off its answer \(status 200\): error reading a body from connection \(4 attempts\)$/,
    );
    assert.equal(error.retryable, true);
    assert.equal(rtcv.requests.length, 4);
  });
});

Deno.test("a dropped connection then a good answer: 2 requests", async () => {
  const rtcv = await startFakeRtcv();
  try {
    rtcv.resetConnections = true;
    const { policy } = testPolicy({
      sleep: () => {
        rtcv.resetConnections = false;
        return Promise.resolve();
      },
    });
    const client = await RtcvApiClient.create(rtcv.credentials(), policy);
    assert.deepEqual(await client.scannedReferenceNrs(30), []);
    assert.equal(rtcv.requests.length, 2);
  } finally {
    await rtcv.close();
  }
});

Deno.test("an unreachable server fails fast with a clear message", async () => {
  const url = await unreachableRtcvUrl();
  const t = testPolicy();
  const client = await RtcvApiClient.create({ ...DEFAULT_FAKE_KEY, serverLocation: url }, t.policy);
  const started = performance.now();
  const error = await rejectsWith(client.health());
  assert.equal(error.message, `${url} could not be reached: Connection refused (4 attempts)`);
  assert.equal(error.status, null);
  assert.equal(error.retryable, true);
  assert.ok(performance.now() - started < 1000);
  assert.deepEqual(t.delays, [250, 500, 1000]);
  assert.match(t.retries[0].reason, /^could not be reached: Connection refused$/);
});

Deno.test("the caller's signal stops the attempt and any retry at once", async () => {
  await withFake(async (rtcv, client) => {
    rtcv.hang = true;
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    const started = performance.now();
    await assert.rejects(client.health(controller.signal), (error: Error) => error.name === "AbortError");
    assert.ok(performance.now() - started < 1000);
    assert.equal(rtcv.requests.length, 1);

    const aborted = AbortSignal.abort();
    await assert.rejects(client.health(aborted), (error: Error) => error.name === "AbortError");
    assert.equal(rtcv.requests.length, 1, "an aborted signal sends nothing");
  }, { timeoutMs: 5000 });
});

Deno.test("the caller's signal also cuts a backoff wait short (real sleep)", async () => {
  await withFake(async (rtcv, client) => {
    rtcv.failNext(Infinity, 503);
    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(client.health(controller.signal), (error: Error) => error.name === "AbortError");
    assert.ok(performance.now() - started < 1000);
    assert.equal(rtcv.requests.length, 1);
  }, { sleep: undefined, baseDelayMs: 10_000 });
});

Deno.test("non-JSON error bodies: status and a short excerpt", async () => {
  await withFake(async (rtcv, client) => {
    rtcv.failNext(1, 500, "<html>\n  <b>Internal oops</b>\n</html>");
    const html = await rejectsWith(client.health());
    assert.equal(
      html.message,
      `${rtcv.origin} answered 500 with a non-JSON body: <html> <b>Internal oops</b> </html>`,
    );
    assert.equal(html.serverMessage, null);

    rtcv.failNext(1, 500, "x".repeat(5000));
    const long = await rejectsWith(client.health());
    assert.ok(long.message.length < 300, long.message);
    assert.ok(long.message.endsWith("x…"));

    rtcv.failNext(1, 400, "");
    const empty = await rejectsWith(client.health());
    assert.equal(empty.message, `${rtcv.origin} answered 400 with an empty body`);

    rtcv.failNext(1, 200, "not json");
    const ok = await rejectsWith(client.health());
    assert.equal(
      ok.message,
      `${rtcv.origin} answered 200 to GET /api/v1/health with a non-JSON body: not json`,
    );
  });
});

Deno.test("the key, its hash and the header never show in errors or in the client", async () => {
  const apiKey = "super-secret-api-key-value";
  const apiKeyId = "abcdef0123456789abcdef01";
  const rtcv = await startFakeRtcv({ keys: [{ apiKeyId, apiKey, roles: [1] }] });
  try {
    const client = await RtcvApiClient.create(rtcv.credentials(), testPolicy().policy);
    const hash = await sha512Hex(apiKey);
    const header = await rtcvAuthHeader(apiKeyId, apiKey);
    const secrets = [apiKey, hash, header];

    rtcv.failNext(1, 400, { error: `bad header ${header} for key ${apiKey}` });
    const echoed = await rejectsWith(client.keyInfo());
    rtcv.failNext(1, 500, `raw ${hash}`);
    const raw = await rejectsWith(client.keyInfo());
    const unreachable = await rejectsWith(
      (await RtcvApiClient.create(
        { apiKeyId, apiKey, serverLocation: await unreachableRtcvUrl() },
        testPolicy().policy,
      ))
        .getSecret("k", "enc-key-secret"),
    );
    assert.match(echoed.message, /bad header \[redacted\] for key \[redacted\]/);

    const shown = [
      String(client),
      JSON.stringify(client),
      Deno.inspect(client, { depth: 10, showHidden: true }),
      ...[echoed, raw, unreachable].flatMap((error) => [
        error.message,
        String(error.serverMessage),
        JSON.stringify(error),
        Deno.inspect(error, { depth: 10, showHidden: true }),
      ]),
    ];
    for (const text of shown) {
      for (const secret of secrets) assert.ok(!text.includes(secret), `leaked in: ${text}`);
    }
    assert.ok(!unreachable.message.includes("enc-key-secret"));
    assert.equal(JSON.stringify(client), JSON.stringify({ origin: rtcv.origin, apiKeyId }));
  } finally {
    await rtcv.close();
  }
});

Deno.test("defaultRequestPolicy takes the timeout, 20000 ms by default", () => {
  const policy = defaultRequestPolicy();
  assert.deepEqual(policy, { timeoutMs: 20_000, maxRetries: 3, baseDelayMs: 250, maxRetryAfterMs: 10_000 });
  assert.equal(defaultRequestPolicy(1500).timeoutMs, 1500);
});
