import assert from "node:assert/strict";
import { IngestOutbox, newRunId, packRows } from "../src/ingest/ingest_outbox.ts";
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
  assert.deepEqual(await first.send("ingest_status"), {
    type: "ok",
    content: { delivered: 0, pending: total, dead: 0 },
  });
  await first.close(0);
}

Deno.test("items left in the outbox are delivered after a restart, once set_ingest names a server", async () => {
  await withStoreDir(async (kvPath) => {
    await leaveItemsBehind(kvPath, [jobItems(120, "p", 0), jobItems(80, "p", 120), jobItems(50, "p", 200)]);
    const server = startFakeIngest();
    try {
      await using second = await IngestSession.open({ kvPath });
      assert.deepEqual(await second.send("ingest_status"), {
        type: "ok",
        content: { delivered: 0, pending: 250, dead: 0 },
      });
      await second.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      assert.deepEqual(await second.send("flush_data"), {
        type: "ok",
        content: { delivered: 250, pending: 0, dead: 0 },
      });
      assert.deepEqual(server.items("job", "boss").map((item) => item.seq), [...Array(250).keys()]);
      assert.ok(server.batches.every((batch) => batch.items.length <= 100));
      await second.close();
      assert.deepEqual(await ingestKeys(kvPath), ["count"]); // no rows, parts or claims are left
    } finally {
      await server.close();
    }
  });
});

