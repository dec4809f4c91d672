/**
 * Limits (PROTOCOL.md section 13), tried as a scraper would: requests in flight per server counted at the
 * server, memory read from /proc while the client is flooded, timer settings, a closed stdout; and the
 * answer path that no failing observer or promise can stall.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig, MAX_TIMER_MS } from "../src/config/config.ts";
import { CommandRegistry, defineBareCommand } from "../src/commands/registry.ts";
import { AnswerWriter, type ByteSink } from "../src/protocol/answer_writer.ts";
import { errorAnswer, okAnswer } from "../src/protocol/answers.ts";
import { serveLines } from "../src/protocol/serve_lines.ts";
import { InFlightLimiter } from "../src/http/in_flight_limiter.ts";
import { defaultRequestPolicy, fetchWithRetries, MAX_BACKOFF_MS } from "../src/http/request_policy.ts";
import { startFakeRtcv } from "./fake_rtcv.ts";
import { MAIN_TS, OK, READY_LINE, spawnClient } from "./helpers/spawn_client.ts";
import { liveDir, server, startLiveClient } from "./live_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A pass-through in front of a fake RT-CV that counts the requests in flight to it at the same time:
 * the server's own view of the client's concurrency.
 */
function countingProxy(target: string) {
  const counts = { active: 0, max: 0, scans: 0 };
  const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    const scan = url.pathname === "/api/v1/scraper/scanCV";
    if (scan) {
      counts.scans++;
      counts.max = Math.max(counts.max, ++counts.active);
    }
    try {
      const answer = await fetch(target + url.pathname + url.search, {
        method: request.method,
        headers: request.headers,
        body: request.body === null ? undefined : await request.arrayBuffer(),
      });
      return new Response(await answer.arrayBuffer(), { status: answer.status, headers: answer.headers });
    } finally {
      if (scan) counts.active--;
    }
  });
  return { url: `http://127.0.0.1:${proxy.addr.port}`, counts, close: () => proxy.shutdown() };
}

Deno.test("50 pipelined send_cv: the server sees at most 8 in flight at once (the default), all answered", async () => {
  await using fake = await startFakeRtcv({ latencyMs: 40 });
  const proxy = countingProxy(fake.url);
  await using dir = await liveDir();
  try {
    await using client = await startLiveClient(dir);
    const credentials = { ...server(fake), server_location: proxy.url };
    assert.equal(
      await client.request({ type: "set_credentials", content: credentials }).then((a) => a.type),
      "ok",
    );
    const lines = Array.from(
      { length: 50 },
      (_, i) => JSON.stringify({ type: "send_cv", content: { referenceNumber: `flight-${i}` } }) + "\n",
    );
    await client.sendRaw(lines.join(""));
    const answers = await client.readLines(50);
    assert.deepEqual(new Set(answers), new Set(['{"type":"ok","content":false}']));
    assert.equal(proxy.counts.scans, 50);
    assert.equal(proxy.counts.max, 8, "requests in flight to the server at once");
    const { status } = await client.finish();
    assert.equal(status.code, 0);
  } finally {
    await proxy.close();
  }
});

Deno.test("RTCV_SCRAPER_CLIENT_MAX_IN_FLIGHT=3 bounds the requests to one server at 3", async () => {
  await using fake = await startFakeRtcv({ latencyMs: 40 });
  const proxy = countingProxy(fake.url);
  await using dir = await liveDir();
  try {
    await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_MAX_IN_FLIGHT: "3" });
    const credentials = { ...server(fake), server_location: proxy.url };
    assert.equal(
      await client.request({ type: "set_credentials", content: credentials }).then((a) => a.type),
      "ok",
    );
    await client.sendRaw(
      Array.from(
        { length: 20 },
        (_, i) => JSON.stringify({ type: "send_cv", content: { referenceNumber: `three-${i}` } }) + "\n",
      ).join(""),
    );
    assert.equal((await client.readLines(20)).length, 20);
    assert.equal(proxy.counts.max, 3);
  } finally {
    await proxy.close();
  }
});

