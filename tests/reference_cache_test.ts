/**
 * The durable reference cache: lifetimes (72 h, 12 h, never shortened), long reference numbers, durability of
 * every answered write, and where the store lives.
 *
 * The first half tests `ReferenceCache` itself over a real Deno.Kv file with a `ManualClock`; the second half
 * spawns the client the way a scraper does, using `RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS` to move its clock.
 */
import assert from "node:assert/strict";
import { LONG_LIFETIME_MS, ReferenceCache, SHORT_LIFETIME_MS } from "../src/cache/reference_cache.ts";
import { ManualClock } from "../src/clock.ts";
import {
  OK,
  OK_FALSE,
  OK_TRUE,
  READY_LINE,
  runSession,
  spawnClient,
  tempDir,
} from "./helpers/spawn_client.ts";

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const T0 = Date.UTC(2025, 0, 1);

const set = (reference: string) => ({ type: "set_cached_reference", content: reference });
const setShort = (reference: string) => ({ type: "set_short_cached_reference", content: reference });
const has = (reference: string) => ({ type: "has_cached_reference", content: reference });

/** A Deno.Kv file in a temp dir that a test can close and open again, as a restarted process would. */
class KvFile implements AsyncDisposable {
  readonly path: string;
  #open: Deno.Kv[] = [];

  private constructor(readonly dir: string) {
    this.path = `${dir}/cache.kv`;
  }

  static async create(): Promise<KvFile> {
    return new KvFile(await Deno.makeTempDir({ prefix: "rtcv_reference_cache_test_" }));
  }

  async open(): Promise<Deno.Kv> {
    const kv = await Deno.openKv(this.path);
    this.#open.push(kv);
    return kv;
  }

