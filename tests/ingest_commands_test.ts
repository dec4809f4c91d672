import assert from "node:assert/strict";
import { ManualClock } from "../src/clock.ts";
import { FAKE_INGEST_TOKEN, type FakeIngest, startFakeIngest, unreachableIngestUrl } from "./fake_ingest.ts";
import { IngestSession, type IngestSessionOptions, jobItems } from "./ingest_helpers.ts";
import { hexDigest } from "../src/crypto/hex_digest.ts";

const HOURS = 60 * 60 * 1000;

/** Runs `fn` with a fake server and a session already pointed at it; checks the token never showed. */
async function withIngest(
  fn: (session: IngestSession, server: FakeIngest) => Promise<void>,
  options: IngestSessionOptions = {},
): Promise<void> {
  const server = startFakeIngest();
  const session = await IngestSession.open(options);
  try {
    assert.deepEqual(await session.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN }), {
      type: "ok",
    });
    await fn(session, server);
    assert.ok(!session.transcript.includes(FAKE_INGEST_TOKEN), "the token showed in an answer or a log");
  } finally {
    await session.close();
    await server.close();
  }
}

function store(items: unknown[], extra: Record<string, unknown> = {}) {
  return { type: "store_data", content: { data_type: "job", platform: "boss", items, ...extra } };
}

Deno.test("store_data answers queued/skipped, flush_data waits for delivery; items arrive exactly", async () => {
  await withIngest(async (session, server) => {
    const first = jobItems(3, "a");
    const second = [{ nested: { list: [1, "二", null], ok: true }, text: 'line\nbreak, "quoted"' }];
    const answers = await session.sendAll([
      store(first),
      { type: "store_data", content: { data_type: "company", platform: "zhilian", data_list: second } },
      { type: "flush_data" },
    ]);
    assert.deepEqual(answers, [
      { type: "ok", content: { queued: 3, skipped: 0 } },
      { type: "ok", content: { queued: 1, skipped: 0 } },
      { type: "ok", content: { delivered: 4, pending: 0, dead: 0 } },
    ]);
    assert.deepEqual(server.items("job", "boss"), first);
    assert.deepEqual(server.items("company", "zhilian"), second);
    assert.ok(server.requests.every((request) => request.token === FAKE_INGEST_TOKEN));
    assert.deepEqual(await session.send("ingest_status"), {
      type: "ok",
      content: { delivered: 4, pending: 0, dead: 0 },
    });
  });
});

Deno.test("requests hold at most 100 items; small lines are joined, big ones split into rows", async () => {
  await withIngest(async (session, server) => {
    const lines = [];
    let next = 0;
    for (const size of [30, 30, 30, 30, 150, 1, 1, 7]) {
      lines.push(store(jobItems(size, "m", next)));
      next += size;
    }
    const answers = await session.sendAll([...lines, { type: "flush_data" }]);
    assert.deepEqual(answers.at(-1), { type: "ok", content: { delivered: 279, pending: 0, dead: 0 } });
    // Requests of at most 100 items, whole lines joined (no order is promised between requests).
    assert.ok(server.batches.every((batch) => batch.items.length <= 100));
    // Rows of 30, 30, 30, 30, 100, 50, 1, 1, 7 items, all waiting when flush_data sends them: 90, 30, 100, 59.
    assert.deepEqual(server.batches.map((batch) => batch.items.length).sort((a, b) => a - b), [
      30,
      59,
      90,
      100,
    ]);
    assert.deepEqual(seqs(server.items("job", "boss")), [...Array(279).keys()]);
  }, { tuning: { lingerMs: 2000 } }); // the lines all commit within the linger: none goes out alone
});

Deno.test("the batch size is configurable; a lone small line goes out after the linger", async () => {
  await withIngest(async (session, server) => {
    await session.sendAll([store(jobItems(25)), { type: "flush_data" }]);
    assert.deepEqual(server.batches.map((batch) => batch.items.length), [10, 10, 5]);
    const started = Date.now();
    await session.send("store_data", store(jobItems(1, "late")).content);
    while (server.batches.length < 4) await new Promise((resolve) => setTimeout(resolve, 2));
    assert.ok(Date.now() - started < 1000);
  }, { tuning: { batchItems: 10 } });
});