Deno.test("the in-flight limiter grants slots in the order they were asked for, per origin", async () => {
  const limiter = new InFlightLimiter(2);
  const order: number[] = [];
  const releases: (() => void)[] = [];
  releases.push(await limiter.acquire("a"), await limiter.acquire("a"));
  const other = await limiter.acquire("b"); // another origin is not held up
  const waiting = [1, 2, 3].map((n) =>
    limiter.acquire("a").then((release) => {
      order.push(n);
      releases.push(release);
    })
  );
  const aborted = new AbortController();
  const gaveUp = limiter.acquire("a", aborted.signal);
  aborted.abort(new Error("gave up"));
  await assert.rejects(gaveUp, /gave up/);
  assert.equal(limiter.inFlight("a"), 2);
  releases.shift()!();
  await waiting[0];
  releases.shift()!();
  releases.shift()!();
  await Promise.all(waiting);
  assert.deepEqual(order, [1, 2, 3]);
  assert.equal(limiter.inFlight("a"), 2);
  other();
  for (const release of releases) release();
  assert.equal(limiter.inFlight("a"), 0);
});

/** Peak resident memory (VmHWM) and current RSS of a process, in MiB. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)![1]) / 1024;
  return { rss: field("VmRSS"), peak: field("VmHWM") };
}

Deno.test("200 MiB of 1 MiB lines pipelined behind a set_credentials that waits: reading pauses, memory stays small", async () => {
  await using fake = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "1500" });
  fake.hang = true;
  await client.send({ type: "set_credentials", content: server(fake) });
  await waitFor(() => fake.requests.length > 0);
  // Lookups of 1 MiB reference numbers: each line's content is held until set_credentials is done.
  const pad = "x".repeat(1024 * 1024);
  const lines = 200;
  let written = 0;
  const writing = (async () => {
    for (let i = 0; i < lines; i++) {
      await client.sendRaw(`{"type":"has_cached_reference","content":"${i}-${pad}"}\n`);
      written++;
    }
  })();
  // The client stops reading once 8 MiB wait: the writes stop getting through.
  let last = -1;
  while (written !== last && written < lines) {
    last = written;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const paused = memoryOf(client.pid);
  assert.ok(written < 40, `reading should have paused, but ${written} MiB got through`);
  fake.hang = false; // the hung attempt times out; the retry succeeds
  assert.equal(await client.readLine(), OK);
  const pongs = await client.readLines(lines, 60_000);
  await writing;
  assert.equal(pongs.filter((answer) => answer === '{"type":"ok","content":false}').length, lines);
  const after = memoryOf(client.pid);
  assert.ok(paused.rss < 150, `RSS while paused: ${paused.rss.toFixed(0)} MiB`);
  assert.ok(after.peak < 200, `peak RSS over a 200 MiB flood: ${after.peak.toFixed(0)} MiB`);
  const { status } = await client.finish();
  assert.equal(status.code, 0);
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a condition");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** An in-memory stdin (the given lines) and stdout (collected lines) for serveLines. */
function memoryStdio(text: string) {
  const input = encoder.encode(text);
  let offset = 0;
  const out: string[] = [];
  const source = {
    read(buffer: Uint8Array): Promise<number | null> {
      if (offset >= input.length) return Promise.resolve(null);
      const count = Math.min(buffer.length, input.length - offset);
      buffer.set(input.subarray(offset, offset + count));
      offset += count;
      return Promise.resolve(count);
    },
  };
  const sink: ByteSink = {
    write(bytes) {
      out.push(...decoder.decode(bytes).split("\n").filter((line) => line !== ""));
      return Promise.resolve(bytes.length);
    },
  };
  return { source, sink, out };
}

