/**
 * The dedupe marks' store layer on a real Deno.Kv file, with two writers as two processes would be (two
 * store handles): marks another writer commits are seen at the next sync, also when its commits land out
 * of order; the in-memory table keeps claims and drops what expired when it grows.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../src/clock.ts";
import { DedupeMarks } from "../src/ingest/dedupe_marks.ts";
import { DigestTable } from "../src/ingest/digest_table.ts";

const STREAM = { dataType: "job", platform: "boss" } as const;
const LIFETIME = 72 * 60 * 60 * 1000;

async function withStore(fn: (open: () => Promise<Deno.Kv>) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dedupe_marks_" });
  const opened: Deno.Kv[] = [];
  try {
    await fn(async () => {
      const kv = await Deno.openKv(`${dir}/store.kv`);
      opened.push(kv);
      return kv;
    });
  } finally {
    for (const kv of opened) kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Two writers on one store file, as two processes would be, and a clock at 2026-01-01. */
async function twoWriters(open: () => Promise<Deno.Kv>) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const expiry = clock.now() + LIFETIME;
  const kvA = await open();
  const kvB = await open();
  const a = new DedupeMarks(kvA, clock, STREAM, "job_id", "writer-a", LIFETIME);
  const b = new DedupeMarks(kvB, clock, STREAM, "job_id", "writer-b", LIFETIME);
  return { clock, expiry, kvA, kvB, a, b };
}

async function commit(kv: Deno.Kv, mutations: Deno.KvMutation[]): Promise<void> {
  assert.ok((await kv.atomic().mutate(...mutations).commit()).ok);
}

Deno.test("marks of another writer are seen at the next sync, also when its chunks land out of order", async () => {
  await withStore(async (open) => {
    const { clock, expiry, kvA, a, b } = await twoWriters(open);
    await a.sync();
    await b.sync(); // loaded: nothing stored yet
    const first = a.mutations([1, 10], expiry);
    const second = a.mutations([2, 20], expiry);
    await commit(kvA, second); // seq 2 lands while seq 1 is still in flight
    await b.sync();
    assert.equal(b.table.get(2, 20), expiry);
    assert.equal(b.table.get(1, 10), 0);
    await commit(kvA, first);
    await b.sync();
    assert.equal(b.table.get(1, 10), expiry, "a chunk that landed after a later one is read");

    // A gap seen at load (seq 4 in flight, 3 and 5 committed) is filled once it lands.
    const [third, fourth, fifth] = [
      a.mutations([3, 30], expiry),
      a.mutations([4, 40], expiry),
      a.mutations([5, 50], expiry),
    ];
    await commit(kvA, third);
    await commit(kvA, fifth);
    const c = new DedupeMarks(await open(), clock, STREAM, "job_id", "writer-c", LIFETIME);
    await c.sync();
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => c.table.get(n, 10 * n)), [expiry, expiry, expiry, 0, expiry]);
    await commit(kvA, fourth);
    await c.sync();
    assert.equal(c.table.get(4, 40), expiry);
    assert.equal(a.table.get(4, 40), 0, "a writer does not read its own chunks back");
  });
});

Deno.test("a sync after another writer's commit sees it; one without new commits reads no chunk", async () => {
  await withStore(async (open) => {
    const { clock, expiry, kvA, kvB, a, b } = await twoWriters(open);
    await b.sync();
    await commit(kvB, b.mutations([9, 9], expiry)); // its own commits do not count as another's
    let lists = 0;
    const list = kvB.list.bind(kvB);
    kvB.list = ((...args: Parameters<Deno.Kv["list"]>) => {
      lists++;
      return list(...args);
    }) as Deno.Kv["list"];
    await b.sync();
    assert.equal(lists, 0);
    await a.sync();
    await commit(kvA, a.mutations([7, 70, 8, 80], expiry));
    await b.sync();
    assert.ok(lists > 0);
    assert.equal(b.table.get(7, 70), expiry);
    assert.equal(b.table.get(8, 80), expiry);
    // Another scope (field) is not affected.
    const other = new DedupeMarks(kvB, clock, STREAM, "company_id", "writer-b", LIFETIME);
    await other.sync();
    assert.equal(other.table.get(7, 70), 0);
  });
});

Deno.test("a writer joins its small chunks into one row; readers before and after the join see every mark", async () => {
  await withStore(async (open) => {
    const { clock, expiry, kvA, a, b } = await twoWriters(open);
    await a.sync();
    await b.sync();
    const first = a.chunk([1, 1], expiry);
    const second = a.chunk([2, 2], expiry);
    await commit(kvA, second.mutations);
    second.done(true);
    await b.sync(); // sees 2; 1 is still in flight
    await commit(kvA, first.mutations);
    first.done(true);
    for (let n = 3; n <= 250; n++) { // lines of one item each
      const line = a.chunk([n, n], expiry);
      await commit(kvA, line.mutations);
      line.done(true);
    }
    await a.joined();
    const chunks = await Array.fromAsync(
      kvA.list({ prefix: ["ingest", "marks", "job", "boss", "job_id", "c"] }),
    );
    assert.equal(chunks.length, 1 + 50, "200 chunks of one mark joined into one row");
    await b.sync();
    const c = new DedupeMarks(await open(), clock, STREAM, "job_id", "writer-c", LIFETIME);
    await c.sync();
    for (let n = 1; n <= 250; n++) {
      assert.equal(b.table.get(n, n), expiry, `reader from before the join: ${n}`);
      assert.equal(c.table.get(n, n), expiry, `reader after the join: ${n}`);
    }
  });
});

Deno.test("the digest table keeps every entry and claim as it grows, and drops expired ones", () => {
  const table = new DigestTable();
  const now = 1_000_000;
  for (let n = 1; n <= 20_000; n++) table.set(n * 2654435761 >>> 0, n, n <= 100 ? -n : now + n, now);
  table.set(7, 7, now - 1, now); // expired
  for (let n = 1; n <= 20_000; n++) assert.equal(table.get(n * 2654435761 >>> 0, n), n <= 100 ? -n : now + n);
  for (let n = 20_001; n <= 60_000; n++) table.set(n * 2654435761 >>> 0, n, now + n, now + 1); // rebuilds
  assert.equal(table.get(7, 7), 0);
  assert.equal(table.get(2654435761 >>> 0, 1), -1);
  assert.equal(table.get(60_000 * 2654435761 >>> 0, 60_000), now + 60_000);
});
