import assert from "node:assert/strict";
import { FAKE_INGEST_TOKEN, startFakeIngest, unreachableIngestUrl } from "./fake_ingest.ts";
import { IngestSession, type IngestSessionOptions, jobItems } from "./ingest_helpers.ts";

/** Runs `fn` with a temp dir for a store that outlives sessions. */
async function withStoreDir(fn: (kvPath: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ingest_restart_" });
  try {
    await fn(`${dir}/store.kv`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function store(items: unknown[], dataType = "job") {
  return { type: "store_data", content: { data_type: dataType, platform: "boss", items } };
}

/** A first run whose server is down: its items stay in the outbox when it closes without draining. */
async function leaveItemsBehind(kvPath: string, lines: unknown[][], options: IngestSessionOptions = {}) {
  await using first = await IngestSession.open({ kvPath, ...options });
  await first.send("set_ingest", { base_url: unreachableIngestUrl(), token: FAKE_INGEST_TOKEN });
  const answers = await first.sendAll(lines.map((items) => store(items)));
  assert.ok(answers.every((answer) => answer.type === "ok"), JSON.stringify(answers));
  const total = lines.reduce((sum, items) => sum + items.length, 0);
  const status = await first.send("ingest_status") as { content: Record<string, unknown> };
  assert.deepEqual({ ...status.content, last_error: undefined }, {
    delivered: 0,
    pending: total,
    dead: 0,
    last_error: undefined,
  });
  await first.close(0);
}

Deno.test("items left in the outbox are delivered after a restart, once set_ingest names a server", async () => {
  await withStoreDir(async (kvPath) => {
    await leaveItemsBehind(kvPath, [jobItems(120, "p", 0), jobItems(80, "p", 120), jobItems(50, "p", 200)]);
    const server = startFakeIngest();
    try {
      await using second = await IngestSession.open({ kvPath });
      // Every entry in the store counts (with the first run's last failure, when its attempt failed in time).
      const status = await second.send("ingest_status") as { content: Record<string, unknown> };
      assert.deepEqual({ ...status.content, last_error: undefined }, {
        delivered: 0,
        pending: 250,
        dead: 0,
        last_error: undefined,
      });
      if (status.content.last_error !== undefined) {
        assert.match(String(status.content.last_error), /could not be reached/);
      }
      await second.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      assert.deepEqual(await second.send("flush_data"), {
        type: "ok",
        content: { delivered: 250, pending: 0, dead: 0 },
      });
      assert.deepEqual(seqs(server.items("job", "boss")), [...Array(250).keys()]);
      assert.ok(server.batches.every((batch) => batch.items.length <= 100));
      await second.close();
      // No entries, parts or keys are left: only the counters (and the last error).
      assert.deepEqual((await outboxKinds(kvPath)).filter((kind) => !["count", "error"].includes(kind)), []);
    } finally {
      await server.close();
    }
  });
});

/** The kinds of `["outbox", kind, ...]` keys in the store, sorted and without repeats. */
async function outboxKinds(kvPath: string): Promise<string[]> {
  const kv = await Deno.openKv(kvPath);
  try {
    const kinds = new Set<string>();
    for await (const entry of kv.list({ prefix: ["outbox"] })) kinds.add(String(entry.key[1]));
    return [...kinds].sort();
  } finally {
    kv.close();
  }
}

Deno.test("after a restart the config's ingest server delivers what was left", async () => {
  await withStoreDir(async (kvPath) => {
    await leaveItemsBehind(kvPath, [jobItems(30)]);
    const server = startFakeIngest();
    try {
      await using second = await IngestSession.open({
        kvPath,
        ingest: { baseUrl: server.url, token: FAKE_INGEST_TOKEN },
      });
      assert.deepEqual(await second.send("flush_data"), {
        type: "ok",
        content: { delivered: 30, pending: 0, dead: 0 },
      });
      assert.deepEqual(server.items("job", "boss"), jobItems(30));
    } finally {
      await server.close();
    }
  });
});

Deno.test("two processes on one store: entries a failed attempt freed go to the other, each once", async () => {
  await withStoreDir(async (kvPath) => {
    const server = startFakeIngest();
    try {
      const down = await IngestSession.open({ kvPath });
      await using up = await IngestSession.open({ kvPath });
      await down.send("set_ingest", { base_url: unreachableIngestUrl(), token: FAKE_INGEST_TOKEN });
      await up.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      await down.send("store_data", store(jobItems(4, "down")).content);
      await up.send("store_data", store(jobItems(3, "up")).content);
      // up's flush waits for every job item in the store: down's, freed after their failed attempt, too.
      assert.deepEqual(await up.send("flush_data"), {
        type: "ok",
        content: { delivered: 7, pending: 0, dead: 0 },
      });
      assert.deepEqual(
        sorted(server.items("job", "boss")),
        sorted([...jobItems(3, "up"), ...jobItems(4, "down")]),
      );
      await down.close(0);
      assert.equal(server.items("job", "boss").length, 7);
    } finally {
      await server.close();
    }
  });
});

Deno.test("close drains for a bounded time, then leaves the rest", async () => {
  await withStoreDir(async (kvPath) => {
    const server = startFakeIngest();
    try {
      {
        await using first = await IngestSession.open({ kvPath });
        await first.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
        await first.send("store_data", store(jobItems(10)).content);
        await first.close(2000); // server up: everything goes out before the close returns
        assert.equal(server.items("job", "boss").length, 10);
      }
      server.latencyMs = 2000;
      const slow = await IngestSession.open({ kvPath });
      await slow.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      await slow.send("store_data", store(jobItems(5, "slow")).content);
      const started = Date.now();
      await slow.close(100);
      assert.ok(Date.now() - started < 1000, "close waited too long");
      server.latencyMs = 0;
      await using third = await IngestSession.open({ kvPath });
      const status = await third.send("ingest_status");
      assert.deepEqual(status, { type: "ok", content: { delivered: 10, pending: 5, dead: 0 } });
    } finally {
      await server.close();
    }
  });
});

Deno.test("the periodic rescan takes over released entries without a flush", async () => {
  await withStoreDir(async (kvPath) => {
    const server = startFakeIngest();
    try {
      const down = await IngestSession.open({ kvPath });
      await using up = await IngestSession.open({ kvPath, outbox: { leaseMs: 200 } }); // looks every 100 ms
      await down.send("set_ingest", { base_url: unreachableIngestUrl(), token: FAKE_INGEST_TOKEN });
      await up.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      await down.send("store_data", store(jobItems(6, "down")).content);
      await down.close(0);
      // Positive signal first (nothing pending in the store), then count.
      const deadline = Date.now() + 3000;
      let status = await up.send("ingest_status") as { content: { pending: number } };
      while (status.content.pending > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        status = await up.send("ingest_status") as { content: { pending: number } };
      }
      assert.deepEqual(status, { type: "ok", content: { delivered: 6, pending: 0, dead: 0 } });
      assert.deepEqual(sorted(server.items("job", "boss")), sorted(jobItems(6, "down")));
    } finally {
      await server.close();
    }
  });
});

/** The `seq` fields of items, sorted (no order is promised between requests). */
function seqs(items: Record<string, unknown>[]): number[] {
  return items.map((item) => Number(item.seq)).sort((a, b) => a - b);
}

/** Items as JSON texts, sorted. */
function sorted(items: unknown[]): string[] {
  return items.map((item) => JSON.stringify(item)).sort();
}
