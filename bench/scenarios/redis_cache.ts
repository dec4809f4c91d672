/**
 * Scenario 4r: scenario 4's 100k pipelined cache lines with the store on a local `redis-server`
 * (`RTCV_SCRAPER_CLIENT_KV=redis://...`), against the floor of the bench's own Redis pipeline doing the
 * same 100k commands (50k `SET key 1 PX 72h`, 50k `EXISTS`), measured in the same run.
 *
 * @module
 */

import { REDIS_INSTALL_HINT, REDIS_MISSING, RedisServer } from "../../tests/helpers/redis_server.ts";
import { encodeLines, ExpectedAnswers, FALSE, OK, referenceLine, shuffle, TRUE } from "../answers.ts";
import { check, formatNumber, info, measured, type Row, skipped } from "../report.ts";
import type { Scenario } from "../scenario.ts";
import { count, cpuDelta, spawnReady, timeExit } from "./common.ts";

const ID = "redis_cache";
const LONG_MS = 72 * 60 * 60 * 1000;

/** The bench's own pipeline: the same commands through ioredis in one `pipeline().exec()`, in ms. */
async function ownPipelineMs(
  url: string,
  sets: readonly string[],
  lookups: readonly string[],
): Promise<number> {
  const { Redis } = await import("ioredis");
  const client = new Redis(url, { lazyConnect: true });
  await client.connect();
  try {
    const started = performance.now();
    const pipeline = client.pipeline();
    for (const reference of sets) pipeline.set(`bench:${reference}`, "1", "PX", LONG_MS);
    for (const reference of lookups) pipeline.exists(`bench:${reference}`);
    await pipeline.exec();
    return performance.now() - started;
  } finally {
    client.disconnect();
  }
}

/** Scenario 4r; see the module documentation. */
export const redisCacheScenario: Scenario = {
  id: ID,
  alias: "4r",
  title: "100k pipelined cache lines on a local Redis vs the bench's own Redis pipeline (target ≤ 3×)",
  peer: false,
  timeoutMs: 120_000,
  async run(context) {
    if (REDIS_MISSING) return [skipped(ID, "100k lines on Redis", REDIS_INSTALL_HINT, "ms")];
    const sets = count(context, 50_000, 10_000);
    const base = 3_000_000_000 + Math.floor(Math.random() * 1_000_000_000);
    const setRefs = Array.from({ length: sets }, (_, i) => String(base + i));
    const known = shuffle([...setRefs]).slice(0, sets / 2);
    const unknown = Array.from({ length: sets / 2 }, (_, i) => String(base + 10_000_000 + i));
    const lookups = shuffle([
      ...known.map((r) => [r, TRUE] as const),
      ...unknown.map((r) => [r, FALSE] as const),
    ]);
    const input = encodeLines([
      ...setRefs.map((reference) => referenceLine("set_cached_reference", reference)),
      ...lookups.map(([reference]) => referenceLine("has_cached_reference", reference)),
    ]);
    const expected = new Uint8Array(sets * 2);
    expected.fill(OK, 0, sets);
    expected.set(lookups.map(([, code]) => code), sets);

    await using redis = await RedisServer.start();
    const floorMs = await ownPipelineMs(redis.url, setRefs, lookups.map(([reference]) => reference));
    const { client } = await spawnReady(context, { kvPath: redis.url });
    const answers = new ExpectedAnswers(expected);
    const cpuBefore = client.cpuByThread();
    const timing = await client.pipeline(input, answers);
    const cpu = cpuDelta(cpuBefore, client.cpuByThread());
    const wallMs = timing.finishedAt - timing.startedAt;
    const stored = Number(await redis.cli("EVAL", "return #redis.call('KEYS', 'rtcv:ref:*')", "0"));
    await timeExit(client);
    const label = `${(sets * 2) / 1000}k`;
    const rows: Row[] = [
      measured(
        ID,
        `${label} lines on Redis: first byte written to last answer`,
        wallMs,
        "ms",
        3 * floorMs,
        `target 3× the bench's own pipeline (${formatNumber(floorMs)} ms); ${
          formatNumber(wallMs / floorMs)
        }×; ${formatNumber(sets * 2 / (wallMs / 1000) / 1000)}k lines/s`,
      ),
      info(ID, `bench's own Redis pipeline, the same ${label} commands`, floorMs, "ms", "ioredis, one exec"),
      check(ID, "every answer right", answers.mismatches === 0, answers.summary()),
      check(ID, "every set in Redis", stored === sets, `${stored} of ${sets} reference keys`),
      info(ID, "client CPU during the run", cpu.total, "ms", cpu.note),
    ];
    return rows;
  },
};