Deno.test("an observer that throws: that line answers an error, the others keep flowing, end of input still ends", async () => {
  const reported: string[] = [];
  const registry = new CommandRegistry((type, error) => reported.push(`${type}: ${String(error)}`));
  registry.registerAll({
    ping: defineBareCommand(() => ({ type: "pong" })),
    later: defineBareCommand(() => Promise.resolve(okAnswer(1))),
  });
  registry.observe((type) => {
    if (type === "later") throw new Error("observer bug");
  });
  const { source, sink, out } = memoryStdio('{"type":"ping"}\n{"type":"later"}\n{"type":"ping"}\n');
  const writer = new AnswerWriter(sink);
  await serveLines(source, writer, {
    maxLineBytes: 1024,
    maxPendingBytes: 1024,
    answer: (line) => registry.dispatch(line),
  });
  assert.deepEqual(out, [
    '{"type":"pong"}',
    '{"type":"error","content":"later: failed unexpectedly: observer bug"}',
    '{"type":"pong"}',
  ]);
  assert.deepEqual(reported, ["later: Error: observer bug"]);
});

Deno.test("pipelined lines answered by one shared promise: each is answered in its place and counted once", async () => {
  let release = () => {};
  const shared = new Promise<void>((resolve) => release = resolve).then(() => okAnswer("shared"));
  const registry = new CommandRegistry();
  registry.registerAll({
    ping: defineBareCommand(() => ({ type: "pong" })),
    shared: defineBareCommand(() => shared),
    own: defineBareCommand(() => Promise.resolve(okAnswer("own"))),
    failing: defineBareCommand(() => shared.then(() => Promise.reject(new Error("late failure")))),
  });
  const counted: string[] = [];
  registry.observe((type, answer) => counted.push(`${type}:${answer.type}`));
  const { source, sink, out } = memoryStdio(
    ["shared", "shared", "own", "shared", "ping", "failing", "shared", "shared"].map((type) =>
      `{"type":"${type}"}\n`
    ).join(""),
  );
  // Every line is dispatched while the shared promise is still pending; it settles at end of input.
  const stdin = {
    read: async (buffer: Uint8Array) => {
      const count = await source.read(buffer);
      if (count === null) release();
      return count;
    },
  };
  await serveLines(stdin, new AnswerWriter(sink), {
    maxLineBytes: 1024,
    maxPendingBytes: 1 << 20,
    answer: (line) => registry.dispatch(line),
  });
  const sharedLine = '{"type":"ok","content":"shared"}';
  assert.deepEqual(out, [
    sharedLine,
    sharedLine,
    '{"type":"ok","content":"own"}',
    sharedLine,
    '{"type":"pong"}',
    '{"type":"error","content":"failing: failed unexpectedly: late failure"}',
    sharedLine,
    sharedLine,
  ]);
  assert.deepEqual(counted.sort(), [
    "failing:error",
    "own:ok",
    "ping:pong",
    ...Array(5).fill("shared:ok"),
  ]);
});

Deno.test("an answer promise that rejects or a dispatcher that throws: an error answer and a report, the rest flows", async () => {
  const reported: unknown[] = [];
  const { source, sink, out } = memoryStdio("a\nb\nc\nd\n");
  const writer = new AnswerWriter(sink, { onInternalError: (error) => reported.push(error) });
  let n = 0;
  await serveLines(source, writer, {
    maxLineBytes: 1024,
    maxPendingBytes: 1024,
    onInternalError: (error) => reported.push(error),
    answer: () => {
      n++;
      if (n === 2) return Promise.reject(new Error("rejected"));
      if (n === 3) throw new Error("thrown");
      return Promise.resolve(errorAnswer(`line ${n}`));
    },
  });
  assert.equal(out.length, 4);
  assert.equal(out[0], '{"type":"error","content":"line 1"}');
  assert.match(out[1], /failed unexpectedly.*rejected/);
  assert.match(out[2], /failed unexpectedly.*thrown/);
  assert.equal(out[3], '{"type":"error","content":"line 4"}');
  assert.equal(reported.length, 2);
});

