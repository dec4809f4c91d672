/**
 * The ingestion sink seen from a scraper: `deno run -A main.ts`, lines on stdin, answers on stdout.
 * Ignored until the program wires the sink in (`installIngest` in `src/app.ts`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { FAKE_INGEST_TOKEN, startFakeIngest, unreachableIngestUrl } from "./fake_ingest.ts";
import { jobItems } from "./ingest_helpers.ts";
import { READY_LINE, runSession, type SessionResult, spawnClient, tempDir } from "./helpers/spawn_client.ts";

const wired = Deno.readTextFileSync(new URL("../src/app.ts", import.meta.url)).includes("installIngest");

/**
 * Like {@link runSession}, but as a scraper that waits for its answers: every line in one write (pipelined),
 * stdin closed once each line is answered (end of input ends a `flush_data` wait at once).
 */
async function answeredSession(
  lines: readonly object[],
  env: Record<string, string>,
  cwd: string,
): Promise<Pick<SessionResult, "answers" | "stdout" | "stderr" | "code">> {
  await using client = spawnClient({ env, cwd });
  const ready = await client.ready();
  await client.sendRaw(lines.map((line) => JSON.stringify(line) + "\n").join(""));
  const answers = await client.readLines(lines.length);
  const finished = await client.finish();
  return {
    answers: [...answers, ...finished.rest],
    stdout: [ready, ...answers].join("\n") + "\n" + finished.restText,
    stderr: finished.stderr,
    code: finished.status.code,
  };
}

function store(items: unknown[], extra: Record<string, unknown> = {}) {
  return { type: "store_data", content: { data_type: "job", platform: "boss", items, ...extra } };
}

Deno.test({
  name: "process: set_ingest, pipelined store_data, flush_data; everything delivered; token never shown",
  ignore: !wired,
  async fn() {
    await using dir = await tempDir("ingest_process_");
    const server = startFakeIngest();
    try {
      const lines = [
        { type: "set_ingest", content: { base_url: server.url, token: FAKE_INGEST_TOKEN } },
        ...[0, 1, 2, 3, 4].map((i) => store(jobItems(70, "p", i * 70), { dedupe_key: "job_id" })),
        store(jobItems(10, "p", 0), { dedupe_key: "job_id" }),
        { type: "flush_data" },
        { type: "next_keyword", content: { platform: "boss" } },
        { type: "ingest_status" },
      ];
      const result = await answeredSession(lines, {
        RTCV_SCRAPER_CLIENT_KV: `${dir.path}/store.kv`,
        ENABLE_SCRAPER_CLIENT_LOG: "true",
        LOG_SCRAPER_CLIENT_INPUT: "true",
      }, dir.path);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(result.answers.map((line) => JSON.parse(line)), [
        { type: "ok" },
        ...[0, 1, 2, 3, 4].map(() => ({ type: "ok", content: { queued: 70, skipped: 0 } })),
        { type: "ok", content: { queued: 0, skipped: 10 } },
        { type: "ok", content: { delivered: 350, pending: 0, dead: 0 } },
        { type: "ok", content: server.keyword("boss") },
        { type: "ok", content: { delivered: 350, pending: 0, dead: 0 } },
      ]);
      assert.deepEqual(
        server.items("job", "boss").map((item) => item.seq).sort((a, b) => Number(a) - Number(b)),
        [
          ...Array(350).keys(),
        ],
      );
      assert.ok(server.batches.every((batch) => batch.items.length <= 100));
      let logs = "";
      for await (const entry of Deno.readDir(dir.path)) {
        if (entry.name.endsWith(".log")) logs += await Deno.readTextFile(`${dir.path}/${entry.name}`);
      }
      for (const text of [result.stdout, result.stderr, logs]) assert.ok(!text.includes(FAKE_INGEST_TOKEN));
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "process: items left at exit are delivered by the next process, configured from the config",
  ignore: !wired,
  async fn() {
    await using dir = await tempDir("ingest_process_");
    // RTCV_SCRAPER_CLIENT_DRAIN_MS: the first process must not wait the default 5 s for a server that is down;
    // OUTBOX_RETRY_MS: the failed first attempt's backoff (kept with each entry) is over when the second starts.
    const env = {
      RTCV_SCRAPER_CLIENT_KV: `${dir.path}/store.kv`,
      RTCV_SCRAPER_CLIENT_DRAIN_MS: "200",
      RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "50",
    };
    const first = await runSession(
      [
        { type: "set_ingest", content: { base_url: unreachableIngestUrl(), token: FAKE_INGEST_TOKEN } },
        store(jobItems(25)),
      ],
      env,
      { cwd: dir.path },
    );
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(JSON.parse(first.answers[1]), { type: "ok", content: { queued: 25, skipped: 0 } });
    assert.ok(!first.stderr.includes(FAKE_INGEST_TOKEN) && !first.stdout.includes(FAKE_INGEST_TOKEN));

    const server = startFakeIngest();
    try {
      const config = JSON.stringify({ ingest: { base_url: server.url, token: FAKE_INGEST_TOKEN } });
      const second = await answeredSession(
        [{ type: "flush_data" }],
        { ...env, RTCV_SCRAPER_CLIENT_ENV: config },
        dir.path,
      );
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(JSON.parse(second.answers[0]), {
        type: "ok",
        content: { delivered: 25, pending: 0, dead: 0 },
      });
      assert.deepEqual(server.items("job", "boss"), jobItems(25));
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "process: two clients on one store file, both running: an id one of them queued, the other skips",
  ignore: !wired,
  async fn() {
    await using dir = await tempDir("ingest_process_");
    const server = startFakeIngest();
    try {
      const env = { RTCV_SCRAPER_CLIENT_KV: `${dir.path}/store.kv` };
      await using first = spawnClient({ env, cwd: dir.path });
      await using second = spawnClient({ env, cwd: dir.path });
      for (const client of [first, second]) {
        assert.equal(await client.readLine(), READY_LINE);
        assert.deepEqual(
          await client.request({
            type: "set_ingest",
            content: { base_url: server.url, token: FAKE_INGEST_TOKEN },
          }),
          { type: "ok" },
        );
      }
      const line = (from: number, count: number) =>
        store(jobItems(count, "s", from), { dedupe_key: "job_id" });
      // The second client reads the store's marks at its first line; the first one writes more afterwards.
      assert.deepEqual(await second.request(line(0, 10)), {
        type: "ok",
        content: { queued: 10, skipped: 0 },
      });
      assert.deepEqual(await first.request(line(100, 20)), {
        type: "ok",
        content: { queued: 20, skipped: 0 },
      });
      assert.deepEqual(await second.request(line(100, 25)), {
        type: "ok",
        content: { queued: 5, skipped: 20 },
      });
      assert.deepEqual(await first.request(line(0, 12)), { type: "ok", content: { queued: 2, skipped: 10 } });
      for (const client of [first, second]) {
        const flushed = await client.request({ type: "flush_data" });
        assert.equal((flushed.content as { pending: number }).pending, 0);
      }
      const ids = server.items("job", "boss").map((item) => item.job_id as string);
      assert.equal(ids.length, 10 + 20 + 5 + 2, "each id delivered once");
      assert.equal(new Set(ids).size, ids.length);
      for (const client of [first, second]) assert.equal((await client.finish()).status.code, 0);
    } finally {
      await server.close();
    }
  },
});
