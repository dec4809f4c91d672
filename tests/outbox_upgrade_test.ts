/**
 * Upgrading loses nothing: a store written by the version before the one outbox (its CV outbox, CV dead
 * letters, ingest rows and ingest dead letters, written here with raw Deno.Kv in that version's exact key
 * and value shapes, see `git show df4470e:src/outbox/durable_queue.ts`, `.../rtcv/connect_live.ts` and
 * `.../ingest/ingest_outbox.ts`) is opened by the client as a scraper starts it; every waiting entry is
 * delivered exactly once, dead letters stay dead letters. Counted at the fakes after `outbox_status` is
 * empty.
 */

import assert from "node:assert/strict";
import { FAKE_INGEST_TOKEN, startFakeIngest } from "./fake_ingest.ts";
import { startFakeRtcv } from "./fake_rtcv.ts";
import type { ClientProcess } from "./helpers/spawn_client.ts";
import { oldCvId, oldRowsLeft, oldRunId, putOldCv, putOldRow, writeRows } from "./helpers/legacy_store.ts";
import { credentialsLine, cv, type LiveDir, liveDir, ok, received, startLiveClient } from "./live_helpers.ts";

interface OldStore {
  /** Reference numbers waiting for the mirror (each once, whatever the copies). */
  readonly waitingCvs: string[];
  /** Job ids waiting in job/boss. */
  readonly waitingJobs: string[];
  /** Job ids of a run a living old process still holds. */
  readonly heldJobs: string[];
}

/** Writes what the earlier version would have left for `mirror` and the ingest server. */
async function writeOldStore(dir: LiveDir, mirrorChannel: string): Promise<OldStore> {
  const kv = await Deno.openKv(dir.kv);
  const atomic = kv.atomic();
  const start = Date.now() - 60_000;
  const waitingCvs: string[] = [];
  for (let i = 0; i < 30; i++) {
    const reference = `old-${i}`;
    waitingCvs.push(reference);
    putOldCv(atomic, "cv_outbox", mirrorChannel, oldCvId(start + i, 0), JSON.stringify(cv(reference)));
  }
  // A big CV (payload in parts) and a reference the earlier version queued three times (a retrying scraper).
  waitingCvs.push("old-big");
  const big = cv("old-big", { presentation: "x".repeat(45_000) });
  putOldCv(atomic, "cv_outbox", mirrorChannel, oldCvId(start + 100, 0), JSON.stringify(big));
  waitingCvs.push("old-retried");
  for (let i = 0; i < 3; i++) {
    putOldCv(
      atomic,
      "cv_outbox",
      mirrorChannel,
      oldCvId(start + 200 + i, i),
      JSON.stringify(cv("old-retried")),
    );
  }
  putOldCv(atomic, "cv_dead", mirrorChannel, oldCvId(start + 300, 0), JSON.stringify(cv("old-refused")));

  // Ingest: a run whose process died (claim lapsed), lines of 2 chunks, one item too big for a row.
  const run = oldRunId(start);
  atomic.set(["ingest", "run", run], { owner: run, until: start + 120_000 - 60_000 });
  const waitingJobs: string[] = [];
  for (let line = 0; line < 5; line++) {
    for (let chunk = 0; chunk < 2; chunk++) {
      const items = Array.from({ length: 3 }, (_, i) => ({ job_id: `j-${line}-${chunk}-${i}` }));
      waitingJobs.push(...items.map((item) => item.job_id));
      const key = [run, "job", "boss", line, chunk];
      putOldRow(atomic, ["ingest", "out", ...key], ["ingest", "out_part", ...key], items);
    }
  }
  const huge = { job_id: "j-huge", text: "y".repeat(130_000) };
  waitingJobs.push("j-huge");
  putOldRow(atomic, ["ingest", "out", run, "job", "boss", 5, 0], [
    "ingest",
    "out_part",
    run,
    "job",
    "boss",
    5,
    0,
  ], [
    huge,
  ]);
  const deadKey = [run, "job", "boss", 6, 0, oldRunId(start + 5)];
  putOldRow(atomic, ["ingest", "dead", ...deadKey], ["ingest", "dead_part", ...deadKey], [{
    job_id: "j-bad",
  }], {
    status: 400,
    error: "ingest server answered 400: bad item",
    at: start + 5,
  });
  // A run a living process of the earlier version still delivers: left to it.
  const held = oldRunId(start + 10);
  atomic.set(["ingest", "run", held], { owner: held, until: Date.now() + 3_600_000 });
  const heldItems = [{ job_id: "held-1" }];
  putOldRow(atomic, ["ingest", "out", held, "job", "boss", 0, 0], [
    "ingest",
    "out_part",
    held,
    "job",
    "boss",
    0,
    0,
  ], heldItems);
  assert.ok((await atomic.commit()).ok);
  kv.close();
  return { waitingCvs, waitingJobs, heldJobs: ["held-1"] };
}