  close(kv: Deno.Kv): void {
    kv.close();
    this.#open = this.#open.filter((open) => open !== kv);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const kv of this.#open) kv.close();
    await Deno.remove(this.dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The cache layer, with a manual clock.

Deno.test("set_cached_reference lifetime: cached at 71h59m, not at 72h + 1 ms (same and fresh cache)", async () => {
  await using file = await KvFile.create();
  const kv = await file.open();
  const clock = new ManualClock(T0);
  const cache = new ReferenceCache(kv, clock);
  await cache.setLong("long-1");
  assert.equal(await cache.has("long-1"), true);
  clock.advance(71 * HOUR + 59 * MINUTE);
  assert.equal(await cache.has("long-1"), true);
  assert.equal(await new ReferenceCache(kv, clock).has("long-1"), true, "read from the store");
  clock.advance(MINUTE - 1); // 72 h - 1 ms
  assert.equal(await new ReferenceCache(kv, clock).has("long-1"), true);
  clock.advance(2); // 72 h + 1 ms
  assert.equal(await cache.has("long-1"), false, "remembered entries expire too");
  assert.equal(await new ReferenceCache(kv, clock).has("long-1"), false, "expired in the store");
  assert.equal(LONG_LIFETIME_MS, 72 * HOUR);
});

Deno.test("set_short_cached_reference lifetime: cached at 11h59m, not at 12h + 1 ms", async () => {
  await using file = await KvFile.create();
  const kv = await file.open();
  const clock = new ManualClock(T0);
  const cache = new ReferenceCache(kv, clock);
  await cache.setShort("short-1");
  clock.advance(11 * HOUR + 59 * MINUTE);
  assert.equal(await cache.has("short-1"), true);
  assert.equal(await new ReferenceCache(kv, clock).has("short-1"), true);
  clock.advance(MINUTE + 1);
  assert.equal(await cache.has("short-1"), false);
  assert.equal(await new ReferenceCache(kv, clock).has("short-1"), false);
  assert.equal(SHORT_LIFETIME_MS, 12 * HOUR);
});

Deno.test("a short set after a long set does not shorten the lifetime (same cache, and another over the store)", async () => {
  await using file = await KvFile.create();
  const kv = await file.open();
  const clock = new ManualClock(T0);
  const cache = new ReferenceCache(kv, clock);
  await cache.setLong("same");
  await cache.setLong("other");
  clock.advance(HOUR);
  await cache.setShort("same");
  await new ReferenceCache(kv, clock).setShort("other"); // knows nothing: must read the store
  clock.advance(70 * HOUR); // T0 + 71 h: long past the short lifetime
  for (const reference of ["same", "other"]) {
    assert.equal(await cache.has(reference), true, reference);
    assert.equal(await new ReferenceCache(kv, clock).has(reference), true, reference);
  }
  clock.advance(HOUR + 1); // T0 + 72 h + 1 ms
  for (const reference of ["same", "other"]) {
    assert.equal(await new ReferenceCache(kv, clock).has(reference), false, reference);
  }
});

Deno.test("a long set after a short set extends the lifetime; a later short set extends a short one", async () => {
  await using file = await KvFile.create();
  const kv = await file.open();
  const clock = new ManualClock(T0);
  const cache = new ReferenceCache(kv, clock);
  await cache.setShort("short-then-long");
  await cache.setShort("short-then-short");
  clock.advance(6 * HOUR);
  await cache.setLong("short-then-long");
  await new ReferenceCache(kv, clock).setShort("short-then-short");
  clock.advance(12 * HOUR - 1); // T0 + 18 h - 1 ms
  assert.equal(await new ReferenceCache(kv, clock).has("short-then-long"), true);
  assert.equal(await new ReferenceCache(kv, clock).has("short-then-short"), true);
  clock.advance(2); // T0 + 18 h + 1 ms
  assert.equal(await new ReferenceCache(kv, clock).has("short-then-short"), false);
  assert.equal(await new ReferenceCache(kv, clock).has("short-then-long"), true);
  clock.advance(60 * HOUR - 2); // T0 + 78 h - 1 ms
  assert.equal(await new ReferenceCache(kv, clock).has("short-then-long"), true);
  clock.advance(2);
  assert.equal(await new ReferenceCache(kv, clock).has("short-then-long"), false);
});

Deno.test("entries are read back by a fresh cache over the reopened store, with their lifetimes", async () => {
  await using file = await KvFile.create();
  const clock = new ManualClock(T0);
  const first = await file.open();
  const writer = new ReferenceCache(first, clock);
  await writer.setLong("reopen-long");
  await writer.setShort("reopen-short");
  file.close(first);

  const second = await file.open();
  const reader = new ReferenceCache(second, clock);
  assert.equal(await reader.has("reopen-long"), true);
  assert.equal(await reader.has("reopen-short"), true);
  assert.equal(await reader.has("reopen-never"), false);
  clock.advance(SHORT_LIFETIME_MS + 1);
  assert.equal(await reader.has("reopen-long"), true);
  assert.equal(await reader.has("reopen-short"), false);
});

Deno.test("'not cached' is never remembered: a write by another cache over the same store is seen", async () => {
  await using file = await KvFile.create();
  const kv = await file.open();
  const clock = new ManualClock(T0);
  const a = new ReferenceCache(kv, clock);
  const b = new ReferenceCache(kv, clock);
  assert.equal(await a.has("shared"), false);
  await b.setLong("shared");
  assert.equal(await a.has("shared"), true);
});

Deno.test("a lookup issued before a write of the same number answers as it was before the write", async () => {
  await using file = await KvFile.create();
  const kv = await file.open();
  const clock = new ManualClock(T0);
  const cache = new ReferenceCache(kv, clock);
  const before = [cache.has("order-long"), cache.has("order-short")];
  const writes = [cache.setLong("order-long"), cache.setShort("order-short")];
  const after = [cache.has("order-long"), cache.has("order-short")];
  await Promise.all(writes);
  assert.deepEqual(await Promise.all(before), [false, false]);
  assert.deepEqual(await Promise.all(after), [true, true]);
});

Deno.test("long reference numbers (10 KiB, multi-byte) work and stay distinct", async () => {
  await using file = await KvFile.create();
  const clock = new ManualClock(T0);
  const references = {
    ascii10k: "r".repeat(10 * 1024),
    ascii10kOther: "r".repeat(10 * 1024 - 1) + "s", // differs in the last character only
    multibyte: "日本語😀é".repeat(1200), // ~ 14 KiB of UTF-8
    plainEdge: "a".repeat(1024), // the longest stored as is
    digestEdge: "a".repeat(1025), // the shortest stored under a digest
    threeByteEdge: "日".repeat(341), // 1023 bytes
    threeByteOver: "日".repeat(342), // 1026 bytes
    controlChars: "ref\u0000with\nnewline\u2028and😀",
  };
  const kv = await file.open();
  const cache = new ReferenceCache(kv, clock);
  await cache.setLong(references.ascii10k);
  await cache.setShort(references.multibyte);
  for (const reference of [references.plainEdge, references.digestEdge, references.controlChars]) {
    await cache.setLong(reference);
  }
  await cache.setShort(references.threeByteEdge);
  await cache.setShort(references.threeByteOver);
  await cache.setLong(references.threeByteOver); // extends a digested short entry
  file.close(kv);

  const reopened = await file.open();
  const fresh = new ReferenceCache(reopened, clock);
  assert.equal(await fresh.has(references.ascii10k), true);
  assert.equal(await fresh.has(references.ascii10kOther), false);
  assert.equal(await fresh.has(references.multibyte), true);
  assert.equal(await fresh.has(references.multibyte.slice(0, -1)), false);
  assert.equal(await fresh.has(references.plainEdge), true);
  assert.equal(await fresh.has(references.digestEdge), true);
  assert.equal(await fresh.has("a".repeat(1026)), false);
  assert.equal(await fresh.has(references.threeByteEdge), true);
  assert.equal(await fresh.has(references.threeByteOver), true);
  assert.equal(await fresh.has(references.controlChars), true);
  clock.advance(SHORT_LIFETIME_MS + 1);
  const later = new ReferenceCache(reopened, clock);
  assert.equal(await later.has(references.multibyte), false, "a digested short entry expires");
  assert.equal(await later.has(references.threeByteEdge), false);
  assert.equal(await later.has(references.threeByteOver), true, "the long set extended it");
  assert.equal(await later.has(references.ascii10k), true);
});

Deno.test("many writes issued at once are all committed: every key is readable after reopening", async () => {
  await using file = await KvFile.create();
  const clock = new ManualClock(T0);
  const kv = await file.open();
  const cache = new ReferenceCache(kv, clock);
  const longs = Array.from({ length: 4000 }, (_, i) => `burst-long-${i}`);
  const shorts = Array.from({ length: 600 }, (_, i) => `burst-short-${i}`);
  const warm = Array.from({ length: 1500 }, (_, i) => `burst-warm-${i}`);
  const writes: Promise<unknown>[] = [
    ...longs.map((reference) => cache.setLong(reference)),
    ...shorts.map((reference) => cache.setShort(reference)),
    cache.setManyLong(warm),
  ];
  const results = await Promise.all(writes);
  assert.equal(results.at(-1), warm.length, "setManyLong counts what it cached");
  file.close(kv);

  const reopened = await file.open();
  const fresh = new ReferenceCache(reopened, clock);
  const all = [...longs, ...shorts, ...warm];
  const found = await Promise.all(all.map((reference) => fresh.has(reference)));
  const missing = all.filter((_, i) => !found[i]);
  assert.deepEqual(missing, [], `${missing.length} of ${all.length} writes are not in the store`);
});

// ---------------------------------------------------------------------------------------------------------
// The cache through the client process.

/** A store file in a temp dir and the environment naming it, with an optional clock offset in hours. */
function storeEnv(path: string, offsetHours = 0): Record<string, string> {
  const env: Record<string, string> = { RTCV_SCRAPER_CLIENT_KV: path };
  if (offsetHours !== 0) env.RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS = String(offsetHours * HOUR);
  return env;
}

Deno.test("the cache persists across a restart", async () => {
  await using dir = await tempDir();
  const store = `${dir.path}/store.kv`;
  const first = await runSession([set("restart-long"), setShort("restart-short")], storeEnv(store));
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(first.answers, [OK, OK]);
  const second = await runSession(
    [
      has("restart-long"),
      has("restart-short"),
      { type: "get_cached_reference", content: "restart-long" },
      has("x"),
    ],
    storeEnv(store),
  );
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(second.answers, [OK_TRUE, OK_TRUE, OK_TRUE, OK_FALSE]);
});

Deno.test("after SIGKILL, every write the client answered ok for is in the store", async () => {
  await using dir = await tempDir();
  const store = `${dir.path}/store.kv`;
  const count = 600;
  const references = Array.from({ length: count }, (_, i) => `killed-${i}`);
  {
    await using client = spawnClient({ env: storeEnv(store) });
    await client.ready();
    // One write, as a pipelining scraper does; every second one short-lived.
    await client.sendRaw(
      references.map((reference, i) => JSON.stringify(i % 2 ? setShort(reference) : set(reference)) + "\n")
        .join(""),
    );
    const answers = await client.readLines(count);
    assert.deepEqual(answers, Array(count).fill(OK));
    client.kill("SIGKILL"); // no chance to flush or close anything
    const { status } = await client.waitForExit();
    assert.equal(status.signal, "SIGKILL");
  }
  const check = await runSession(references.map(has), storeEnv(store));
  assert.equal(check.code, 0, check.stderr);
  const missing = references.filter((_, i) => check.answers[i] !== OK_TRUE);
  assert.deepEqual(missing, [], "answered ok, yet lost after the kill");
});

Deno.test("lifetimes across processes, with the client's clock moved by RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS", async () => {
  await using dir = await tempDir();
  const store = `${dir.path}/store.kv`;
  const at = async (offsetHours: number, lines: object[]) => {
    const session = await runSession(lines, storeEnv(store, offsetHours));
    assert.equal(session.code, 0, session.stderr);
    return session.answers;
  };
  assert.deepEqual(await at(0, [set("L"), setShort("S"), setShort("S-then-L"), set("L-then-S")]), [
    OK,
    OK,
    OK,
    OK,
  ]);
  // 10 h later: a short set must not shorten L-then-S; a long set extends S-then-L to 82 h.
  assert.deepEqual(await at(10, [setShort("L-then-S"), set("S-then-L")]), [OK, OK]);
  assert.deepEqual(await at(11, [has("L"), has("S")]), [OK_TRUE, OK_TRUE]);
  assert.deepEqual(await at(13, [has("L"), has("S")]), [OK_TRUE, OK_FALSE]);
  assert.deepEqual(await at(71, [has("L"), has("L-then-S"), has("S-then-L")]), [OK_TRUE, OK_TRUE, OK_TRUE]);
  assert.deepEqual(await at(73, [has("L"), has("L-then-S"), has("S-then-L")]), [OK_FALSE, OK_FALSE, OK_TRUE]);
  assert.deepEqual(await at(83, [has("S-then-L")]), [OK_FALSE]);
  // And the store was not changed by asking: at the original time everything long-lived is still there.
  assert.deepEqual(await at(0, [has("L"), has("S")]), [OK_TRUE, OK_TRUE]);
});

Deno.test("a store file of junk bytes is moved aside with a warning on stderr, and the client works", async () => {
  await using dir = await tempDir();
  const store = `${dir.path}/store.kv`;
  const junk = new Uint8Array(8192);
  for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) % 251;
  await Deno.writeFile(store, junk);
  const session = await runSession([set("after-corrupt"), has("after-corrupt")], storeEnv(store));
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.ready, READY_LINE);
  assert.deepEqual(session.answers, [OK, OK_TRUE], "stdout carries only the answers");
  assert.match(session.stderr, /could not be read/);
  const aside = [...Deno.readDirSync(dir.path)].map((entry) => entry.name).filter((name) =>
    name.startsWith("store.kv.corrupt-")
  );
  assert.equal(aside.length, 1, "the damaged file is kept beside the store");
  assert.ok(session.stderr.includes(aside[0]), "the warning says where the damaged file went");
  assert.deepEqual(await Deno.readFile(`${dir.path}/${aside[0]}`), junk);

  const next = await runSession([has("after-corrupt")], storeEnv(store));
  assert.deepEqual(next.answers, [OK_TRUE]);
  assert.equal(next.stderr.includes("could not be read"), false, "the new store is healthy");
});

Deno.test("a truncated store file is moved aside too, and the client works", async () => {
  await using dir = await tempDir();
  const store = `${dir.path}/store.kv`;
  const references = Array.from({ length: 3000 }, (_, i) => `truncated-${i}-${"p".repeat(40)}`);
  const fill = await runSession(references.map(set), storeEnv(store));
  assert.equal(fill.code, 0, fill.stderr);
  const { size } = await Deno.stat(store);
  await Deno.truncate(store, Math.floor(size / 2));
  const session = await runSession(
    [has(references[0]), set("after-truncate"), has("after-truncate")],
    storeEnv(store),
  );
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.answers.length, 3);
  assert.deepEqual(session.answers.slice(1), [OK, OK_TRUE]);
  assert.match(session.stderr, /could not be read/);
});

