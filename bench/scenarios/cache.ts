/**
 * Scenarios 4 and 5: the reference cache under a pipelining scraper, and on a store of 1,000,000 entries.
 *
 * @module
 */

import { encodeLines, ExpectedAnswers, FALSE, OK, referenceLine, shuffle, TRUE } from "../answers.ts";
import { check, failed, formatNumber, info, measured, type Row, skipped, summarize } from "../report.ts";
import type { Scenario, ScenarioContext } from "../scenario.ts";
import { defaultStorePath, prepareStore } from "../store_1m.ts";
import { count, cpuDelta, driverCpuMs, LineMarks, reason, sleep, spawnReady, timeExit } from "./common.ts";

/** Distinct random-looking reference numbers: `base + i`, with `base` picked per run. */
function randomBase(): number {
  return 3_000_000_000 + Math.floor(Math.random() * 1_000_000_000);
}

/** Input and expected answers for checking that `known` are cached and `unknown` are not, in random order. */
function lookups(
  known: readonly string[],
  unknown: readonly string[],
): { input: Uint8Array; expected: Uint8Array } {
  const items = shuffle([
    ...known.map((reference) => [reference, TRUE] as const),
    ...unknown.map((reference) => [reference, FALSE] as const),
  ]);
  return {
    input: encodeLines(items.map(([reference]) => referenceLine("has_cached_reference", reference))),
    expected: Uint8Array.from(items, ([, code]) => code),
  };
}

/** `count` distinct items of `from`, at random. */
function sample<T>(from: readonly T[], count: number): T[] {
  return shuffle([...from]).slice(0, count);
}

/**
 * The store work any durable client must do for scenario 4, done by this driver on a bare Deno.Kv: the 50k
 * keys committed in 1000-key atomics, then `getMany` of the 25k absent ones (10 keys a call, all in flight).
 */
async function bareKvFloorMs(context: ScenarioContext, sets: number, base: number): Promise<number> {
  const dir = await context.tempDir();
  const kv = await Deno.openKv(`${dir}/floor.kv`);
  try {
    const started = performance.now();
    for (let start = 0; start < sets; start += 1000) {
      const atomic = kv.atomic();
      for (let i = start; i < Math.min(sets, start + 1000); i++) {
        atomic.set(["ref", String(base + i)], new Deno.KvU64(1n), { expireIn: 3_600_000 });
      }
      await atomic.commit();
    }
    const reads: Promise<unknown>[] = [];
    for (let start = 0; start < sets / 2; start += 10) {
      const keys = Array.from({ length: 10 }, (_, i) => ["ref", String(base + 10_000_000 + start + i)]);
      reads.push(kv.getMany(keys));
    }
    await Promise.all(reads);
    return performance.now() - started;
  } finally {
    kv.close();
  }
}

/** Scenario 4: 50k sets then 50k lookups, all pipelined, every answer checked, then durability. */
export const pipelinedCacheScenario: Scenario = pipelinedCache(
  "pipelined_cache",
  "4",
  "set_cached_reference",
);

/** Scenario 4s: the same with `set_short_cached_reference` (a set that must never shorten a lifetime). */
export const pipelinedShortCacheScenario: Scenario = pipelinedCache(
  "pipelined_short",
  "4s",
  "set_short_cached_reference",
);

