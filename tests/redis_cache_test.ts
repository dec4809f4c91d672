/**
 * The reference cache of a fleet on a real `redis-server` (`RTCV_SCRAPER_CLIENT_KV=redis://...`): shared
 * between processes, Redis expiries as lifetimes, faults (Redis down, restarted mid-session), the store
 * selection and the password kept out of everything.
 *
 * Without `redis-server` on PATH these tests are ignored and this file prints one line saying how to
 * install it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startFakeRtcv } from "./fake_rtcv.ts";
import { ok, sendCv } from "./live_helpers.ts";
import { MAX_RECONNECT_DELAY_MS, reconnectDelay } from "../src/store/redis/redis_connection.ts";
import { REDIS_INSTALL_HINT, REDIS_MISSING, RedisServer } from "./helpers/redis_server.ts";
import { runSession, spawnClient, tempDir } from "./helpers/spawn_client.ts";

if (REDIS_MISSING) {
  // The one line a machine without redis-server sees (the other Redis test files stay silent).
  // deno-lint-ignore no-console
  console.error(REDIS_INSTALL_HINT);
}

const PASSWORD = "fleet-pa55word-0f-redis";
const HOUR = 60 * 60 * 1000;

/** Every file's name and text in `dir` (logs, stores), to check that the password is in none of them. */
async function filesIn(dir: string): Promise<string> {
  let all = "";
  for await (const entry of Deno.readDir(dir)) {
    all += `${entry.name}\n`;
    if (entry.isFile) all += new TextDecoder().decode(await Deno.readFile(`${dir}/${entry.name}`));
  }
  return all;
}

function ref(type: string, reference: string) {
  return { type, content: reference };
}

Deno.test({
  name: "redis: a reference cached by one process is cached for another; lifetimes are Redis expiries",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start({ password: PASSWORD });
    await using dirA = await tempDir("rtcv_redis_a_");
    await using dirB = await tempDir("rtcv_redis_b_");
    const env = {
      RTCV_SCRAPER_CLIENT_KV: redis.url,
      LOG_SCRAPER_CLIENT_INPUT: "true",
      ENABLE_SCRAPER_CLIENT_LOG: "true",
    };
    await using a = spawnClient({ cwd: dirA.path, env });
    await using b = spawnClient({ cwd: dirB.path, env });
    await a.ready();
    await b.ready();

    await ok(a, ref("set_cached_reference", "long-1"));
    assert.equal(await ok(b, ref("has_cached_reference", "long-1")), true);
    assert.equal(await ok(b, ref("get_cached_reference", "never-set")), false);
    // A short set of a long entry does not shorten it.
    await ok(b, ref("set_short_cached_reference", "long-1"));
    const longTtl = Number(await redis.cli("PTTL", "rtcv:ref:long-1"));
    assert.ok(longTtl > 71 * HOUR && longTtl <= 72 * HOUR, `PTTL ${longTtl}`);
    // A short entry lives 12 h, and a long set later lengthens it.
    await ok(b, ref("set_short_cached_reference", "short-1"));
    const shortTtl = Number(await redis.cli("PTTL", "rtcv:ref:short-1"));
    assert.ok(shortTtl > 11 * HOUR && shortTtl <= 12 * HOUR, `PTTL ${shortTtl}`);
    assert.equal(await ok(a, ref("has_cached_reference", "short-1")), true);
    await ok(a, ref("set_cached_reference", "short-1"));
    assert.ok(Number(await redis.cli("PTTL", "rtcv:ref:short-1")) > 71 * HOUR);
    // An expired reference is never answered as cached: Redis drops it at its expiry.
    await redis.cli("PEXPIRE", "rtcv:ref:long-1", "1");
    await redis.cli("DEBUG", "SLEEP", "0.01").catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(await ok(b, ref("has_cached_reference", "long-1")), false);

    // Pipelined lines: all sets, then all lookups, written at once; every answer right and every key there.
    const count = 2000;
    const lines = [
      ...Array.from({ length: count }, (_, i) => ref("set_cached_reference", `p-${i}`)),
      ...Array.from({ length: count }, (_, i) => ref("has_cached_reference", `p-${i % 2 ? i : -i - 1}`)),
    ];
    await a.sendRaw(lines.map((line) => JSON.stringify(line) + "\n").join(""));
    const answers = await a.readLines(lines.length);
    assert.deepEqual(answers.slice(0, count), Array(count).fill('{"type":"ok"}'));
    answers.slice(count).forEach((answer, i) => {
      assert.equal(answer, `{"type":"ok","content":${i % 2 === 1}}`, `lookup ${i}`);
    });
    assert.equal(await redis.cli("EVAL", "return #redis.call('KEYS', 'rtcv:ref:p-*')", "0"), String(count));

    const finishedA = await a.finish();
    const finishedB = await b.finish();
    assert.equal(finishedA.status.code, 0, finishedA.stderr);
    assert.equal(finishedB.status.code, 0, finishedB.stderr);
    for (
      const text of [finishedA.stderr, finishedB.stderr, await filesIn(dirA.path), await filesIn(dirB.path)]
    ) {
      assert.ok(!text.includes(PASSWORD), "the Redis password leaked");
    }
    // Nor is it in the store: no key and no value holds it.
    const keys = await redis.cli("--scan");
    assert.ok(!keys.includes(PASSWORD));
    assert.ok(!(await redis.allValues()).includes(PASSWORD));
    // The input log is there (so the check above looked at it), and the Redis store wrote no Kv file.
    assert.ok((await filesIn(dirA.path)).includes("set_cached_reference"));
    assert.ok(!(await filesIn(dirA.path)).includes(".kv"));
  },
});

