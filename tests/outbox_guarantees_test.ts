/**
 * PROTOCOL.md section 11, the delivery rules, each shown as a scraper sees it: clients spawned as a scraper
 * does, fake servers (a mirror scripted per reference and attempt), real Kv files. Counts are taken after a
 * positive signal (`outbox_status` says the outbox is done), never after a sleep.
 *
 * - an `ok` means committed: the store is held locked while the commands run, and the client is killed
 *   right after the answers;
 * - `send_cvs_list` commits its mirror copies whatever the primary answers;
 * - no head-of-line blocking, for new entries and for entries an earlier run left;
 * - the retry rules: 4xx at once, the same refusal `..._MAX_ATTEMPTS` times, transient failures neither count
 *   nor reset, the first wait `..._RETRY_MS`, `Retry-After`, the age limit on the client's clock;
 * - leases: a crashed process's entries are taken over once its `..._LEASE_MS` lease lapsed (not before), and
 *   repeats after the crash are bounded by the in-flight limit; a clean exit frees its leases at once.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { FAKE_INGEST_TOKEN, startFakeIngest } from "./fake_ingest.ts";
import { startFakeRtcv } from "./fake_rtcv.ts";
import type { ClientProcess } from "./helpers/spawn_client.ts";
import {
  ALL_CVS,
  credentialsLine,
  cv,
  type LiveDir,
  liveDir,
  ok,
  received,
  SCAN_CV,
  scanRequests,
  sendCv,
  server,
  startLiveClient,
  waitFor,
} from "./live_helpers.ts";
import {
  outboxStatus,
  pendingOf,
  type ScriptedAnswer,
  scriptedMirror,
  waitForStatus,
} from "./helpers/scripted_mirror.ts";

const HOUR_MS = 3600_000;

/** Holds a write lock on the store file (as another writer would) until the returned function is called. */
function lockStore(dir: LiveDir): () => void {
  const db = new DatabaseSync(dir.kv);
  db.exec("BEGIN IMMEDIATE");
  return () => {
    db.exec("COMMIT");
    db.close();
  };
}

/**
 * Sends `line` while another writer holds the store for 700 ms, reads its answer and kills the client with
 * SIGKILL at once (nothing after the answer gets a chance); the answer must have waited for the commit.
 */
async function answerThenKill(dir: LiveDir, client: ClientProcess, line: object): Promise<unknown> {
  const unlock = lockStore(dir);
  const unlocked = new Promise<void>((resolve) =>
    setTimeout(() => {
      unlock();
      resolve();
    }, 700)
  );
  try {
    await client.send(line);
    const answer = JSON.parse(await client.readLine());
    client.kill("SIGKILL");
    await client.waitForExit();
    return answer;
  } finally {
    await unlocked;
  }
}

Deno.test("ok means committed: send_cv and store_data answer once their entries are in the store; kill -9 right after loses nothing", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv();
  const ingest = startFakeIngest({ latencyMs: 60_000 }); // deliveries stay in flight
  await using dir = await liveDir();
  try {
    mirror.failNext(Infinity, 503, { error: "busy" }, { route: SCAN_CV });
    {
      await using client = await startLiveClient(dir);
      await ok(client, credentialsLine(primary, [mirror]));
      assert.deepEqual(await answerThenKill(dir, client, sendCv("committed-1")), {
        type: "ok",
        content: false,
      });
    }
    {
      await using client = await startLiveClient(dir);
      await ok(client, { type: "set_ingest", content: { base_url: ingest.url, token: FAKE_INGEST_TOKEN } });
      const line = {
        type: "store_data",
        content: { data_type: "job", platform: "boss", items: [{ job_id: "c1" }, { job_id: "c2" }] },
      };
      assert.deepEqual(await answerThenKill(dir, client, line), {
        type: "ok",
        content: { queued: 2, skipped: 0 },
      });
    }
    await using next = await startLiveClient(dir);
    const status = await outboxStatus(next);
    assert.equal(pendingOf(status, mirror.origin), 1, JSON.stringify(status));
    assert.equal(status.ingest.pending, 2, JSON.stringify(status));
  } finally {
    await ingest.close();
  }
});