function pipelinedCache(id: string, alias: string, setType: string): Scenario {
  const long = setType === "set_cached_reference";
  return {
    id,
    alias,
    title: `100k pipelined cache lines (50k ${setType}, 50k has), answers verified, durability spot-checked`,
    peer: true,
    timeoutMs: 120_000,
    async run(context) {
      const sets = count(context, 50_000, 10_000);
      const total = sets * 2;
      const base = randomBase();
      const setRefs = Array.from({ length: sets }, (_, i) => String(base + i));
      const neverSeen = Array.from({ length: sets / 2 }, (_, i) => String(base + 10_000_000 + i));
      const has = lookups(sample(setRefs, sets / 2), neverSeen);
      const setInput = encodeLines(
        setRefs.map((reference) => referenceLine(setType, reference)),
      );
      const input = new Uint8Array(setInput.length + has.input.length);
      input.set(setInput, 0);
      input.set(has.input, setInput.length);
      const expected = new Uint8Array(total);
      expected.fill(OK, 0, sets);
      expected.set(has.expected, sets);

      const dir = await context.tempDir();
      const kvPath = `${dir}/cache.kv`;
      const { client } = await spawnReady(context, { kvPath, cwd: dir });
      const answers = new ExpectedAnswers(expected);
      const marks = new LineMarks(answers, [sets]);
      const cpuBefore = client.cpuByThread();
      const driverBefore = driverCpuMs();
      const timing = await client.pipeline(input, marks);
      const driverSpent = driverCpuMs() - driverBefore;
      const cpu = cpuDelta(cpuBefore, client.cpuByThread());
      const wallMs = timing.finishedAt - timing.startedAt;
      const setsMs = marks.times[0] - timing.startedAt;
      const label = `${total / 1000}k`;
      const scale = total / 100_000;
      // The floor right after the run, in the same minute of the machine (client target only).
      const floorMs = long && context.target.kind === "client"
        ? await bareKvFloorMs(context, sets, base)
        : NaN;
      const max = long ? Math.max(600 * scale, 1.3 * floorMs || 0) : 1000 * scale;
      const rows: Row[] = [
        measured(
          id,
          `${label} lines: first byte written to last answer`,
          wallMs,
          "ms",
          max,
          `${long ? "target 600 ms or 1.3x the bare Deno.Kv floor" : "target 1000 ms"}; ${
            formatNumber(total / (wallMs / 1000) / 1000)
          }k lines/s; input ${(input.length / 1048576).toFixed(1)} MiB, all written after ${
            formatNumber(timing.writtenAt - timing.startedAt)
          } ms`,
        ),
        info(
          "pipelined_cache",
          `answer of the last set (line ${sets})`,
          setsMs,
          "ms",
          "the has lines follow",
        ),
        check("pipelined_cache", "every answer right", answers.mismatches === 0, answers.summary()),
        info("pipelined_cache", "client CPU during the run", cpu.total, "ms", cpu.note),
        info(
          "pipelined_cache",
          "driver CPU during the run",
          driverSpent,
          "ms",
          "this process, for comparison",
        ),
        info("pipelined_cache", "RSS after the run", client.memory().rssMiB, "MiB"),
      ].map((row) => ({ ...row, scenario: id }));
      if (!Number.isNaN(floorMs)) {
        rows.push(
          info(id, "floor: bare Deno.Kv, 50k set in 1000-key atomics + getMany of 25k absent", floorMs, "ms"),
        );
      }

      if (context.target.kind === "peer") {
        await timeExit(client);
        rows.push(
          skipped(id, "durable before its answer", "n/a, the peer keeps nothing on disk"),
        );
        return rows;
      }
      // Every set was answered `ok`, so every set must be in the file now: kill without a clean shutdown and
      // look the sets up from a second client on the same store.
      client.kill("SIGKILL");
      await client.status;
      rows.push({ ...(await spotCheck(context, kvPath, dir, setRefs, base)), scenario: id });
      return rows;
    },
  };
}

/** Spawns a second client on `kvPath` and checks that 1000 random set references are cached. */
async function spotCheck(
  context: ScenarioContext,
  kvPath: string,
  dir: string,
  setRefs: readonly string[],
  base: number,
): Promise<Row> {
  const metric = "durable before its answer";
  const spotCount = Math.min(1000, setRefs.length);
  try {
    const { client } = await spawnReady(context, { kvPath, cwd: dir });
    const neverSeen = Array.from({ length: 100 }, (_, i) => String(base + 20_000_000 + i));
    const spot = lookups(sample(setRefs, spotCount), neverSeen);
    const answers = new ExpectedAnswers(spot.expected);
    await client.pipeline(spot.input, answers);
    await timeExit(client);
    return check(
      "pipelined_cache",
      metric,
      answers.mismatches === 0,
      `SIGKILL right after the last answer, reopened: ${spotCount} random sets + 100 unknown: ${answers.summary()}`,
    );
  } catch (error) {
    return failed("pipelined_cache", metric, `reopening the store failed: ${reason(error)}`);
  }
}

