/**
 * Scenarios 1–3: start-up time, lockstep round trip, idle memory. Each also measures the floor program
 * (`floor_echo.ts`) for the client, so a figure can be read against what `deno run` costs by itself.
 *
 * @module
 */

import { check, formatNumber, info, measured, type Row, summarize } from "../report.ts";
import type { Scenario, ScenarioContext } from "../scenario.ts";
import { count, floorCommand, sleep, spawnReady, timeExit } from "./common.ts";

const PING = new TextEncoder().encode('{"type":"ping"}\n');
const PONG_TEXT = '{"type":"pong"}';

/** Spawns `runs` times; returns the ready times and the exit-after-EOF times (ms). */
async function spawnTimes(
  context: ScenarioContext,
  runs: number,
  command?: readonly string[],
): Promise<{ ready: number[]; exit: number[] }> {
  const ready: number[] = [];
  const exit: number[] = [];
  // One spawn first that is not counted: the first start after a change compiles and caches modules.
  for (let run = -1; run < runs; run++) {
    const { client, readyMs } = await spawnReady(context, { command });
    const exitMs = await timeExit(client);
    if (run >= 0) {
      ready.push(readyMs);
      exit.push(exitMs);
    }
  }
  return { ready, exit };
}

/** Scenario 1: spawn to ready line. */
export const readyScenario: Scenario = {
  id: "ready",
  alias: "1",
  title: "ready line after spawn, median of 10 spawns",
  peer: true,
  timeoutMs: 60_000,
  async run(context) {
    const runs = count(context, 10, 4);
    // Interleaved with the floor, one spawn each at a time, so both see the same moment of the machine.
    const ready: number[] = [];
    const exit: number[] = [];
    const floorReady: number[] = [];
    const withFloor = context.target.kind === "client";
    for (let run = 0; run < runs; run++) {
      const one = await spawnTimes(context, 1);
      ready.push(...one.ready);
      exit.push(...one.exit);
      if (withFloor) floorReady.push(...(await spawnTimes(context, 1, floorCommand(context))).ready);
    }
    const summary = summarize(ready);
    const floorMedian = withFloor ? summarize(floorReady).median : NaN;
    const rows: Row[] = [
      measured(
        "ready",
        `spawn to ready line (median of ${runs})`,
        summary.median,
        "ms",
        withFloor ? 2 * floorMedian : 60,
        `min ${formatNumber(summary.min)}, max ${formatNumber(summary.max)}${
          withFloor ? `; target 2.0x the floor; ${formatNumber(summary.median / floorMedian)}x` : ""
        }`,
      ),
      info(
        "ready",
        "exit after end of stdin (median)",
        summarize(exit).median,
        "ms",
        "idle client, nothing to flush",
      ),
    ];
    if (withFloor) rows.push(info("ready", "floor: minimal deno program to first line", floorMedian, "ms"));
    return rows;
  },
};

/** Scenario 2: lockstep ping round trip. */
export const pingScenario: Scenario = {
  id: "ping",
  alias: "2",
  title: "lockstep ping round trip",
  peer: true,
  timeoutMs: 60_000,
  async run(context) {
    const n = count(context, 2000, 300);
    const warmUp = count(context, 300, 50);
    const withFloor = context.target.kind === "client";
    // Client and floor run side by side and take turns ping by ping, so both see the same moment of the
    // machine (it drifts by tens of µs from one second to the next under load).
    const { client } = await spawnReady(context);
    const floorProcess = withFloor
      ? (await spawnReady(context, { command: floorCommand(context) })).client
      : null;
    const clientMicros: number[] = [];
    const floorMicros: number[] = [];
    let wrong = 0;
    for (let i = 0; i < warmUp + n; i++) {
      let start = performance.now();
      if (await client.request(PING) !== PONG_TEXT) wrong++;
      if (i >= warmUp) clientMicros.push((performance.now() - start) * 1000);
      if (floorProcess) {
        start = performance.now();
        await floorProcess.request(PING);
        if (i >= warmUp) floorMicros.push((performance.now() - start) * 1000);
      }
    }
    await timeExit(client);
    if (floorProcess) await timeExit(floorProcess);
    const summary = summarize(clientMicros);
    const floorSummary = withFloor ? summarize(floorMicros) : null;
    const rows: Row[] = [
      measured(
        "ping",
        `round trip median (${n} lockstep)`,
        summary.median,
        "µs",
        floorSummary ? 1.15 * floorSummary.median : 100,
        floorSummary
          ? `target 1.15x the floor; ${formatNumber(summary.median / floorSummary.median)}x`
          : undefined,
      ),
      info("ping", "round trip p90", summary.p90, "µs"),
      info("ping", "round trip p99", summary.p99, "µs", `max ${formatNumber(summary.max)} µs`),
      check(
        "ping",
        "answers",
        wrong === 0,
        wrong === 0 ? `${n + warmUp} pongs` : `${wrong} answers were not pong`,
      ),
    ];
    if (floorSummary) {
      const floor = floorSummary;
      rows.push(
        info(
          "ping",
          "floor: minimal deno echo, median",
          floor.median,
          "µs",
          `p99 ${formatNumber(floor.p99)} µs; the driver's own share is in here too`,
        ),
      );
    }
    return rows;
  },
};

/** Reads the RSS after the ready line and a few pings, once things settled. */
async function idleMemory(context: ScenarioContext, command?: readonly string[]) {
  const { client } = await spawnReady(context, { command });
  for (let i = 0; i < 20; i++) await client.request(PING);
  await sleep(250);
  const idle = client.memory();
  return { client, idle };
}

/** Scenario 3: idle RSS. */
export const idleRssScenario: Scenario = {
  id: "idle_rss",
  alias: "3",
  title: "RSS after ready and a few pings",
  peer: true,
  timeoutMs: 30_000,
  async run(context) {
    const floor = context.target.kind === "client" ? await idleMemory(context, floorCommand(context)) : null;
    if (floor) await timeExit(floor.client);
    const { client, idle } = await idleMemory(context);
    const rows: Row[] = [
      measured(
        "idle_rss",
        "RSS after ready + 20 pings",
        idle.rssMiB,
        "MiB",
        floor ? floor.idle.rssMiB + 15 : 60,
        floor ? "target: the floor's RSS + 15 MiB" : undefined,
      ),
    ];
    // The first cache command opens the store (lazily, in the client): the memory that costs.
    const answer = await client.request('{"type":"has_cached_reference","content":"1"}\n');
    await sleep(250);
    const opened = client.memory();
    rows.push(
      info(
        "idle_rss",
        "RSS after first cache command (store open)",
        opened.rssMiB,
        "MiB",
        answer === '{"type":"ok","content":false}' ? undefined : `unexpected answer ${answer.slice(0, 120)}`,
      ),
    );
    await timeExit(client);
    if (floor) rows.push(info("idle_rss", "floor: minimal deno echo RSS", floor.idle.rssMiB, "MiB"));
    return rows;
  },
};
