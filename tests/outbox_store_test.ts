/**
 * The outbox's storage guarantees on Deno.Kv (the contract a Redis implementation must keep too): a lease is
 * taken once, also by two store handles on one file at the same moment; a keyed put replaces the waiting
 * copy and counts it once; calls with a stale token leave the entry alone; counters follow the entries;
 * payloads over a store value's size come back whole; dead letters list newest first.
 */

import assert from "node:assert/strict";
import { CommitBatcher } from "../src/cache/commit_batcher.ts";
import { KvOutboxStore } from "../src/outbox/kv_outbox_store.ts";
import type { NewOutboxEntry, OutboxStore } from "../src/outbox/outbox_store.ts";

const encoder = new TextEncoder();

async function withStores(
  count: number,
  fn: (stores: (KvOutboxStore & { path: string })[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "outbox_store_" });
  const path = `${dir}/store.kv`;
  const kvs = await Promise.all(Array.from({ length: count }, () => Deno.openKv(path)));
  try {
    await fn(kvs.map((kv) => Object.assign(new KvOutboxStore(kv, new CommitBatcher(kv)), { path })));
  } finally {
    for (const kv of kvs) kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function entry(
  label: string,
  key: string | null = null,
  payload = `{"referenceNumber":"${label}"}`,
): NewOutboxEntry {
  return {
    channel: "https://mirror.example",
    key,
    route: "scanCV",
    label,
    count: 1,
    payload: encoder.encode(payload),
  };
}

const CHANNEL = "https://mirror.example";

/** Takes `store`'s free and due entries of {@link CHANNEL} as `owner` at `now`, leased until `until`. */
function takeAs(store: OutboxStore, owner: string, now: number, until: number, limit = 10) {
  return store.take(CHANNEL, { owner, now, until, limit, skip: new Set() });
}

Deno.test("two processes taking at the same moment never get the same entry", async () => {
  await withStores(2, async ([a, b]) => {
    const now = Date.now();
    await a.put(Array.from({ length: 30 }, (_, i) => entry(`r${i}`)), "", 0, now);
    const options = (owner: string) => ({
      owner,
      now,
      until: now + 30_000,
      limit: 40,
      skip: new Set<string>(),
    });
    const [first, second] = await Promise.all([a.take(CHANNEL, options("A")), b.take(CHANNEL, options("B"))]);
    const ids = [...first.taken, ...second.taken].map((item) => item.entry.id);
    assert.equal(new Set(ids).size, ids.length, "no entry leased twice");
    // What one did not get because the other won the race is still there for the next look.
    const rest = await a.take(CHANNEL, options("A"));
    assert.equal(ids.length + rest.taken.length, 30);
    // All are leased now: nothing more to take until the leases lapse.
    assert.equal((await b.take(CHANNEL, options("B"))).taken.length, 0);
    const lapsed = await b.take(CHANNEL, { ...options("B"), now: now + 30_001, until: now + 60_000 });
    assert.equal(lapsed.taken.length, 30, "lapsed leases are taken over");
  });
});

Deno.test("a keyed put replaces the waiting copy: one entry, counted once, the newest payload", async () => {
  await withStores(1, async ([store]) => {
    const now = Date.now();
    const [first] = await store.put([entry("ref-1", "scanCV:ref-1", '{"v":1}')], "", 0, now);
    const [second] = await store.put([entry("ref-1", "scanCV:ref-1", '{"v":2}')], "", 0, now + 5);
    assert.equal(first.entry.id, second.entry.id);
    assert.equal((await store.status()).get(CHANNEL)?.pending, 1);
    const { taken } = await takeAs(store, "A", now + 10, now + 1000);
    assert.equal(taken.length, 1);
    assert.equal(new TextDecoder().decode(taken[0].payload), '{"v":2}');
    // The stale lease of the first copy acks nothing; the current one does.
    await store.ack([first.lease], "A");
    assert.equal((await store.status()).get(CHANNEL)?.pending, 1);
    await store.ack([taken[0].lease], "A");
    const counts = (await store.status()).get(CHANNEL)!;
    assert.deepEqual([counts.pending, counts.delivered, counts.dead], [0, 1, 0]);
    // Delivered: the key is free, a new copy is a new entry.
    const [third] = await store.put([entry("ref-1", "scanCV:ref-1")], "", 0, now + 20);
    assert.notEqual(third.entry.id, first.entry.id);
  });
});

Deno.test("an entry replaced while in flight is not removed by the old delivery's ack, and is freed to be sent", async () => {
  await withStores(1, async ([store]) => {
    const now = Date.now();
    const [inFlight] = await store.put([entry("ref-2", "scanCV:ref-2", '{"v":1}')], "A", now + 30_000, now);
    await store.put([entry("ref-2", "scanCV:ref-2", '{"v":2}')], "B", now + 30_000, now);
    await store.ack([inFlight.lease], "A");
    assert.equal((await store.status()).get(CHANNEL)?.pending, 1, "the newer copy waits");
  });
});

Deno.test("reschedule frees the entry until its next time; bury keeps it as a dead letter with its reason", async () => {
  await withStores(1, async ([store]) => {
    const now = Date.now();
    const [a, b] = await store.put([entry("ra"), entry("rb")], "A", now + 30_000, now);
    await store.reschedule(a.lease, "A", {
      nextAt: now + 500,
      attempts: 1,
      refusal: null,
      refusals: 0,
      lastError: "could not be reached",
    });
    const early = await takeAs(store, "B", now + 100, now + 1000);
    assert.equal(early.taken.length, 0);
    assert.equal(early.nextCheckAt, now + 500);
    const due = await takeAs(store, "B", now + 500, now + 1000);
    assert.deepEqual(due.taken.map((item) => [item.entry.label, item.entry.attempts]), [["ra", 1]]);
    await store.bury(b.lease, "A", "answered 400: bad cv", now + 1);
    await store.bury(due.taken[0].lease, "B", "answered 500: parsing time", now + 2);
    const letters = await store.deadLetters(10);
    assert.deepEqual(letters.map((letter) => [letter.label, letter.reason]), [
      ["ra", "answered 500: parsing time"],
      ["rb", "answered 400: bad cv"],
    ]);
    const counts = (await store.status()).get(CHANNEL)!;
    assert.deepEqual([counts.pending, counts.dead, counts.lastError], [0, 2, "answered 500: parsing time"]);
  });
});

Deno.test("a payload bigger than a store value comes back whole", async () => {
  await withStores(1, async ([store]) => {
    const now = Date.now();
    const big = "履历".repeat(100_000); // ~600 KB of UTF-8
    await store.put([{ ...entry("big"), payload: encoder.encode(big) }], "", 0, now);
    const { taken } = await takeAs(store, "A", now, now + 1000, 1);
    assert.equal(new TextDecoder().decode(taken[0].payload), big);
  });
});

Deno.test("renew extends held leases; a lease another process took over is not renewed", async () => {
  await withStores(1, async ([store]) => {
    const now = Date.now();
    const [mine, lost] = await store.put([entry("m"), entry("l")], "A", now + 100, now);
    const stolen = await takeAs(store, "B", now + 101, now + 1000);
    assert.equal(stolen.taken.length, 2);
    const renewed = await store.renew([mine.lease, lost.lease], "A", now + 5000);
    assert.deepEqual(renewed, [null, null]);
    const again = await store.renew(stolen.taken.map((item) => item.lease), "B", now + 5000);
    assert.ok(again.every((lease) => lease !== null));
    assert.equal(
      (await takeAs(store, "C", now + 1001, now + 2000)).taken.length,
      0,
    );
  });
});

Deno.test("a keyed put of a payload bigger than one atomic operation replaces the waiting copy, counted once", async () => {
  await withStores(1, async ([store]) => {
    const now = Date.now();
    const big = (version: number) => `{"v":${version},"cvs":"${"x".repeat(1_200_000)}"}`; // over 800 KiB
    const key = `allCVs:${"k".repeat(2_000)}`; // a long key too: the row keeps its digest
    await store.put(
      [{ ...entry("list", key), route: "allCVs", payload: encoder.encode(big(1)) }],
      "",
      0,
      now,
    );
    await store.put(
      [{ ...entry("list", key), route: "allCVs", payload: encoder.encode(big(2)) }],
      "",
      0,
      now + 5,
    );
    assert.equal((await store.status()).get(CHANNEL)?.pending, 1);
    const { taken } = await takeAs(store, "A", now + 10, now + 1000);
    assert.equal(taken.length, 1);
    assert.equal(new TextDecoder().decode(taken[0].payload), big(2));
    await store.ack([taken[0].lease], "A");
    const counts = (await store.status()).get(CHANNEL)!;
    assert.deepEqual([counts.pending, counts.delivered], [0, 1]);
  });
});

Deno.test("a keyed put commits its entries and the writes it is given in one atomic operation, also when it replaces waiting copies", async () => {
  await withStores(1, async ([store]) => {
    const kv = await Deno.openKv(store.path);
    try {
      const now = Date.now();
      const copies = (version: number) =>
        ["https://mirror-a.example", "https://mirror-b.example"].map((channel) => ({
          ...entry("ref-7", "scanCV:ref-7", `{"v":${version}}`),
          channel,
        }));
      const mark = (value: string): Deno.KvMutation[] => [{ type: "set", key: ["also", value], value }];
      const first = await store.put(copies(1), "A", now + 30_000, now, mark("first"));
      const stamp = (await kv.get(["also", "first"])).versionstamp;
      assert.ok(stamp !== null);
      for (const copy of first) {
        assert.equal(
          (await kv.get(["outbox", "entry", copy.entry.channel, copy.entry.id])).versionstamp,
          stamp,
        );
      }
      // Both keys are taken now: the put reads the waiting copies and replaces them, still in one operation.
      const second = await store.put(copies(2), "A", now + 30_000, now + 5, mark("second"));
      assert.deepEqual(second.map((copy) => copy.entry.id), first.map((copy) => copy.entry.id));
      const again = (await kv.get(["also", "second"])).versionstamp;
      for (const copy of second) {
        assert.equal(
          (await kv.get(["outbox", "entry", copy.entry.channel, copy.entry.id])).versionstamp,
          again,
        );
        assert.equal((await store.status()).get(copy.entry.channel)?.pending, 1, "counted once");
      }
      // Copies that together pass one operation's size: the big payloads go first, the rest still together.
      const big = `{"v":3,"text":"${"x".repeat(500_000)}"}`;
      const large = copies(3).map((copy) => ({ ...copy, key: "scanCV:ref-8", payload: encoder.encode(big) }));
      const third = await store.put(large, "A", now + 30_000, now + 10, mark("third"));
      const last = (await kv.get(["also", "third"])).versionstamp;
      for (const copy of third) {
        assert.equal(
          (await kv.get(["outbox", "entry", copy.entry.channel, copy.entry.id])).versionstamp,
          last,
        );
      }
    } finally {
      kv.close();
    }
  });
});