/** The kinds of `["ingest", kind, ...]` keys in the store, sorted and without repeats. */
async function ingestKeys(kvPath: string): Promise<string[]> {
  const kv = await Deno.openKv(kvPath);
  try {
    const kinds = new Set<string>();
    for await (const entry of kv.list({ prefix: ["ingest"] })) kinds.add(String(entry.key[1]));
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

Deno.test("a batch that ended inside a line leaves only the rest of that line; nothing is sent twice", async () => {
  await withStoreDir(async (kvPath) => {
    const server = startFakeIngest();
    try {
      // Four lines of 30: the first request takes 100 items (three lines and a third of the fourth).
      server.onBatch = () => server.failNext(1_000_000, 503, "down for maintenance");
      {
        await using first = await IngestSession.open({ kvPath });
        await first.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
        const lines = [0, 1, 2, 3].map((i) => store(jobItems(30, "s", i * 30)));
        await first.sendAll(lines);
        const answer = await first.send("flush_data", { timeout_ms: 150 });
        assert.equal(answer.type, "ok");
        assert.deepEqual({ ...(answer as { content: object }).content, last_error: undefined }, {
          delivered: 100,
          pending: 20,
          dead: 0,
          last_error: undefined,
        });
      }
      assert.equal(server.batches.length, 1);
      server.onBatch = null;
      server.clearFailures();
      await using second = await IngestSession.open({ kvPath });
      assert.deepEqual(await second.send("ingest_status"), {
        type: "ok",
        content: { delivered: 100, pending: 20, dead: 0 },
      });
      await second.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      assert.deepEqual(await second.send("flush_data"), {
        type: "ok",
        content: { delivered: 120, pending: 0, dead: 0 },
      });
      assert.deepEqual(server.items("job", "boss").map((item) => item.seq), [...Array(120).keys()]);
      await second.close();
      assert.deepEqual(await ingestKeys(kvPath), ["count"]);
    } finally {
      await server.close();
    }
  });
});

Deno.test("rows not held in memory and items stored in parts are read back when sent", async () => {
  await withStoreDir(async (kvPath) => {
    const big = { job_id: "big", description: "职位描述".repeat(30_000) };
    await leaveItemsBehind(kvPath, [[{ job_id: "a" }, big], jobItems(3)]);
    const server = startFakeIngest();
    try {
      await using second = await IngestSession.open({ kvPath, tuning: { heldBytes: 0 } });
      await second.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      await second.send("store_data", store(jobItems(2, "new")).content);
      assert.deepEqual(await second.send("flush_data"), {
        type: "ok",
        content: { delivered: 7, pending: 0, dead: 0 },
      });
      assert.deepEqual(server.items("job", "boss"), [
        { job_id: "a" },
        big,
        ...jobItems(3),
        ...jobItems(2, "new"),
      ]);
    } finally {
      await server.close();
    }
  });
});

Deno.test("rows of a crashed run are taken over once its claim lapses; a live run's rows are left alone", async () => {
  await withStoreDir(async (kvPath) => {
    const kv = await Deno.openKv(kvPath);
    const outbox = new IngestOutbox(kv);
    const crashed = newRunId(Date.now() - 60_000);
    const alive = newRunId(Date.now() - 30_000);
    const mutations: Deno.KvMutation[] = [
      outbox.claimMutation(crashed, { owner: crashed, until: Date.now() - 1 }),
      outbox.claimMutation(alive, { owner: alive, until: Date.now() + 3_600_000 }),
    ];
    for (const [run, prefix] of [[crashed, "crashed"], [alive, "alive"]]) {
      const [row] = packRows(jobItems(5, prefix).map((item) => JSON.stringify(item)), 100);
      mutations.push(
        ...outbox.rowMutations({ run, dataType: "job", platform: "boss", line: 0, chunk: 0 }, row.data, 5),
      );
    }
    await kv.atomic().mutate(...mutations).commit();
    kv.close();

    const server = startFakeIngest();
    try {
      await using session = await IngestSession.open({ kvPath });
      await session.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      assert.deepEqual(await session.send("flush_data"), {
        type: "ok",
        content: { delivered: 5, pending: 0, dead: 0 },
      });
      assert.deepEqual(server.items("job", "boss"), jobItems(5, "crashed"));
    } finally {
      await server.close();
    }
  });
});

Deno.test("two processes on one store deliver their own rows; a closed one's rows go to the other", async () => {
  await withStoreDir(async (kvPath) => {
    const server = startFakeIngest();
    try {
      const down = await IngestSession.open({ kvPath });
      await using up = await IngestSession.open({ kvPath });
      await down.send("set_ingest", { base_url: unreachableIngestUrl(), token: FAKE_INGEST_TOKEN });
      await up.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      await down.send("store_data", store(jobItems(4, "down")).content);
      await up.send("store_data", store(jobItems(3, "up")).content);
      assert.deepEqual(await up.send("flush_data"), {
        type: "ok",
        content: { delivered: 3, pending: 0, dead: 0 },
      });
      assert.deepEqual(server.items("job", "boss"), jobItems(3, "up"));
      await down.close(0);
      // The next flush looks for released runs and takes them over.
      assert.deepEqual(await up.send("flush_data"), {
        type: "ok",
        content: { delivered: 7, pending: 0, dead: 0 },
      });
      assert.deepEqual(server.items("job", "boss"), [...jobItems(3, "up"), ...jobItems(4, "down")]);
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

Deno.test("the periodic rescan takes over a released run without a flush, then drops its claim", async () => {
  await withStoreDir(async (kvPath) => {
    const server = startFakeIngest();
    try {
      const down = await IngestSession.open({ kvPath });
      await using up = await IngestSession.open({ kvPath, tuning: { rescanMs: 20 } });
      await down.send("set_ingest", { base_url: unreachableIngestUrl(), token: FAKE_INGEST_TOKEN });
      await up.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      await down.send("store_data", store(jobItems(6, "down")).content);
      await down.close(0);
      const deadline = Date.now() + 3000;
      while (server.items("job", "boss").length < 6 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.deepEqual(server.items("job", "boss"), jobItems(6, "down"));
      // A later tick lets go of the finished run: only the counters stay.
      while ((await ingestKeys(kvPath)).includes("run") && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.deepEqual(await ingestKeys(kvPath), ["count"]);
    } finally {
      await server.close();
    }
  });
});