Deno.test("send_cvs_list: the mirror's copy is committed whatever the primary answers; a list retried while it waits stays one copy", async () => {
  await using primary = await startFakeRtcv({ variant: "newest" });
  await using mirror = await startFakeRtcv({ variant: "newest" });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  primary.failNext(3, 500, { error: "invalid phone number" }, { route: ALL_CVS });
  mirror.failNext(Infinity, 503, { error: "busy" }, { route: ALL_CVS });
  for (let attempt = 0; attempt < 3; attempt++) {
    const answer = await client.request({ type: "send_cvs_list", content: [cv("l-1"), cv("l-2")] });
    assert.equal(answer.type, "error", JSON.stringify(answer));
  }
  assert.equal(pendingOf(await outboxStatus(client), mirror.origin), 1, "one waiting copy");
  mirror.clearFailures();
  await waitForStatus(client, (status) => pendingOf(status, mirror.origin) === 0);
  assert.deepEqual(mirror.receivedCvLists.map((list) => list.map((entry) => entry.referenceNumber)), [[
    "l-1",
    "l-2",
  ]]);
  assert.equal(primary.receivedCvLists.length, 0);
  assert.equal((await client.finish()).status.code, 0);
});

Deno.test("send_cv_document sent again while the mirror's copy waits: one copy, the newer one", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  mirror.failNext(Infinity, 503, { error: "busy" }, { route: "/api/v1/scraper/scanCVDocument" });
  for (const text of ["%PDF-1.4 first", "%PDF-1.4 second"]) {
    const content = { cv: { referenceNumber: "doc-again" }, file_base64: btoa(text) };
    assert.equal(await ok(client, { type: "send_cv_document", content }), false);
  }
  assert.equal(pendingOf(await outboxStatus(client), mirror.origin), 1, "one waiting copy");
  mirror.clearFailures();
  await waitForStatus(client, (status) => pendingOf(status, mirror.origin) === 0);
  assert.deepEqual(
    mirror.receivedDocuments.map((document) => new TextDecoder().decode(document.bytes)),
    ["%PDF-1.4 second"],
  );
  assert.equal((await client.finish()).status.code, 0);
});

Deno.test("no head-of-line blocking: a CV the mirror keeps refusing holds up neither later CVs nor those an earlier run left", async () => {
  await using primary = await startFakeRtcv();
  await using backing = await startFakeRtcv();
  await using dir = await liveDir();
  // In process 2, `stuck-*` are refused with RT-CV's 500 for a CV it cannot decode (their next attempt is
  // 30-90 s away); process 1 finds the mirror down for every CV (503: transient).
  let refusing = false;
  await using mirror = scriptedMirror(backing, (reference) => {
    if (!refusing || !reference.startsWith("stuck")) return null;
    return { status: 500, body: { error: 'parsing time "x"' } };
  });
  const credentials = { type: "set_credentials", content: [server(primary, true), mirror.credentials()] };
  const env = { RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "60000" };
  const left = ["stuck-left", ...Array.from({ length: 39 }, (_, i) => `left-${i}`)];
  {
    // Process 1 leaves 40 CVs waiting (the mirror is down), the stuck one oldest.
    backing.failNext(Infinity, 503, { error: "down" }, { route: SCAN_CV });
    await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_DRAIN_MS: "0" });
    await ok(client, credentials);
    for (const reference of left) await ok(client, sendCv(reference));
    assert.equal((await client.finish()).status.code, 0);
    backing.clearFailures();
  }
  refusing = true;
  await using client = await startLiveClient(dir, env);
  await ok(client, credentials);
  const later = ["stuck-new", "new-1", "new-2", "new-3"];
  for (const reference of later) await ok(client, sendCv(reference));
  const status = await waitForStatus(client, (status) => pendingOf(status, mirror.origin) <= 2);
  assert.deepEqual([pendingOf(status, mirror.origin), status.mirrors[mirror.origin].dead], [2, 0]);
  for (const reference of [...left, ...later].filter((reference) => !reference.startsWith("stuck"))) {
    assert.equal(received(backing, reference), 1, reference);
  }
  assert.equal(mirror.attemptsOf("stuck-new").length, 1, "refused once, waiting for its next attempt");
});

