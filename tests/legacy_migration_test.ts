/**
 * The move of an earlier version's entries that are too big for one Deno.Kv atomic operation, on real Kv
 * files: a crash after any write of the move (simulated by a handle whose writes fail from the N-th on, for
 * every N) followed by a start neither loses an entry nor leaves two, nor leaves old rows or unreferenced
 * parts; two handles migrating at once (one of them crashing) move each entry once.
 */

import assert from "node:assert/strict";
import { CommitBatcher } from "../src/cache/commit_batcher.ts";
import { migrateLegacyOutbox } from "../src/outbox/kv_legacy_migration.ts";
import { KvOutboxStore } from "../src/outbox/kv_outbox_store.ts";
import { cvCopies } from "../src/outbox/cv_channel.ts";
import { oldCvId, oldRowsLeft, oldRunId, putOldCv, putOldRow, writeRows } from "./helpers/legacy_store.ts";

const CHANNEL = "https://mirror.example";
const STREAM = "ingest/job/boss";
const decoder = new TextDecoder();

/** A Deno.Kv handle whose writes fail from the `limit`-th on (a process that died there); reads still work. */
function crashingAt(kv: Deno.Kv, limit: number): { kv: Deno.Kv; crashed: () => boolean } {
  let writes = 0;
  let crashed = false;
  const write = <T>(commit: () => Promise<T>): Promise<T> => {
    if (writes >= limit) {
      crashed = true;
      return Promise.reject(new Error("the process died here"));
    }
    writes++;
    return commit();
  };
  const atomic = (operation: Deno.AtomicOperation): Deno.AtomicOperation => {
    const proxy: Deno.AtomicOperation = new Proxy(operation, {
      get(target, property) {
        if (property === "commit") return () => write(() => target.commit());
        const value = Reflect.get(target, property);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          const result = value.apply(target, args);
          return result === target ? proxy : result; // chained calls stay on the proxy
        };
      },
    });
    return proxy;
  };
  const proxy = new Proxy(kv, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (typeof value !== "function") return value;
      if (property === "atomic") return () => atomic(target.atomic());
      if (property === "set" || property === "delete") {
        return (...args: unknown[]) => write(() => value.apply(target, args));
      }
      return value.bind(target);
    },
  });
  return { kv: proxy, crashed: () => crashed };
}

function cvText(reference: string, presentation: string): string {
  return JSON.stringify({ referenceNumber: reference, presentation });
}

/**
 * An earlier version's store: CVs over 300 KB (one over 800 KiB; one whose reference has an older copy
 * waiting in the one outbox, one whose reference has a newer one), a big CV dead letter, a big ingest row
 * and a small CV.
 */
async function writeScenario(path: string): Promise<void> {
  const kv = await Deno.openKv(path);
  const start = Date.now() - 60_000;
  await writeRows(kv, (sink) => {
    putOldCv(sink, "cv_outbox", CHANNEL, oldCvId(start, 0), cvText("big-1", "a".repeat(1_000_000)));
    putOldCv(sink, "cv_outbox", CHANNEL, oldCvId(start, 1), cvText("big-2", "b".repeat(400_000)));
    putOldCv(sink, "cv_outbox", CHANNEL, oldCvId(start, 2), cvText("big-3", "c".repeat(400_000)));
    putOldCv(sink, "cv_outbox", CHANNEL, oldCvId(start, 3), cvText("small-1", "small"));
    putOldCv(sink, "cv_dead", CHANNEL, oldCvId(start, 4), cvText("big-dead", "d".repeat(400_000)));
    const run = oldRunId(start);
    sink.set(["ingest", "run", run], { owner: run, until: start + 1000 }); // its process died
    const row = [run, "job", "boss", 0, 0];
    putOldRow(sink, ["ingest", "out", ...row], ["ingest", "out_part", ...row], [
      { job_id: "j-huge", text: "e".repeat(400_000) },
    ]);
  });
  // Copies the one outbox already holds: big-2's is older than the old entry, big-3's newer.
  const store = new KvOutboxStore(kv, new CommitBatcher(kv));
  await store.put(
    cvCopies([CHANNEL], { referenceNumber: "big-2", presentation: "older" }),
    "",
    0,
    start - 10_000,
  );
  await store.put(
    cvCopies([CHANNEL], { referenceNumber: "big-3", presentation: "newer" }),
    "",
    0,
    Date.now(),
  );
  kv.close();
}

