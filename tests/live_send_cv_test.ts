/**
 * Live mode, `send_cv` against the primary: the wire format, the cache, the fan-out in parallel, timeouts,
 * retries and the messages of failures. The client runs as a child process against fake RT-CV servers.
 */

import assert from "node:assert/strict";
import { FAKE_RTCV_VARIANTS, startFakeRtcv } from "./fake_rtcv.ts";
import {
  credentialsLine,
  error,
  liveDir,
  ok,
  received,
  SCAN_CV,
  scanRequests,
  sendCv,
  server,
  startLiveClient,
  timed,
  waitFor,
} from "./live_helpers.ts";

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv: the reference_number alias goes on the wire as referenceNumber, the rest unchanged [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, { type: "set_credentials", content: server(rtcv) });

    const content = {
      reference_number: "alias-1",
      presentation: "Hello",
      educations: [{ name: "School", isCompleted: true }],
      personalDetails: { firstName: "Ada", zip: "1234AB" },
      driversLicenses: ["B"],
    };
    assert.equal(await ok(client, { type: "send_cv", content }), false);
    const requests = rtcv.requestsTo(SCAN_CV);
    assert.equal(requests.length, 1);
    assert.equal(requests[0].method, "POST");
    const { reference_number: _, ...rest } = content;
    assert.deepEqual(requests[0].body, { cv: { ...rest, referenceNumber: "alias-1" } });
    const wireCv = (requests[0].body as { cv: Record<string, unknown> }).cv;
    assert.ok(!("reference_number" in wireCv), "the alias itself is not sent");

    // The native field goes through as it is.
    const native = { referenceNumber: "native-1", languages: [{ name: "Dutch", levelSpoken: 3 }] };
    assert.equal(await ok(client, { type: "send_cv", content: native }), false);
    assert.deepEqual(rtcv.requestsTo(SCAN_CV)[1].body, { cv: native });
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv: invalid content is an error and nothing is sent [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, { type: "set_credentials", content: server(rtcv) });

    assert.match(await error(client, { type: "send_cv", content: { presentation: "x" } }), /referenceNumber/);
    assert.match(
      await error(client, { type: "send_cv", content: { referenceNumber: "" } }),
      /non-empty string/,
    );
    assert.match(
      await error(client, { type: "send_cv", content: { referenceNumber: 12 } }),
      /referenceNumber/,
    );
    assert.match(await error(client, { type: "send_cv", content: "ref-1" }), /object/);
    assert.equal(scanRequests(rtcv), 0);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv: a cached reference answers false and sends nothing [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant, hasMatches: true });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, { type: "set_credentials", content: server(rtcv) });

    await ok(client, { type: "set_cached_reference", content: "cached-long" });
    await ok(client, { type: "set_short_cached_reference", content: "cached-short" });
    assert.equal(await ok(client, sendCv("cached-long")), false);
    assert.equal(await ok(client, sendCv("cached-short")), false);
    assert.equal(await ok(client, { type: "send_cv", content: { reference_number: "cached-long" } }), false);
    assert.equal(scanRequests(rtcv), 0);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv: primary hasMatches true answers true and caches it; a second send_cv sends nothing [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant, hasMatches: true });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, { type: "set_credentials", content: server(rtcv) });

    assert.equal(await ok(client, sendCv("match-1")), true);
    assert.equal(scanRequests(rtcv, "match-1"), 1);
    assert.equal(await ok(client, { type: "has_cached_reference", content: "match-1" }), true);
    assert.equal(await ok(client, sendCv("match-1")), false);
    assert.equal(scanRequests(rtcv, "match-1"), 1, "no new request for a cached reference");
    assert.equal((await client.finish()).status.code, 0);

    // The cache is persistent: a new process with the same store knows it too.
    await using again = await startLiveClient(dir);
    await ok(again, { type: "set_credentials", content: server(rtcv) });
    assert.equal(await ok(again, sendCv("match-1")), false);
    assert.equal(scanRequests(rtcv, "match-1"), 1);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv: primary hasMatches false answers false and does not cache [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant, hasMatches: (cv) => cv.referenceNumber === "yes" });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, { type: "set_credentials", content: server(rtcv) });

    assert.equal(await ok(client, sendCv("no")), false);
    assert.equal(await ok(client, { type: "has_cached_reference", content: "no" }), false);
    assert.equal(await ok(client, sendCv("no")), false);
    assert.equal(scanRequests(rtcv, "no"), 2, "an unmatched CV is sent again");
    assert.equal(await ok(client, sendCv("yes")), true);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv: the answer is the primary's, whatever the mirrors say [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant, hasMatches: false });
    await using mirror = await startFakeRtcv({ variant, hasMatches: true });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, credentialsLine(primary, [mirror]));

    assert.equal(await ok(client, sendCv("p-1")), false);
    await waitFor(() => received(mirror, "p-1") === 1, 3000, "the mirror gets the CV too");
    assert.equal(await ok(client, { type: "has_cached_reference", content: "p-1" }), false);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv fans out in parallel: 3 servers with 200 ms latency answer in about 200 ms [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant, hasMatches: true });
    await using mirrorA = await startFakeRtcv({ variant });
    await using mirrorB = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, credentialsLine(primary, [mirrorA, mirrorB]));
    for (const rtcv of [primary, mirrorA, mirrorB]) rtcv.latencyMs = 200;

    const { answer, ms } = await timed(client, sendCv("fan-1"));
    assert.deepEqual(answer, { type: "ok", content: true });
    assert.ok(ms >= 190, `the primary's latency is part of the answer (${ms.toFixed(0)} ms)`);
    assert.ok(ms < 500, `3 servers of 200 ms each must be asked in parallel, took ${ms.toFixed(0)} ms`);
    await waitFor(
      () => received(mirrorA, "fan-1") === 1 && received(mirrorB, "fan-1") === 1,
      3000,
      "both mirrors receive the CV",
    );
    const arrivals = [primary, mirrorA, mirrorB].map((rtcv) => rtcv.requestsTo(SCAN_CV)[0].at);
    assert.ok(
      Math.max(...arrivals) - Math.min(...arrivals) < 150,
      `the three requests start together: ${arrivals.join(", ")}`,
    );
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv: a hung primary is an error naming the primary, within a bounded time [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "200" });
    await ok(client, { type: "set_credentials", content: server(primary) });
    primary.hang = true;

    const { answer, ms } = await timed(client, sendCv("hung-1"));
    assert.equal(answer.type, "error");
    const message = answer.content as string;
    assert.ok(message.startsWith(`send_cv: primary ${primary.origin} did not answer within 200 ms`), message);
    assert.match(message, /4 attempts/);
    assert.ok(ms < 6000, `the timeout bounds the wait (${ms.toFixed(0)} ms)`);
    assert.equal(scanRequests(primary, "hung-1"), 4, "3 retries after the first attempt");
    assert.equal(await ok(client, { type: "has_cached_reference", content: "hung-1" }), false);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv retries: 503 twice then ok makes exactly 3 requests and answers ok [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant, hasMatches: true });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir, { ENABLE_SCRAPER_CLIENT_LOG: "true" });
    await ok(client, { type: "set_credentials", content: server(primary) });
    primary.failNext(2, 503, undefined, { route: SCAN_CV });

    assert.equal(await ok(client, sendCv("retry-1")), true);
    assert.equal(scanRequests(primary, "retry-1"), 3);
    assert.equal(received(primary, "retry-1"), 1);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv retries: 503 every time gives up after 3 retries (Retry-After honoured) [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, { type: "set_credentials", content: server(primary) });
    primary.failNext(Infinity, 503, { error: "overloaded" }, { route: SCAN_CV, retryAfter: "0" });

    const { answer, ms } = await timed(client, sendCv("retry-2"));
    assert.deepEqual(answer, {
      type: "error",
      content: `send_cv: primary ${primary.origin} answered 503: overloaded (4 attempts)`,
    });
    assert.equal(scanRequests(primary, "retry-2"), 4);
    assert.ok(ms < 1000, `Retry-After: 0 replaces the backoff (${ms.toFixed(0)} ms)`);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv: a 400 is not retried and the error carries the server's message [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, { type: "set_credentials", content: server(primary) });
    primary.failNext(1, 400, { error: "invalid referenceNumber" }, { route: SCAN_CV });

    assert.deepEqual(await client.request(sendCv("bad-1")), {
      type: "error",
      content: `send_cv: primary ${primary.origin} answered 400: invalid referenceNumber`,
    });
    assert.equal(scanRequests(primary, "bad-1"), 1);

    primary.failNext(1, 422, "<html>nope</html>", { route: SCAN_CV });
    const message = await error(client, sendCv("bad-2"));
    assert.ok(message.startsWith(`send_cv: primary ${primary.origin} answered 422`), message);
    assert.match(message, /non-JSON body: <html>nope<\/html>/);
    assert.equal(scanRequests(primary, "bad-2"), 1);
    assert.equal(await ok(client, { type: "has_cached_reference", content: "bad-1" }), false);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`send_cv: RT-CV's 500 with a JSON error (a CV it cannot decode) is reported at once, not retried [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, { type: "set_credentials", content: server(primary) });

    const phone = await error(
      client,
      sendCv("bad-phone", { personalDetails: { phoneNumber: "call me maybe" } }),
    );
    assert.equal(phone, `send_cv: primary ${primary.origin} answered 500: invalid phone number`);
    assert.equal(scanRequests(primary, "bad-phone"), 1, "a refusal is not retried");

    const date = await error(client, sendCv("bad-date", { createdAt: "2024-01-02" }));
    assert.match(date, /^send_cv: primary .* answered 500: parsing time .*2024-01-02/);
    const type = await error(client, sendCv("bad-type", { presentation: 5 }));
    assert.match(type, /answered 500: json: cannot unmarshal number into Go struct field .*presentation/);
    const future = await error(client, sendCv("future", { lastChanged: "2999-01-01T00:00:00Z" }));
    assert.match(future, /answered 400: lastChanged can't be more than 24 hours in the future/);
    for (const reference of ["bad-date", "bad-type", "future"]) {
      assert.equal(scanRequests(primary, reference), 1);
    }
    assert.equal(primary.receivedCvs.length, 0);
  });
}
