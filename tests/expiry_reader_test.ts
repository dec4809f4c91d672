/**
 * The batched expiry reads behind cache lookups: a range scan must answer exactly what point reads would,
 * in sparse and dense stores, with names that prefix each other, and with keys it cannot scan.
 */
import assert from "node:assert/strict";
import { expiryValue } from "../src/cache/expiry_keys.ts";
import { ExpiryReader } from "../src/cache/expiry_reader.ts";

async function storeWith(entries: Record<string, number>): Promise<{ kv: Deno.Kv; dir: string }> {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(`${dir}/store.kv`);
  let atomic = kv.atomic();
  let count = 0;
  for (const [name, expiry] of Object.entries(entries)) {
    atomic.set(["ref", name], expiryValue(expiry));
    if (++count % 500 === 0) {
      await atomic.commit();
      atomic = kv.atomic();
    }
  }
  await atomic.commit();
  return { kv, dir };
}

/** Reads every name in one turn (so they are batched) and returns name → expiry. */
async function readAll(reader: ExpiryReader, names: string[]): Promise<Map<string, number>> {
  const values = await Promise.all(names.map((name) => reader.read(["ref", name])));
  return new Map(names.map((name, index) => [name, values[index]]));
}

Deno.test("range reads answer like point reads in a sparse store, also for names that prefix each other", async () => {
  const stored: Record<string, number> = {};
  for (const name of ["a", "a0", "ab", "abc", "b", "ref-1", "ref-10", "ref-2", "zz", "~", "a\u0001"]) {
    stored[name] = 1_000 + name.length;
  }
  const { kv, dir } = await storeWith(stored);
  try {
    const asked = [
      ...Object.keys(stored),
      "",
      "a00",
      "aa",
      "abd",
      "ref-",
      "ref-11",
      "ref-3",
      "new-1",
      "new-2",
      "y",
      "zz0",
      "é-not-ascii",
      "ref-1", // the same name twice in one batch
    ];
    const answers = await readAll(new ExpiryReader(kv, ["ref"]), asked);
    for (const name of asked) assert.equal(answers.get(name), stored[name] ?? 0, name);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("range reads fall back to point reads where the store is dense, with the same answers", async () => {
  const stored: Record<string, number> = {};
  for (let i = 0; i < 3000; i++) stored[`k${String(i).padStart(5, "0")}`] = 5_000 + i;
  const { kv, dir } = await storeWith(stored);
  try {
    const reader = new ExpiryReader(kv, ["ref"]);
    // Every 7th stored key and a missing neighbour of each: every run of 10 spans ~35 stored rows.
    const asked: string[] = [];
    for (let i = 0; i < 3000; i += 7) {
      asked.push(`k${String(i).padStart(5, "0")}`, `k${String(i).padStart(5, "0")}x`);
    }
    for (let round = 0; round < 2; round++) {
      const answers = await readAll(reader, asked);
      for (const name of asked) assert.equal(answers.get(name), stored[name] ?? 0, name);
    }
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keys of another shape are read with getMany", async () => {
  const { kv, dir } = await storeWith({ "x": 7 });
  try {
    await kv.set(["ref_sha256", "abc"], expiryValue(9));
    const reader = new ExpiryReader(kv, ["ref"]);
    const [a, b, c] = await Promise.all([
      reader.read(["ref_sha256", "abc"]),
      reader.read(["ref", "x"]),
      reader.read(["other", "x"]),
    ]);
    assert.deepEqual([a, b, c], [9, 7, 0]);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with a companion row, an entry's expiry is the later of its two rows, by range scan and by point read", async () => {
  const { kv, dir } = await storeWith({ "both-long": 900, "both-short": 100, "main-only": 300, "z": 1 });
  try {
    const atomic = kv.atomic();
    atomic.set(["ref", "both-long", "short"], expiryValue(500));
    atomic.set(["ref", "both-short", "short"], expiryValue(700));
    atomic.set(["ref", "short-only", "short"], expiryValue(600));
    atomic.set(["ref", "main-only", "other"], expiryValue(9_999)); // not the companion: never counted
    atomic.set(["ref_sha256", "d1"], expiryValue(40));
    atomic.set(["ref_sha256", "d1", "short"], expiryValue(80));
    atomic.set(["ref_sha256", "d2", "short"], expiryValue(20));
    await atomic.commit();
    const expected: Record<string, number> = {
      "both-long": 900,
      "both-short": 700,
      "main-only": 300,
      "short-only": 600,
      "short": 0,
      "never": 0,
      "z": 1,
    };
    const sparse = await readAll(new ExpiryReader(kv, ["ref"], "short"), Object.keys(expected));
    for (const [name, expiry] of Object.entries(expected)) assert.equal(sparse.get(name), expiry, name);
    // One name at a time: point reads.
    for (const [name, expiry] of Object.entries(expected)) {
      assert.equal(await new ExpiryReader(kv, ["ref"], "short").read(["ref", name]), expiry, `${name} alone`);
    }
    const reader = new ExpiryReader(kv, ["ref"], "short");
    const digested = await Promise.all([
      reader.read(["ref_sha256", "d1"]),
      reader.read(["ref_sha256", "d2"]),
    ]);
    assert.deepEqual(digested, [80, 20]);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with a companion row, range reads fall back to point reads where the store is dense, same answers", async () => {
  const stored: Record<string, number> = {};
  for (let i = 0; i < 2000; i++) stored[`k${String(i).padStart(5, "0")}`] = 5_000 + i;
  const { kv, dir } = await storeWith(stored);
  try {
    let atomic = kv.atomic();
    for (let i = 0; i < 2000; i += 3) {
      atomic.set(["ref", `k${String(i).padStart(5, "0")}`, "short"], expiryValue(i % 2 ? 1 : 90_000 + i));
      if (i % 900 === 0) {
        await atomic.commit();
        atomic = kv.atomic();
      }
    }
    await atomic.commit();
    const expected = (i: number) => i % 3 === 0 && i % 2 === 0 ? 90_000 + i : 5_000 + i;
    const reader = new ExpiryReader(kv, ["ref"], "short");
    const asked: string[] = [];
    for (let i = 0; i < 2000; i += 7) {
      asked.push(`k${String(i).padStart(5, "0")}`, `k${String(i).padStart(5, "0")}x`);
    }
    for (let round = 0; round < 2; round++) {
      const answers = await readAll(reader, asked);
      for (let i = 0; i < 2000; i += 7) {
        const name = `k${String(i).padStart(5, "0")}`;
        assert.equal(answers.get(name), expected(i), name);
        assert.equal(answers.get(`${name}x`), 0, `${name}x`);
      }
    }
    // Reads that only ask whether an entry lasts beyond a time: a main row that does answers without its
    // companion; the others still answer the later of the two.
    const enough = 6_000;
    for (let round = 0; round < 2; round++) {
      const answers = new Map<string, number>();
      await Promise.all(
        asked.map((name) =>
          new Promise<void>((resolve, reject) =>
            reader.request(
              ["ref", name],
              (expiry) => {
                answers.set(name, expiry);
                resolve();
              },
              reject,
              enough,
            )
          )
        ),
      );
      for (let i = 0; i < 2000; i += 7) {
        const name = `k${String(i).padStart(5, "0")}`;
        const answer = answers.get(name)!;
        assert.equal(answer > enough, expected(i) > enough, name);
        if (5_000 + i <= enough) assert.equal(answer, expected(i), name);
        assert.equal(answers.get(`${name}x`), 0, `${name}x`);
      }
    }
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