Deno.test({
  name:
    "redis: down -> errors naming host:port within the timeout, nothing queued; ping and mock work; restart resumes",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start({ password: PASSWORD });
    const timeoutMs = 1500;
    const env = { RTCV_SCRAPER_CLIENT_KV: redis.url, RTCV_SCRAPER_CLIENT_TIMEOUT_MS: String(timeoutMs) };
    await using live = spawnClient({ env });
    await using mock = spawnClient({ env });
    await live.ready();
    await mock.ready();
    await ok(live, ref("set_cached_reference", "before-restart"));

    await redis.stop();
    for (
      const command of [
        ref("has_cached_reference", "before-restart"),
        ref("set_cached_reference", "while-down"),
      ]
    ) {
      const started = performance.now();
      const answer = await live.request(command);
      const ms = performance.now() - started;
      assert.equal(answer.type, "error", JSON.stringify(answer));
      const message = String(answer.content);
      assert.ok(message.includes(`Redis server ${redis.address}`), message);
      assert.ok(!message.includes(PASSWORD), message);
      assert.ok(ms < timeoutMs + 500, `answered after ${ms} ms`);
    }
    assert.deepEqual(await live.request({ type: "ping" }), { type: "pong" });
    // Mock mode never touches the store: it works while Redis is down.
    await ok(mock, { type: "set_mock", content: {} });
    assert.equal(await ok(mock, sendCv("mock-cv")), true);
    assert.equal(await ok(mock, sendCv("mock-cv")), false);
    assert.equal(await ok(mock, ref("has_cached_reference", "mock-cv")), true);

    // Redis comes back on the same port: the same process resumes, and the acknowledged write survived.
    await redis.restart();
    const deadline = Date.now() + 15_000;
    let answer = await live.request(ref("has_cached_reference", "before-restart"));
    while (answer.type === "error" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      answer = await live.request(ref("has_cached_reference", "before-restart"));
    }
    assert.deepEqual(answer, { type: "ok", content: true });
    // The write answered with an error while Redis was down was not queued and replayed later.
    assert.equal(await redis.cli("EXISTS", "rtcv:ref:while-down"), "0");
    assert.equal(await ok(live, ref("has_cached_reference", "while-down")), false);
    await ok(live, ref("set_cached_reference", "after-restart"));
    assert.equal(await redis.cli("EXISTS", "rtcv:ref:after-restart"), "1");
    assert.ok(!(await mock.finish()).stderr.includes(PASSWORD));
    const finished = await live.finish();
    assert.equal(finished.status.code, 0, finished.stderr);
    assert.ok(finished.stderr.includes(`Redis ${redis.address} is unreachable`), finished.stderr);
    assert.ok(!finished.stderr.includes(PASSWORD), finished.stderr);
  },
});