Deno.test("a timer setting above 2^31-1 ms is a configuration error naming it", async () => {
  for (
    const name of [
      "RTCV_SCRAPER_CLIENT_TIMEOUT_MS",
      "RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS",
      "RTCV_SCRAPER_CLIENT_DRAIN_MS",
    ]
  ) {
    await assert.rejects(
      loadConfig(new Map([[name, String(MAX_TIMER_MS + 1)]])),
      (error) =>
        error instanceof ConfigError && error.source === name && /at most 2147483647/.test(error.message),
    );
    const config = await loadConfig(new Map([[name, String(MAX_TIMER_MS)]]));
    assert.ok(config);
  }
  await assert.rejects(
    loadConfig(new Map([["RTCV_SCRAPER_CLIENT_ENV", `{"drain_ms": ${2 ** 31}}`]])),
    (error) =>
      error instanceof ConfigError && error.source === "RTCV_SCRAPER_CLIENT_ENV" &&
      error.field === "drain_ms",
  );
  const session = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN_TS],
    env: { RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "9999999999", RTCV_SCRAPER_CLIENT_KV: ":memory:" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const result = await session.output();
  assert.equal(result.code, 2);
  assert.equal(decoder.decode(result.stdout), "", "no ready line");
  assert.match(decoder.decode(result.stderr), /RTCV_SCRAPER_CLIENT_TIMEOUT_MS.*at most 2147483647/);
});

Deno.test("computed waits are capped: a huge Retry-After and a long backoff never wait past the caps", async () => {
  let calls = 0;
  const target = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    // Every other answer asks for a wait of about 3000 years; the others leave it to the backoff.
    const headers: Record<string, string> = ++calls % 2 === 0 ? { "retry-after": "99999999999" } : {};
    return new Response("busy", { status: 503, headers });
  });
  try {
    const waits: number[] = [];
    const origin = `http://127.0.0.1:${target.addr.port}`;
    const policy = {
      ...defaultRequestPolicy(1000),
      maxRetries: 40,
      maxRetryAfterMs: 10 ** 12,
      sleep: (ms: number) => {
        waits.push(ms);
        return Promise.resolve();
      },
    };
    const outcome = await fetchWithRetries(
      { origin, path: "/", send: (signal) => fetch(origin, { signal }) },
      policy,
    );
    assert.equal(outcome.kind, "response");
    assert.equal(calls, 41);
    assert.equal(waits.length, 40);
    assert.ok(waits.every((ms) => ms >= 0 && ms <= MAX_BACKOFF_MS), `waits: ${waits.join(", ")}`);
    assert.ok(waits.slice(20).every((ms) => ms >= MAX_BACKOFF_MS / 2), "late backoffs reach the cap");
    target.shutdown();
  } finally {
    await target.finished;
  }
});

Deno.test("the scraper closes the client's stdout: said on stderr, the store closed, exit 1", async () => {
  await using dir = await liveDir();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN_TS],
    cwd: dir.path,
    env: { RTCV_SCRAPER_CLIENT_KV: dir.kv },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assert.equal(decoder.decode(first.value).trim(), READY_LINE);
  await reader.cancel(); // the scraper closes its end of the client's stdout
  const stdin = child.stdin.getWriter();
  await stdin.write(encoder.encode('{"type":"set_cached_reference","content":"closed-1"}\n'));
  // The answer cannot be written; the client notices at its next write and stops.
  const stderrText = new Response(child.stderr).text();
  const writes = (async () => {
    for (let i = 0; i < 100; i++) {
      try {
        await stdin.write(encoder.encode('{"type":"ping"}\n'));
      } catch {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const status = await child.status;
  await writes;
  await stdin.close().catch(() => {});
  assert.equal(status.code, 1);
  assert.match(await stderrText, /stdout was closed/);
  // The store was closed cleanly with the write in it: a new client sees the reference.
  await using again = spawnClient({ cwd: dir.path, env: { RTCV_SCRAPER_CLIENT_KV: dir.kv } });
  await again.ready();
  assert.deepEqual(await again.request({ type: "has_cached_reference", content: "closed-1" }), {
    type: "ok",
    content: true,
  });
});