Deno.test("retry rules: 4xx is dead at once; the same refusal MAX_ATTEMPTS times is dead; transient failures neither count nor reset", async () => {
  await using primary = await startFakeRtcv();
  await using backing = await startFakeRtcv();
  await using dir = await liveDir();
  const refusal = (message: string): ScriptedAnswer => ({ status: 500, body: { error: message } });
  const transientFirst3: Record<string, ScriptedAnswer> = {
    "t-429": { status: 429, headers: { "retry-after": "0" } },
    "t-502": { status: 502 },
    "t-503": { status: 503 },
    "t-504": { status: 504 },
    "t-reset": { reset: true },
    "t-timeout": { hangMs: 1500 }, // past RTCV_SCRAPER_CLIENT_TIMEOUT_MS
  };
  // Per reference: what each attempt gets (null from then on: passed to the fake, which accepts it).
  const scripts: Record<string, (attempt: number) => ScriptedAnswer | null> = {
    "refused-400": (attempt) =>
      attempt === 1 ? { status: 400, body: { error: "referenceNumber must be set" } } : null,
    // The same refusal, every request counted (the first too): dead at the third.
    "same-3": (attempt) => attempt <= 3 ? refusal("cannot decode") : null,
    // The same refusal with transient failures between: they do not reset the count; dead at the fifth request.
    "not-reset": (attempt) =>
      attempt <= 5 ? (attempt % 2 === 1 ? refusal("cannot decode") : { status: 503 }) : null,
    // Two refusals taking turns: never the same three times, delivered at the fifth request.
    "alternating": (attempt) => attempt <= 4 ? refusal(attempt % 2 === 1 ? "error a" : "error b") : null,
  };
  for (const [reference, answer] of Object.entries(transientFirst3)) {
    scripts[reference] = (attempt) => attempt <= 3 ? answer : null;
  }
  await using mirror = scriptedMirror(backing, (reference, attempt) => scripts[reference]?.(attempt) ?? null);
  await using client = await startLiveClient(dir, {
    RTCV_SCRAPER_CLIENT_OUTBOX_MAX_ATTEMPTS: "3",
    RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "20",
    RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "500",
  });
  await ok(client, { type: "set_credentials", content: [server(primary, true), mirror.credentials()] });
  for (const reference of Object.keys(scripts)) await ok(client, sendCv(reference));
  const status = await waitForStatus(client, (status) => pendingOf(status, mirror.origin) === 0, 30_000);
  assert.equal(status.mirrors[mirror.origin].dead, 3, JSON.stringify(status));
  const attempts = (reference: string) => mirror.attemptsOf(reference).length;
  assert.deepEqual(
    ["refused-400", "same-3", "not-reset"].map((
      reference,
    ) => [reference, attempts(reference), received(backing, reference)]),
    [["refused-400", 1, 0], ["same-3", 3, 0], ["not-reset", 5, 0]],
  );
  for (const reference of ["alternating", ...Object.keys(transientFirst3)]) {
    assert.equal(received(backing, reference), 1, `${reference} delivered`);
    assert.equal(attempts(reference), reference === "alternating" ? 5 : 4, reference);
  }
  const letters = await ok(client, { type: "dead_letters" }) as {
    reference_number: string;
    reason: string;
  }[];
  assert.deepEqual(
    letters.map((letter) => [letter.reference_number, letter.reason]).sort(),
    [
      ["not-reset", "answered 500: cannot decode"],
      ["refused-400", "answered 400: referenceNumber must be set"],
      ["same-3", "answered 500: cannot decode"],
    ],
  );
  assert.equal((await client.finish()).status.code, 0);
});