/** Every entry once, whole; the dead letter with its parts; nothing old, no part without its entry. */
async function assertMovedOnce(kv: Deno.Kv, note: string): Promise<void> {
  const store = new KvOutboxStore(kv, new CommitBatcher(kv));
  const status = await store.status();
  assert.deepEqual(
    [status.get(CHANNEL)?.pending, status.get(CHANNEL)?.dead, status.get(STREAM)?.pending],
    [4, 1, 1],
    note,
  );
  const options = {
    owner: "check",
    now: Date.now(),
    until: Date.now() + 60_000,
    limit: 40,
    skip: new Set<string>(),
  };
  const cvs = (await store.take(CHANNEL, options)).taken;
  const presentations = Object.fromEntries(cvs.map((item) => {
    const cv = JSON.parse(decoder.decode(item.payload));
    return [item.entry.label, cv.presentation.length === 5 ? cv.presentation : cv.presentation.length];
  }));
  assert.deepEqual(presentations, {
    "big-1": 1_000_000,
    "big-2": 400_000,
    "big-3": "newer",
    "small-1": "small",
  }, note);
  const [job] = (await store.take(STREAM, options)).taken;
  assert.equal(JSON.parse(decoder.decode(job.payload)).text.length, 400_000, note);
  const letters = await store.deadLetters(10);
  assert.deepEqual(letters.map((letter) => letter.label), ["big-dead"], note);

  assert.deepEqual(await oldRowsLeft(kv), [], `${note}: old rows left`);
  const idOf = (key: Deno.KvKey, at: number) => `${String(key[at])} ${String(key[at + 1])}`;
  const entries = new Set<string>();
  for await (const row of kv.list({ prefix: ["outbox", "entry"] })) {
    entries.add(idOf(row.key, 2));
  }
  for await (const row of kv.list({ prefix: ["outbox", "dead"] })) entries.add(idOf(row.key, 3));
  const parts = new Map<string, number>();
  for await (const row of kv.list({ prefix: ["outbox", "part"] })) {
    const id = idOf(row.key, 2);
    parts.set(id, (parts.get(id) ?? 0) + 1);
  }
  for (const id of parts.keys()) assert.ok(entries.has(id), `${note}: parts without an entry: ${id}`);
  assert.equal(parts.size, entries.size, `${note}: every entry has its parts`);
  assert.equal(Math.max(...parts.values()), Math.ceil(1_000_050 / 60_000), `${note}: big-1's parts`);
}

async function withStoreFile(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "legacy_migration_" });
  try {
    await fn(`${dir}/store.kv`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function migrate(kv: Deno.Kv) {
  return await migrateLegacyOutbox(kv, new KvOutboxStore(kv, new CommitBatcher(kv)), Date.now());
}

Deno.test("a crash after any write of a move in steps: the next start moves each big entry once, whole", async () => {
  let steps = 0;
  for (let crashAt = 0;; crashAt++) {
    let finished = false;
    await withStoreFile(async (path) => {
      await writeScenario(path);
      const first = await Deno.openKv(path);
      const dying = crashingAt(first, crashAt);
      await migrate(dying.kv).catch(() => {});
      first.close();
      finished = !dying.crashed();
      const kv = await Deno.openKv(path);
      try {
        await migrate(kv);
        await assertMovedOnce(kv, `crash before write ${crashAt}`);
        assert.deepEqual(await migrate(kv), { moved: 0, dead: 0, left: 0 }, "a third start moves nothing");
      } finally {
        kv.close();
      }
    });
    if (finished) break;
    steps++;
  }
  // Parts in several operations for each big entry, then its row, then the old parts: many crash points.
  assert.ok(steps >= 15, `${steps} writes`);
});

Deno.test("two processes migrating at once, one of them dying at any write: each big entry moved once", async () => {
  for (let crashAt = 0; crashAt < 30; crashAt += 3) {
    await withStoreFile(async (path) => {
      await writeScenario(path);
      const [a, b] = [await Deno.openKv(path), await Deno.openKv(path)];
      const dying = crashingAt(a, crashAt);
      await Promise.all([migrate(dying.kv).catch(() => {}), migrate(b)]);
      a.close();
      try {
        await migrate(b); // a later start finishes what the dead one left
        await assertMovedOnce(b, `one died before write ${crashAt}`);
      } finally {
        b.close();
      }
    });
  }
});