Deno.test("streams keep their own order when interleaved", async () => {
  await withIngest(async (session, server) => {
    const lines = [];
    for (let i = 0; i < 12; i++) {
      for (const [dataType, platform] of [["job", "boss"], ["company", "boss"], ["job", "qcwy"]]) {
        lines.push({
          type: "store_data",
          content: { data_type: dataType, platform, items: jobItems(17, `${dataType}-${platform}`, i * 17) },
        });
      }
    }
    await session.sendAll([...lines, { type: "flush_data" }]);
    for (const [dataType, platform] of [["job", "boss"], ["company", "boss"], ["job", "qcwy"]]) {
      assert.deepEqual(server.items(dataType, platform).map((item) => item.seq), [...Array(12 * 17).keys()]);
    }
    assert.ok(server.batches.every((batch) => batch.items.length <= 100));
  });
});

Deno.test("dedupe_key skips ids stored in the last 72 hours, also within a line and across pipelined lines", async () => {
  const clock = new ManualClock();
  await withIngest(async (session, server) => {
    const answers = await session.sendAll([
      store([{ job_id: "1" }, { job_id: "2" }, { job_id: "1" }], { dedupe_key: "job_id" }),
      store([{ job_id: "2" }, { job_id: "3" }, { other: "no id" }, { job_id: null }], {
        dedupe_key: "job_id",
      }),
      store([{ job_id: 3 }, { job_id: "4" }, { other: "no id" }], { dedupe_key: "job_id" }),
      store([{ job_id: "1" }]), // without dedupe_key nothing is skipped
      store([{ job_id: "1" }], { dedupe_key: "job_id", data_type: "company" }), // another stream
      { type: "flush_data" },
    ]);
    assert.deepEqual(answers.map((answer) => answer.type === "ok" ? answer.content : answer), [
      { queued: 2, skipped: 1 },
      { queued: 3, skipped: 1 },
      { queued: 2, skipped: 1 },
      { queued: 1, skipped: 0 },
      { queued: 1, skipped: 0 },
      { delivered: 9, pending: 0, dead: 0 },
    ]);
    assert.deepEqual(
      sorted(server.items("job", "boss")),
      sorted([
        { job_id: "1" },
        { job_id: "2" },
        { job_id: "3" },
        { other: "no id" },
        { job_id: null },
        { job_id: "4" },
        { other: "no id" },
        { job_id: "1" },
      ]),
    );
    clock.advance(71 * HOURS);
    assert.deepEqual(
      await session.send("store_data", store([{ job_id: "1" }], { dedupe_key: "job_id" }).content),
      {
        type: "ok",
        content: { queued: 0, skipped: 1 },
      },
    );
    clock.advance(2 * HOURS);
    assert.deepEqual(
      await session.send("store_data", store([{ job_id: "1" }], { dedupe_key: "job_id" }).content),
      {
        type: "ok",
        content: { queued: 1, skipped: 0 },
      },
    );
  }, { clock });
});