Deno.test("retry rules for job data: 4xx is dead at once; 429, 502-504 and timeouts neither count nor make it dead", async () => {
  const ingest = startFakeIngest();
  await using dir = await liveDir();
  try {
    await using client = await startLiveClient(dir, {
      RTCV_SCRAPER_CLIENT_OUTBOX_MAX_ATTEMPTS: "2",
      RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "20",
      RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "500",
    });
    await ok(client, { type: "set_ingest", content: { base_url: ingest.url, token: FAKE_INGEST_TOKEN } });
    const store = (items: unknown[]) => ({
      type: "store_data",
      content: { data_type: "job", platform: "boss", items },
    });
    ingest.refuse = (batch) => batch.items.some((item) => item.bad === true) ? 400 : null;
    await ok(client, store([{ job_id: "b1", bad: true }]));
    assert.deepEqual(await ok(client, { type: "flush_data" }), { delivered: 0, pending: 0, dead: 1 });
    assert.equal(ingest.requests.filter((request) => request.status === 400).length, 1, "one request");

    // Each kind of transient failure twice in a row (MAX_ATTEMPTS is 2), one line at a time.
    let delivered = 0;
    for (const status of [429, 502, 503, 504]) {
      ingest.failNext(2, status, "busy", "0");
      await ok(client, store([{ job_id: `t${status}` }]));
      assert.deepEqual(await ok(client, { type: "flush_data" }), {
        delivered: ++delivered,
        pending: 0,
        dead: 1,
      });
    }
    // Two attempts that time out.
    const base = ingest.requests.length;
    ingest.latencyMs = 1500;
    await ok(client, store([{ job_id: "timeout" }]));
    await waitFor(() => ingest.requests.length >= base + 2, 10_000, "two attempts timed out");
    ingest.latencyMs = 0;
    assert.deepEqual(await ok(client, { type: "flush_data" }), {
      delivered: ++delivered,
      pending: 0,
      dead: 1,
    });
    assert.deepEqual(
      ingest.items("job", "boss").map((item) => item.job_id),
      ["t429", "t502", "t503", "t504", "timeout"],
    );
  } finally {
    await ingest.close();
  }
});

Deno.test("the first wait is RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS (with jitter); a Retry-After is honoured, for CVs and job data", async () => {
  await using primary = await startFakeRtcv();
  await using backing = await startFakeRtcv();
  await using dir = await liveDir();
  await using dir2 = await liveDir();
  const ingest = startFakeIngest();
  try {
    await using mirror = scriptedMirror(backing, (reference, attempt) => {
      if (attempt > 1) return null;
      return reference === "asked" ? { status: 503, headers: { "retry-after": "3" } } : { status: 503 };
    });
    const credentials = { type: "set_credentials", content: [server(primary, true), mirror.credentials()] };
    const gap = (reference: string) => {
      const [first, second] = mirror.attemptsOf(reference);
      return second.at - first.at;
    };
    await using slow = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "4000" });
    await using fast = await startLiveClient(dir2, { RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "50" });
    await Promise.all([ok(slow, credentials), ok(fast, credentials)]);
    await ok(fast, { type: "set_ingest", content: { base_url: ingest.url, token: FAKE_INGEST_TOKEN } });
    await ok(slow, sendCv("first-wait"));
    await ok(fast, sendCv("asked"));
    ingest.failNext(1, 503, "busy", "3");
    const started = Date.now();
    await ok(fast, {
      type: "store_data",
      content: { data_type: "job", platform: "boss", items: [{ job_id: "r1" }] },
    });
    assert.deepEqual(await ok(fast, { type: "flush_data" }), { delivered: 1, pending: 0, dead: 0 });
    const ingestMs = Date.now() - started;
    await waitFor(
      () => received(backing, "first-wait") === 1 && received(backing, "asked") === 1,
      15_000,
      "both delivered",
    );
    // 4000 ms × [0.5, 1.5): at least 2 s (the default of 1000 ms would be under 1.5 s).
    assert.ok(gap("first-wait") >= 1900 && gap("first-wait") < 9000, `first wait ${gap("first-wait")} ms`);
    // A first wait of 25-75 ms, but the server asked for 3 s.
    assert.ok(gap("asked") >= 2900, `wait after Retry-After: 3 was ${gap("asked")} ms`);
    assert.ok(ingestMs >= 2900, `job data retried after ${ingestMs} ms despite Retry-After: 3`);
  } finally {
    await ingest.close();
  }
});