async function waitOutboxEmpty(client: ClientProcess): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const status = await ok(client, { type: "outbox_status" }) as {
      mirrors: Record<string, { pending: number }>;
      ingest: { pending: number };
    };
    const pending = Object.values(status.mirrors).reduce((sum, line) => sum + line.pending, 0) +
      status.ingest.pending;
    if (pending === 0) return status;
    if (Date.now() > deadline) throw new Error(`still waiting: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test("an upgrade delivers every CV and job item the earlier version left waiting, once each; dead letters stay dead", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv();
  const ingest = startFakeIngest();
  await using dir = await liveDir();
  try {
    const old = await writeOldStore(dir, mirror.url);
    await using client = await startLiveClient(dir);
    const before = await ok(client, { type: "outbox_status" }) as {
      mirrors: Record<string, { pending: number; dead: number }>;
      ingest: { pending: number; dead: number };
    };
    const origin = new URL(mirror.url).origin;
    const line = before.mirrors[origin] as { pending: number; dead: number; oldest_age_s: number };
    assert.deepEqual(
      [line.pending, line.dead, before.ingest.pending, before.ingest.dead],
      [old.waitingCvs.length, 1, old.waitingJobs.length, 1],
      JSON.stringify(before),
    );
    assert.ok(line.oldest_age_s >= 59, `the age is kept: ${JSON.stringify(line)}`);
    await ok(client, credentialsLine(primary, [mirror]));
    await ok(client, { type: "set_ingest", content: { base_url: ingest.url, token: FAKE_INGEST_TOKEN } });
    await ok(client, { type: "flush_data" });
    await waitOutboxEmpty(client);
    for (const reference of old.waitingCvs) assert.equal(received(mirror, reference), 1, reference);
    assert.equal(mirror.receivedCvs.length, old.waitingCvs.length, "nothing else (no dead letter sent)");
    assert.equal(received(primary, "old-1"), 0, "the primary gets no mirror copy");
    const big = mirror.receivedCvs.find((sent) => sent.referenceNumber === "old-big")!;
    assert.equal((big.presentation as string).length, 45_000);
    const jobs = ingest.items("job", "boss").map((item) => item.job_id as string);
    assert.deepEqual(jobs.toSorted(), old.waitingJobs.toSorted(), "every job item once");
    const letters = await ok(client, { type: "dead_letters" }) as Record<string, unknown>[];
    assert.deepEqual(
      letters.map((letter) => letter.reference_number ?? letter.data_type).toSorted(),
      ["job", "old-refused"],
    );
    assert.ok(letters.some((letter) => String(letter.reason).includes("answered 400: bad item")));
    assert.equal((await client.finish()).status.code, 0);

    // Nothing old is left but the held run's rows; a second start moves nothing again.
    const kv = await Deno.openKv(dir.kv);
    const left = [
      ...await Array.fromAsync(kv.list({ prefix: ["cv_outbox"] })),
      ...await Array.fromAsync(kv.list({ prefix: ["cv_outbox_part"] })),
      ...await Array.fromAsync(kv.list({ prefix: ["cv_dead"] })),
      ...await Array.fromAsync(kv.list({ prefix: ["ingest", "out_part"] })),
      ...await Array.fromAsync(kv.list({ prefix: ["ingest", "dead"] })),
    ];
    assert.deepEqual(left.map((row) => row.key), []);
    const rows = await Array.fromAsync(kv.list({ prefix: ["ingest", "out"] }));
    assert.deepEqual(rows.map((row) => row.key[2]), [rows[0]?.key[2]], "only the held run's row is left");
    assert.equal((await Array.fromAsync(kv.list({ prefix: ["ingest", "run"] }))).length, 1, "the held claim");
    kv.close();
    await using again = await startLiveClient(dir);
    await ok(again, credentialsLine(primary, [mirror]));
    await ok(again, { type: "set_ingest", content: { base_url: ingest.url, token: FAKE_INGEST_TOKEN } });
    await ok(again, { type: "flush_data" });
    assert.equal((await again.finish()).status.code, 0);
    assert.equal(mirror.receivedCvs.length, old.waitingCvs.length);
    assert.deepEqual(ingest.items("job", "boss").length, old.waitingJobs.length);
    for (const job of old.heldJobs) assert.ok(!jobs.includes(job));
  } finally {
    await ingest.close();
  }
});

Deno.test("several processes opening an old store at once move each entry once: each CV delivered once", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  const kv = await Deno.openKv(dir.kv);
  const references = Array.from({ length: 200 }, (_, i) => `race-${i}`);
  for (let start = 0; start < references.length; start += 50) {
    const atomic = kv.atomic();
    references.slice(start, start + 50).forEach((reference, i) =>
      putOldCv(atomic, "cv_outbox", mirror.url, oldCvId(Date.now(), start + i), JSON.stringify(cv(reference)))
    );
    assert.ok((await atomic.commit()).ok);
  }
  kv.close();
  const clients = await Promise.all(Array.from({ length: 3 }, () => startLiveClient(dir)));
  try {
    // Each opens the store (and migrates) at the same moment: the first command needing the outbox.
    await Promise.all(clients.map((client) => ok(client, credentialsLine(primary, [mirror]))));
    await waitOutboxEmpty(clients[0]);
    for (const reference of references) assert.equal(received(mirror, reference), 1, reference);
    for (const client of clients) assert.equal((await client.finish()).status.code, 0);
    assert.equal(mirror.receivedCvs.length, references.length);
  } finally {
    for (const client of clients) await client.close();
  }
});

Deno.test("entries too big for one atomic operation move in steps: three processes at once, each delivered once", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv();
  const ingest = startFakeIngest();
  await using dir = await liveDir();
  try {
    // Over Deno.Kv's 800 KiB a atomic operation: the earlier version wrote them in several commits.
    const kv = await Deno.openKv(dir.kv);
    const start = Date.now() - 60_000;
    const sizes = { "big-1": 1_500_000, "big-2": 1_000_000 };
    for (const [reference, size] of Object.entries(sizes)) {
      const payload = JSON.stringify(cv(reference, { presentation: "x".repeat(size) }));
      await writeRows(kv, (sink) => putOldCv(sink, "cv_outbox", mirror.url, oldCvId(start, 0), payload));
    }
    const small = Array.from({ length: 10 }, (_, i) => `small-${i}`);
    await writeRows(kv, (sink) => {
      small.forEach((reference, i) =>
        putOldCv(sink, "cv_outbox", mirror.url, oldCvId(start + 1, i), JSON.stringify(cv(reference)))
      );
    });
    const run = oldRunId(start);
    const rowKey = [run, "job", "boss", 0, 0];
    await writeRows(kv, (sink) => {
      sink.set(["ingest", "run", run], { owner: run, until: start + 1000 }); // its process died
      putOldRow(sink, ["ingest", "out", ...rowKey], ["ingest", "out_part", ...rowKey], [
        { job_id: "j-huge", text: "y".repeat(1_200_000) },
      ]);
    });
    kv.close();

    const clients = await Promise.all(Array.from({ length: 3 }, () => startLiveClient(dir)));
    try {
      // Each opens the store (and migrates) at the same moment: the first command needing the outbox.
      await Promise.all(clients.map(async (client) => {
        await ok(client, credentialsLine(primary, [mirror]));
        await ok(client, { type: "set_ingest", content: { base_url: ingest.url, token: FAKE_INGEST_TOKEN } });
      }));
      await waitOutboxEmpty(clients[0]);
      for (const reference of [...Object.keys(sizes), ...small]) {
        assert.equal(received(mirror, reference), 1, reference);
      }
      assert.equal(mirror.receivedCvs.length, small.length + 2);
      for (const [reference, size] of Object.entries(sizes)) {
        const sent = mirror.receivedCvs.find((one) => one.referenceNumber === reference)!;
        assert.equal((sent.presentation as string).length, size, `${reference} whole`);
      }
      const jobs = ingest.items("job", "boss");
      assert.deepEqual(jobs.map((item) => item.job_id), ["j-huge"], "the big row once");
      assert.equal((jobs[0].text as string).length, 1_200_000);
      for (const client of clients) assert.equal((await client.finish()).status.code, 0);
    } finally {
      for (const client of clients) await client.close();
    }
    const after = await Deno.openKv(dir.kv);
    try {
      assert.deepEqual(await oldRowsLeft(after), [], "nothing of the old layout, no marker");
      const parts = await Array.fromAsync(after.list({ prefix: ["outbox", "part"] }));
      assert.deepEqual(parts.map((row) => row.key), [], "no payload part left behind");
    } finally {
      after.close();
    }
  } finally {
    await ingest.close();
  }
});