Deno.test("dedupe after a restart reads whole lines right: stored neighbours, gaps, expired marks, a dense span", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ingest_dedupe_" });
  const server = startFakeIngest();
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const ids = (from: number, to: number, step = 1) =>
    Array.from(
      { length: Math.floor((to - from) / step) },
      (_, i) => `id-${String(from + i * step).padStart(4, "0")}`,
    );
  const line = (list: string[]) =>
    store(list.map((job_id) => ({ job_id })), { dedupe_key: "job_id" }).content;
  try {
    {
      await using first = await IngestSession.open({ kvPath: `${dir}/store.kv`, clock });
      await first.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      await first.send("store_data", line(ids(0, 40, 2))); // even ids 0..38
      clock.advance(71 * HOURS);
      await first.send("store_data", line(ids(1000, 1200))); // 200 ids filling the span of a later line
      await first.close(1000);
    }
    clock.advance(2 * HOURS); // the even ids 0..38 are 73 h old: expired; 1000..1199 are 2 h old
    await using second = await IngestSession.open({ kvPath: `${dir}/store.kv`, clock });
    await second.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
    // 0..59: the expired even ids come again, odd ids and 40..59 are new.
    assert.deepEqual(await second.send("store_data", line(ids(0, 60))), {
      type: "ok",
      content: { queued: 60, skipped: 0 },
    });
    // A line at the end of the stored span, half stored, half new: answered by one range scan.
    assert.deepEqual(await second.send("store_data", line([...ids(1190, 1200), ...ids(1200, 1210)])), {
      type: "ok",
      content: { queued: 10, skipped: 10 },
    });
    // Every fifth of 1000..1199 with new ids around it: the span holds 200 stored ids (more than a
    // whole-line scan takes), so the reader falls back to runs and point reads.
    const mixed = [...ids(1000, 1200, 5), ...ids(1210, 1240), "id-0999"];
    assert.deepEqual(await second.send("store_data", line(mixed)), {
      type: "ok",
      content: { queued: 31, skipped: 40 },
    });
    // The same mixed line again: all known now (this process's own marks).
    assert.deepEqual(await second.send("store_data", line(mixed)), {
      type: "ok",
      content: { queued: 0, skipped: 71 },
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dedupe survives a restart: ids are read back from the store", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ingest_dedupe_" });
  const server = startFakeIngest();
  try {
    await using first = await IngestSession.open({ kvPath: `${dir}/store.kv` });
    await first.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
    await first.send("store_data", store(jobItems(5), { dedupe_key: "job_id" }).content);
    await first.close(1000);
    await using second = await IngestSession.open({ kvPath: `${dir}/store.kv` });
    await second.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
    assert.deepEqual(await second.send("store_data", store(jobItems(8), { dedupe_key: "job_id" }).content), {
      type: "ok",
      content: { queued: 3, skipped: 5 },
    });
    await second.send("flush_data");
    assert.deepEqual(
      server.items("job", "boss").map((item) => item.job_id),
      jobItems(8).map((item) => item.job_id),
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("upgrade: marks an earlier version stored one row per id still dedupe, and are moved once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ingest_dedupe_" });
  const server = startFakeIngest();
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const long = "L".repeat(1100); // too long for a plain key: stored under its SHA-256
  try {
    {
      // The layout of the versions before: ["ingest","seen"|"seen_sha256",data_type,platform,field,id|hex]
      // → Deno.KvU64(expiry ms), with expireIn.
      const kv = await Deno.openKv(`${dir}/store.kv`);
      const mark = (kind: string, dataType: string, name: string, expiresAt: number) =>
        kv.set(["ingest", kind, dataType, "boss", "job_id", name], new Deno.KvU64(BigInt(expiresAt)), {
          expireIn: 72 * HOURS,
        });
      await mark("seen", "job", "old-1", clock.now() + 70 * HOURS);
      await mark("seen", "job", "old-2", clock.now() + 1 * HOURS);
      await mark("seen", "job", "old-expired", clock.now() - 1);
      await mark("seen_sha256", "job", await hexDigest("SHA-256", long), clock.now() + 70 * HOURS);
      await mark("seen", "company", "old-company", clock.now() + 70 * HOURS);
      kv.close();
    }
    const line = (ids: string[], dataType = "job") =>
      store(ids.map((job_id) => ({ job_id })), { dedupe_key: "job_id", data_type: dataType }).content;
    {
      await using first = await IngestSession.open({ kvPath: `${dir}/store.kv`, clock });
      await first.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      assert.deepEqual(
        await first.send("store_data", line(["old-1", "old-expired", long, "new-1", "old-2"])),
        {
          type: "ok",
          content: { queued: 2, skipped: 3 },
        },
      );
      assert.deepEqual(await first.send("store_data", line(["old-company", "old-1"], "company")), {
        type: "ok",
        content: { queued: 1, skipped: 1 },
      });
      await first.close(1000);
    }
    clock.advance(2 * HOURS); // old-2 (1 h left at the upgrade) has expired; old-1 has not
    {
      await using second = await IngestSession.open({ kvPath: `${dir}/store.kv`, clock });
      await second.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
      assert.deepEqual(
        await second.send("store_data", line(["old-1", long, "new-1", "old-expired", "old-2"])),
        {
          type: "ok",
          content: { queued: 1, skipped: 4 },
        },
      );
      await second.send("flush_data");
      await second.close(1000);
    }
    const kv = await Deno.openKv(`${dir}/store.kv`);
    try {
      const chunks = await Array.fromAsync(
        kv.list({ prefix: ["ingest", "marks", "job", "boss", "job_id", "c"] }),
      );
      assert.equal(chunks.length, 3, "moved once (one chunk), then one per line that queued an id");
    } finally {
      kv.close();
    }
    assert.deepEqual(
      sorted(server.items("job", "boss")),
      sorted([{ job_id: "old-expired" }, { job_id: "new-1" }, { job_id: "old-2" }]),
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a server that fails then recovers gets everything exactly once", async () => {
  await withIngest(async (session, server) => {
    server.failNext(2, 503, "overloaded");
    server.failNext(1, 429, "slow down", "0");
    server.failNext(1, 500, "oops");
    const lines = Array.from({ length: 5 }, (_, i) => store(jobItems(60, "r", i * 60)));
    const answers = await session.sendAll([...lines, { type: "flush_data" }]);
    assert.deepEqual(answers.at(-1), { type: "ok", content: { delivered: 300, pending: 0, dead: 0 } });
    assert.deepEqual(seqs(server.items("job", "boss")), [...Array(300).keys()]);
    assert.equal(server.requests.filter((request) => request.status !== 200).length, 4);
    assert.ok(session.debugLines.some((line) => /answered 503: overloaded/.test(line)));
  });
});

Deno.test("an unreachable server keeps the items pending; flush_data says so when its time is up", async () => {
  await using session = await IngestSession.open();
  await session.send("set_ingest", { base_url: unreachableIngestUrl(), token: FAKE_INGEST_TOKEN });
  await session.send("store_data", store(jobItems(5)).content);
  const answer = await session.send("flush_data", { timeout_ms: 100 });
  assert.equal(answer.type, "ok");
  const content = (answer as { content: Record<string, unknown> }).content;
  assert.deepEqual({ ...content, last_error: undefined }, {
    delivered: 0,
    pending: 5,
    dead: 0,
    last_error: undefined,
  });
  assert.match(String(content.last_error), /^ingest server http:\/\/127\.0\.0\.1:\d+ could not be reached/);
  assert.ok(!session.transcript.includes(FAKE_INGEST_TOKEN));
});

Deno.test("a batch refused with 400 goes to the dead letters; the stream goes on", async () => {
  await withIngest(async (session, server) => {
    server.refuse = (batch) => batch.items.some((item) => item.bad === true) ? 400 : null;
    // Lockstep, so each line is a batch of its own (pipelined lines would share one batch, and a refused
    // batch is dead as a whole).
    assert.deepEqual(await session.sendAll([store(jobItems(40, "ok1")), { type: "flush_data" }]), [
      { type: "ok", content: { queued: 40, skipped: 0 } },
      { type: "ok", content: { delivered: 40, pending: 0, dead: 0 } },
    ]);
    const refused = await session.sendAll([store([...jobItems(2, "bad"), { bad: true }]), {
      type: "flush_data",
    }]);
    assert.deepEqual(refused[1], { type: "ok", content: { delivered: 40, pending: 0, dead: 3 } });
    const after = await session.sendAll([store(jobItems(3, "ok2")), { type: "flush_data" }]);
    assert.deepEqual(after[1], { type: "ok", content: { delivered: 43, pending: 0, dead: 3 } });
    assert.equal(server.items("job", "boss").length, 43);
    const letters = await session.send("dead_letters") as { content: Record<string, unknown>[] };
    assert.equal(letters.content.length, 1);
    assert.equal(letters.content[0].data_type, "job");
    assert.equal(letters.content[0].items, 3);
    assert.match(String(letters.content[0].reason), /answered 400: data_list holds an invalid item/);
    assert.ok(
      session.warnings.some((warning) => /3 item\(s\).*dead letter/.test(warning)),
      session.warnings.join("\n"),
    );
  });
});

Deno.test("a refused token is not the data's fault: items stay pending until set_ingest fixes it", async () => {
  const server = startFakeIngest();
  await using session = await IngestSession.open();
  try {
    await session.send("set_ingest", { base_url: server.url, token: "wrong-token-value" });
    await session.send("store_data", store(jobItems(4)).content);
    const answer = await session.send("flush_data", { timeout_ms: 100 });
    assert.equal((answer as { content: { pending: number } }).content.pending, 4);
    assert.match(JSON.stringify(answer), /answered 401: invalid token/);
    assert.ok(!JSON.stringify(answer).includes("wrong-token-value"));
    await session.send("set_ingest", { base_url: server.url, token: FAKE_INGEST_TOKEN });
    assert.deepEqual(await session.send("flush_data"), {
      type: "ok",
      content: { delivered: 4, pending: 0, dead: 0 },
    });
  } finally {
    await server.close();
  }
});

Deno.test("an item bigger than a store value is kept in parts and delivered whole", async () => {
  await withIngest(async (session, server) => {
    const big = { job_id: "big", description: "岗位职责".repeat(40_000) }; // ~480 KB of UTF-8
    const answers = await session.sendAll([store([{ job_id: "a" }, big, { job_id: "b" }]), {
      type: "flush_data",
    }]);
    assert.deepEqual(answers[1], { type: "ok", content: { delivered: 3, pending: 0, dead: 0 } });
    assert.deepEqual(server.items("job", "boss"), [{ job_id: "a" }, big, { job_id: "b" }]);
  });
});

Deno.test("next_keyword and get_tokens pass the server's JSON through; errors name the server", async () => {
  await withIngest(async (session, server) => {
    assert.deepEqual(await session.send("next_keyword", { platform: "qcwy" }), {
      type: "ok",
      content: { code: 200, msg: "OK", data: { keyword: "java", platform: "qcwy" } },
    });
    assert.equal(server.requests.at(-1)!.path, "/api/v1/keyword/available?platform=qcwy");
    await session.send("next_keyword");
    assert.equal(server.requests.at(-1)!.path, "/api/v1/keyword/available");
    assert.deepEqual(await session.send("get_tokens"), { type: "ok", content: server.tokens });
    server.failNext(1, 503, "warming up");
    assert.deepEqual(await session.send("get_tokens"), { type: "ok", content: server.tokens });
    server.failNext(1, 400, `unknown token ${FAKE_INGEST_TOKEN}`);
    assert.deepEqual(await session.send("next_keyword"), {
      type: "error",
      content: `next_keyword: ingest server ${server.url} answered 400: unknown token [redacted]`,
    });
  });
});

Deno.test("ingest commands before set_ingest say to call it; ingest_status works", async () => {
  await using session = await IngestSession.open();
  for (const type of ["store_data", "flush_data", "next_keyword", "get_tokens"]) {
    const content = type === "store_data" ? store([{ a: 1 }]).content : undefined;
    assert.deepEqual(await session.send(type, content), {
      type: "error",
      content:
        `${type}: no ingest server is set: call set_ingest first (or configure "ingest" in the config)`,
    });
  }
  assert.deepEqual(await session.send("ingest_status"), {
    type: "ok",
    content: { delivered: 0, pending: 0, dead: 0 },
  });
});

Deno.test("bad input is answered with an error naming the field", async () => {
  await withIngest(async (session) => {
    const cases: [string, unknown, string][] = [
      ["set_ingest", null, "set_ingest: content must be an object {base_url, token}, got null"],
      [
        "set_ingest",
        { base_url: "ftp://x", token: "abcd" },
        "set_ingest: content.base_url must start with http://",
      ],
      ["set_ingest", { base_url: "http://x" }, "set_ingest: content.token is missing"],
      ["set_ingest", { base_url: "http://x", token: "a\nb" }, "set_ingest: token must be printable ASCII"],
      [
        "store_data",
        { data_type: "cv", platform: "boss", items: [{}] },
        'store_data: content.data_type must be one of "job", "company"',
      ],
      [
        "store_data",
        { data_type: "job", platform: "lagou", items: [{}] },
        'store_data: content.platform must be one of "boss", "qcwy", "zhilian"',
      ],
      ["store_data", { data_type: "job", platform: "boss" }, "store_data: content.items is missing"],
      [
        "store_data",
        { data_type: "job", platform: "boss", items: [] },
        "store_data: content.items must be a non-empty array of objects, got an empty array",
      ],
      [
        "store_data",
        { data_type: "job", platform: "boss", items: {} },
        "store_data: content.items must be a non-empty array of objects",
      ],
      [
        "store_data",
        { data_type: "job", platform: "boss", data_list: [{}, 5] },
        "store_data: content.data_list[1] must be a JSON object",
      ],
      [
        "store_data",
        { data_type: "job", platform: "boss", items: [[]] },
        "store_data: content.items[0] must be a JSON object",
      ],
      [
        "store_data",
        { data_type: "job", platform: "boss", items: [{}], data_list: [{}] },
        "store_data: content has both items and data_list",
      ],
      [
        "store_data",
        { data_type: "job", platform: "boss", items: [{}], dedupe_key: "" },
        "store_data: content.dedupe_key must be a field name",
      ],
      [
        "store_data",
        "job",
        "store_data: content must be an object {data_type, platform, items, dedupe_key?}, got a string",
      ],
      ["flush_data", { timeout_ms: -1 }, "flush_data: content.timeout_ms must be 0 or more"],
      [
        "next_keyword",
        { platform: 5 },
        'next_keyword: content.platform must be one of "boss", "qcwy", "zhilian"',
      ],
    ];
    for (const [type, content, expected] of cases) {
      const answer = await session.send(type, content);
      assert.equal(answer.type, "error", `${type} ${JSON.stringify(content)}`);
      assert.ok(
        (answer as { content: string }).content.startsWith(expected),
        `${type} ${JSON.stringify(content)}: ${JSON.stringify(answer)}`,
      );
    }
    // A failed set_ingest left the earlier server in place.
    await session.send("store_data", store([{ still: "works" }]).content);
    assert.deepEqual(await session.send("flush_data"), {
      type: "ok",
      content: { delivered: 1, pending: 0, dead: 0 },
    });
  });
});

Deno.test("the token is never written to the store", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ingest_token_" });
  const server = startFakeIngest();
  const session = await IngestSession.open({ kvPath: `${dir}/store.kv` });
  try {
    await session.sendAll([
      { type: "set_ingest", content: { base_url: server.url, token: FAKE_INGEST_TOKEN } },
      store(jobItems(10), { dedupe_key: "job_id" }),
      { type: "flush_data" },
    ]);
    server.refuse = () => 400;
    await session.sendAll([store(jobItems(2, "dead")), { type: "flush_data" }]);
    await session.send("set_ingest", { base_url: unreachableIngestUrl(), token: FAKE_INGEST_TOKEN });
    await session.sendAll([store(jobItems(2, "pending")), {
      type: "flush_data",
      content: { timeout_ms: 50 },
    }]);
    await session.close();
    assert.ok(!session.transcript.includes(FAKE_INGEST_TOKEN));
    const needle = new TextEncoder().encode(FAKE_INGEST_TOKEN);
    let pendingSeen = false;
    for await (const entry of Deno.readDir(dir)) {
      const bytes = await Deno.readFile(`${dir}/${entry.name}`);
      assert.equal(indexOf(bytes, needle), -1, `the token is in ${entry.name}`);
      pendingSeen ||= indexOf(bytes, new TextEncoder().encode('"job_id":"pending-0"')) >= 0;
    }
    assert.ok(pendingSeen, "the pending items should be in the store files (the scan sees the data)");
  } finally {
    await session.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

Deno.test("413 halves the batch size until the server takes it; nothing lost, nothing twice", async () => {
  await withIngest(async (session, server) => {
    server.refuse = (batch) => batch.items.length > 40 ? 413 : null;
    const lines = [0, 1, 2, 3].map((i) => store(jobItems(30, "h", i * 30)));
    const answers = await session.sendAll([...lines, { type: "flush_data" }]);
    assert.deepEqual(answers.at(-1), { type: "ok", content: { delivered: 120, pending: 0, dead: 0 } });
    assert.deepEqual(seqs(server.items("job", "boss")), [...Array(120).keys()]);
    assert.ok(server.batches.every((batch) => batch.items.length <= 40));
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