Deno.test("transient failures are retried until RTCV_SCRAPER_CLIENT_OUTBOX_MAX_AGE_MS (default 72 h, the client's clock), then dead", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  mirror.failNext(Infinity, 503, { error: "still down" }, { route: SCAN_CV });
  const origin = mirror.origin;
  const leave = async (reference: string) => {
    await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_DRAIN_MS: "0" });
    await ok(client, credentialsLine(primary, [mirror]));
    await ok(client, sendCv(reference));
    assert.equal((await client.finish()).status.code, 0);
  };
  const run = async (
    env: Record<string, string>,
    check: (client: Awaited<ReturnType<typeof startLiveClient>>) => Promise<void>,
  ) => {
    await using client = await startLiveClient(dir, env);
    await ok(client, credentialsLine(primary, [mirror]));
    await check(client);
    assert.equal((await client.finish()).status.code, 0);
  };
  await leave("aged-1");
  // 71 hours later: retried, still waiting.
  await run({ RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS: String(71 * HOUR_MS) }, async (client) => {
    const before = scanRequests(mirror, "aged-1");
    await waitFor(() => scanRequests(mirror, "aged-1") >= before + 2, 10_000, "retried twice");
    const status = await outboxStatus(client);
    assert.deepEqual([status.mirrors[origin].pending, status.mirrors[origin].dead], [1, 0]);
    const age = status.mirrors[origin].oldest_age_s ?? 0;
    assert.ok(Math.abs(age - 71 * 3600) < 60, `oldest_age_s ${age}`);
    assert.equal(status.mirrors[origin].last_error, "answered 503: still down");
  });
  // 72 hours and a minute later: the next failure makes it a dead letter that says why.
  await run({ RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS: String(72 * HOUR_MS + 60_000) }, async (client) => {
    await waitForStatus(client, (status) => status.mirrors[origin]?.dead === 1);
    const [letter] = await ok(client, { type: "dead_letters" }) as {
      reference_number: string;
      reason: string;
    }[];
    assert.equal(letter.reference_number, "aged-1");
    assert.equal(
      letter.reason,
      "answered 503: still down (still failing after the age limit of 259200000 ms)",
    );
  });
  // A configured limit of one minute.
  await leave("aged-2");
  await run({
    RTCV_SCRAPER_CLIENT_OUTBOX_MAX_AGE_MS: "60000",
    RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS: "61000",
  }, async (client) => {
    await waitForStatus(client, (status) => status.mirrors[origin]?.dead === 2);
    const letters = await ok(client, { type: "dead_letters" }) as {
      reference_number: string;
      reason: string;
    }[];
    // (aged-1 died 72 h ahead on the clock, so it lists first.)
    const letter = letters.find((letter) => letter.reference_number === "aged-2");
    assert.match(
      letter?.reason ?? "",
      /^answered 503: still down \(still failing after the age limit of 60000 ms\)$/,
    );
  });
  assert.equal(mirror.receivedCvs.length, 0);
});