Deno.test({
  name:
    "redis: a server that stops answering (frozen) makes commands fail within the timeout; it then resumes",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start();
    const timeoutMs = 1000;
    await using client = spawnClient({
      env: { RTCV_SCRAPER_CLIENT_KV: redis.url, RTCV_SCRAPER_CLIENT_TIMEOUT_MS: String(timeoutMs) },
    });
    await client.ready();
    await ok(client, ref("set_cached_reference", "frozen-1"));
    redis.freeze();
    const started = performance.now();
    const answer = await client.request(ref("has_cached_reference", "frozen-1"));
    const ms = performance.now() - started;
    redis.thaw();
    assert.equal(answer.type, "error", JSON.stringify(answer));
    assert.ok(String(answer.content).includes(`Redis server ${redis.address}`), String(answer.content));
    assert.ok(ms >= timeoutMs - 50 && ms < timeoutMs + 700, `answered after ${ms} ms`);
    assert.equal(await ok(client, ref("has_cached_reference", "frozen-1")), true);
    assert.equal((await client.finish()).status.code, 0);
  },
});

Deno.test({
  name: "redis: send_cv answers true only once the match is in Redis; another process then sends nothing",
  ignore: REDIS_MISSING,
  async fn() {
    await using redis = await RedisServer.start();
    await using rtcv = await startFakeRtcv({ hasMatches: true });
    const env = { RTCV_SCRAPER_CLIENT_KV: redis.url, RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "3000" };
    await using a = spawnClient({ env });
    await using b = spawnClient({ env });
    await a.ready();
    await b.ready();
    await ok(a, { type: "set_credentials", content: rtcv.wireCredentials() });
    await ok(b, { type: "set_credentials", content: rtcv.wireCredentials() });
    assert.equal(await ok(a, sendCv("matched-1")), true);
    // The answer came after the write was acknowledged: Redis has it now.
    assert.equal(await redis.cli("EXISTS", "rtcv:ref:matched-1"), "1");
    assert.ok(Number(await redis.cli("PTTL", "rtcv:ref:matched-1")) > 71 * HOUR);
    assert.equal(await ok(b, sendCv("matched-1")), false);
    assert.equal(rtcv.receivedCvs.filter((cv) => cv.referenceNumber === "matched-1").length, 1);
    assert.equal((await a.finish()).status.code, 0);
    assert.equal((await b.finish()).status.code, 0);
  },
});

Deno.test({
  name:
    "redis: another <scheme>:// in RTCV_SCRAPER_CLIENT_KV or the config's kv is a start-up error (exit 2), no file",
  async fn() {
    for (
      const [env, source] of [
        [
          { RTCV_SCRAPER_CLIENT_KV: `ftp://scraper:${PASSWORD}@files.example/cache` },
          "RTCV_SCRAPER_CLIENT_KV",
        ],
        [
          { RTCV_SCRAPER_CLIENT_KV: `redis://:${PASSWORD}@127.0.0.1:6379/not-a-db` },
          "RTCV_SCRAPER_CLIENT_KV",
        ],
        [
          { RTCV_SCRAPER_CLIENT_ENV: JSON.stringify({ kv: `postgres://u:${PASSWORD}@db/x` }) },
          "RTCV_SCRAPER_CLIENT_ENV",
        ],
      ] as const
    ) {
      await using dir = await tempDir("rtcv_redis_scheme_");
      const result = await runSession([{ type: "ping" }], env, { cwd: dir.path });
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.ready, null, "no ready line before a config error");
      assert.ok(result.stderr.includes(`${source}: kv`), result.stderr);
      assert.ok(!result.stderr.includes(PASSWORD), result.stderr);
      assert.equal(await filesIn(dir.path), "", "nothing was created in the working directory");
    }
  },
});

Deno.test("redis: reconnection backs off from 100 ms, doubling, capped at 5 s", () => {
  const delays = Array.from({ length: 12 }, (_, i) => reconnectDelay(i + 1));
  assert.deepEqual(delays.slice(0, 4), [100, 200, 400, 800]);
  assert.ok(delays.every((delay, i) => i === 0 || delay >= delays[i - 1]));
  assert.equal(MAX_RECONNECT_DELAY_MS, 5000);
  assert.equal(Math.max(...delays), 5000);
});
