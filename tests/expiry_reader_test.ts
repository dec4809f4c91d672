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