Deno.test("kill -9 with deliveries in flight: the next process takes them over once the lease lapsed, repeats at most the in-flight limit", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv({ delayRoutes: new Map([[SCAN_CV, 5000]]) }); // accepts, slowly
  await using dir = await liveDir();
  const references = Array.from({ length: 30 }, (_, i) => `inflight-${i}`);
  let killedAt: number;
  let before: number;
  {
    const client = await startLiveClient(dir, {
      RTCV_SCRAPER_CLIENT_OUTBOX_LEASE_MS: "4500",
      RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "20000", // the slow answers do not time out
    });
    try {
      await ok(client, credentialsLine(primary, [mirror]));
      for (const reference of references) await ok(client, sendCv(reference));
      await waitFor(() => scanRequests(mirror) >= 8, 5000, "deliveries in flight");
      killedAt = Date.now();
      client.kill("SIGKILL");
      await client.waitForExit();
      before = scanRequests(mirror);
    } finally {
      await client.close();
    }
  }
  mirror.delayRoutes.clear();
  assert.ok(before <= 8, `${before} requests were in flight at the kill (the limit is 8)`);
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  await waitForStatus(client, (status) => pendingOf(status, mirror.origin) === 0, 20_000);
  // Its leases (4.5 s, renewed every 1.5 s) had at least 3 s to run: nothing was taken before (1.5 s of
  // slack for renewals late on a loaded machine).
  const takenAt = Math.min(
    ...mirror.requestsTo(SCAN_CV).map((request) => request.at).filter((at) => at > killedAt),
  );
  assert.ok(takenAt - killedAt >= 1500, `taken over ${takenAt - killedAt} ms after the kill`);
  // The requests in flight at the kill are accepted by the slow server too: those are the repeats.
  await waitFor(() => mirror.receivedCvs.length >= references.length + before, 10_000, "the slow answers");
  for (const reference of references) assert.ok(received(mirror, reference) >= 1, reference);
  assert.equal(mirror.receivedCvs.length, references.length + before, "repeats: what was in flight");
  assert.equal((await client.finish()).status.code, 0);
});

Deno.test("a clean exit frees its leases: the next process sends what was in flight at once, not after the 30 s lease", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv({ delayRoutes: new Map([[SCAN_CV, 60_000]]) });
  await using dir = await liveDir();
  {
    await using client = await startLiveClient(dir, {
      RTCV_SCRAPER_CLIENT_DRAIN_MS: "300",
      RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "20000",
    });
    await ok(client, credentialsLine(primary, [mirror]));
    await ok(client, sendCv("released-1"));
    await waitFor(() => scanRequests(mirror, "released-1") === 1, 5000, "the delivery is in flight");
    assert.equal((await client.finish()).status.code, 0);
  }
  mirror.delayRoutes.clear();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  await waitForStatus(client, (status) => pendingOf(status, mirror.origin) === 0, 10_000);
  assert.equal(received(mirror, "released-1"), 1);
  assert.equal((await client.finish()).status.code, 0);
});

Deno.test("a living process renews its leases: a delivery slower than the lease is not taken over by another process", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv({ delayRoutes: new Map([[SCAN_CV, 4000]]) });
  await using dir = await liveDir();
  // Both lease for 1.5 s (renewed every 0.5 s); the other process looks for free entries every 0.75 s. The
  // delivery takes 4 s: without renewals, B would take it over twice.
  const env = { RTCV_SCRAPER_CLIENT_OUTBOX_LEASE_MS: "1500", RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "10000" };
  await using a = await startLiveClient(dir, env);
  await using b = await startLiveClient(dir, env);
  await Promise.all([ok(a, credentialsLine(primary, [mirror])), ok(b, credentialsLine(primary, [mirror]))]);
  await ok(a, sendCv("renewed-1"));
  await waitForStatus(a, (status) => pendingOf(status, mirror.origin) === 0);
  assert.equal(scanRequests(mirror, "renewed-1"), 1, "sent once, by A: B never took it over");
  assert.equal(received(mirror, "renewed-1"), 1);
});