/** The 1M store: references `STORE_FIRST .. STORE_FIRST + count - 1`. */
const STORE_FIRST = 500_000_000;

/** Scenario 5: first lookup and 10k random lookups on a store of 1,000,000 references. */
export const store1mScenario: Scenario = {
  id: "store_1m",
  alias: "5",
  title: "a store of 1,000,000 references: first lookup after spawn, 10k random lookups, RSS",
  peer: false,
  timeoutMs: 600_000,
  async run(context) {
    const storeCount = 1_000_000;
    const store = await prepareStore({
      path: defaultStorePath(),
      count: storeCount,
      first: STORE_FIRST,
      benchDir: context.benchDir,
      rebuild: context.flags.has("rebuild-1m"),
      progress: context.progress,
    });
    const known = () => String(STORE_FIRST + Math.floor(Math.random() * storeCount));
    const rows: Row[] = [{
      scenario: "store_1m",
      metric: "store of 1M references",
      value: store.buildSeconds,
      unit: "s",
      status: "info",
      note: `${store.built ? "built now" : "reused"}: ${store.path}, built ${
        new Date(store.builtAt).toISOString()
      } in ${formatNumber(store.buildSeconds)} s (direct Deno.Kv, 1000-mutation atomics); ${
        (Deno.statSync(store.path).size / 1048576).toFixed(0)
      } MiB`,
    }];

    const runs = count(context, 3, 1);
    const firstAnswer: number[] = [];
    const ready: number[] = [];
    const cwd = await context.tempDir();
    let wrongFirst = "";
    for (let run = 0; run < runs; run++) {
      const started = await spawnReady(context, { kvPath: store.path, cwd });
      const answer = await started.client.request(referenceLine("has_cached_reference", known()));
      firstAnswer.push(performance.now() - started.client.spawnedAt);
      ready.push(started.readyMs);
      if (answer !== '{"type":"ok","content":true}') wrongFirst = answer.slice(0, 200);
      if (run < runs - 1) {
        await timeExit(started.client);
        continue;
      }
      const lookupCount = count(context, 10_000, 2_000);
      const unknown = Array.from(
        { length: lookupCount / 2 },
        (_, i) => String(STORE_FIRST + 5_000_000 + i * 7),
      );
      const knownRefs = new Set<string>();
      while (knownRefs.size < lookupCount / 2) knownRefs.add(known());
      const batch = lookups([...knownRefs], unknown);
      const answers = new ExpectedAnswers(batch.expected);
      const cpuBefore = started.client.cpuByThread();
      const timing = await started.client.pipeline(batch.input, answers);
      const cpu = cpuDelta(cpuBefore, started.client.cpuByThread());
      await sleep(100);
      const memory = started.client.memory();
      rows.push(
        measured(
          "store_1m",
          `spawn to first has_cached_reference answer (median of ${runs})`,
          summarize(firstAnswer).median,
          "ms",
          1500,
          `ready after ${formatNumber(summarize(ready).median)} ms; runs: ${
            firstAnswer.map(formatNumber).join(", ")
          } ms`,
        ),
        check(
          "store_1m",
          "first answer right",
          wrongFirst === "",
          wrongFirst === "" ? "true for a stored reference" : `got ${wrongFirst}`,
        ),
        info(
          "store_1m",
          `${lookupCount / 1000}k random lookups, pipelined`,
          timing.finishedAt - timing.startedAt,
          "ms",
          `half stored, half not; client CPU ${cpu.note}`,
        ),
        check("store_1m", "lookup answers right", answers.mismatches === 0, answers.summary()),
        measured(
          "store_1m",
          "RSS after the lookups",
          memory.rssMiB,
          "MiB",
          250,
          `peak ${formatNumber(memory.peakMiB)} MiB`,
        ),
      );
      await timeExit(started.client);
    }
    return rows;
  },
};