Deno.test("without RTCV_SCRAPER_CLIENT_KV the store is rtcv_scraper_client.kv in the working directory", async () => {
  await using dir = await tempDir();
  await using other = await tempDir();
  const writing = await runSession([set("default-location")], {}, { cwd: dir.path });
  assert.equal(writing.code, 0, writing.stderr);
  assert.deepEqual(writing.answers, [OK]);
  const stat = await Deno.stat(`${dir.path}/rtcv_scraper_client.kv`);
  assert.ok(stat.isFile);

  const sameDir = await runSession([has("default-location")], {}, { cwd: dir.path });
  assert.deepEqual(sameDir.answers, [OK_TRUE]);
  const otherDir = await runSession([has("default-location")], {}, { cwd: other.path });
  assert.deepEqual(otherDir.answers, [OK_FALSE]);
});

Deno.test({
  name: "a store locked by another process answers a clear error naming it; the client keeps serving",
  // python3's sqlite3 holds the lock (SQLite's own locking, as another program would).
  ignore: !(() => {
    try {
      return new Deno.Command("python3", { args: ["-c", "import sqlite3"] }).outputSync().success;
    } catch {
      return false;
    }
  })(),
  fn: async () => {
    await using dir = await tempDir();
    const store = `${dir.path}/store.kv`;
    const first = await runSession([set("before-lock")], storeEnv(store));
    assert.deepEqual(first.answers, [OK]);
    const locker = new Deno.Command("python3", {
      args: [
        "-c",
        "import sqlite3,sys,time\n" +
        "c=sqlite3.connect(sys.argv[1], isolation_level=None)\n" +
        "c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE')\n" +
        "print('locked', flush=True); sys.stdin.read()",
        store,
      ],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const reader = locker.stdout.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /locked/);
    try {
      const session = await runSession([set("during-lock"), '{"type":"ping"}'], storeEnv(store), {
        timeoutMs: 30_000,
      });
      assert.equal(session.code, 0, session.stderr);
      const error = JSON.parse(session.answers[0]);
      assert.equal(error.type, "error");
      assert.match(
        error.content,
        /^set_cached_reference: the store .*store\.kv is locked by another process/,
      );
      assert.match(error.content, /RTCV_SCRAPER_CLIENT_KV/);
      assert.equal(session.answers[1], '{"type":"pong"}');
    } finally {
      await locker.stdin.close();
      reader.releaseLock();
      await locker.stdout.cancel();
      await locker.status;
    }
  },
});
