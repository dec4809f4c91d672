/**
 * Scenarios 6a and 6b: `send_cv` against local fake RT-CV servers (`tests/fake_rtcv.ts`, loaded at run time
 * so the bench still runs and type-checks without it). They report `skip` when the fake is missing or the
 * client refuses `set_credentials` (live mode not wired yet).
 *
 * @module
 */

import { pathToFileURL } from "node:url";
import { check, formatNumber, info, measured, type Row, skipped, summarize } from "../report.ts";
import type { Scenario, ScenarioContext } from "../scenario.ts";
import type { ClientProcess } from "../client_process.ts";
import { answerMessage, count, floorCommand, spawnReady, timeExit } from "./common.ts";

/** What the bench uses of a running fake RT-CV (see `tests/fake_rtcv.ts`). */
export interface FakeServer {
  readonly url: string;
  latencyMs: number;
  hang: boolean;
  hasMatches: boolean | ((cv: Record<string, unknown>) => boolean);
  readonly receivedCvs: unknown[];
  wireCredentials(index?: number): { server_location: string; api_key_id: string; api_key: string };
  close(): Promise<void>;
}

/** What the bench uses of `tests/fake_rtcv.ts`. */
export interface FakeModule {
  startFakeRtcv(options?: { latencyMs?: number; hasMatches?: boolean }): Promise<FakeServer>;
  rtcvAuthHeader(apiKeyId: string, apiKey: string): Promise<string>;
}

/** Loads the fake, or returns why it cannot be used. */
export async function loadFake(context: ScenarioContext): Promise<FakeModule | string> {
  const path = `${context.repo}/tests/fake_rtcv.ts`;
  try {
    Deno.statSync(path);
  } catch {
    return "tests/fake_rtcv.ts not found";
  }
  const module = await import(pathToFileURL(path).href) as Partial<FakeModule>;
  if (typeof module.startFakeRtcv !== "function" || typeof module.rtcvAuthHeader !== "function") {
    return "tests/fake_rtcv.ts has no startFakeRtcv / rtcvAuthHeader";
  }
  return module as FakeModule;
}

/** A CV of a realistic size (~1 KiB) with the given reference number. */
export function sampleCv(referenceNumber: string): Record<string, unknown> {
  return {
    referenceNumber,
    createdAt: "2024-05-01T12:00:00Z",
    lastChanged: "2024-05-02T08:30:00Z",
    personalDetails: {
      firstName: "Bench",
      surNamePrefix: "van",
      surName: "Mark",
      dob: "1990-01-01T00:00:00Z",
      gender: "unknown",
      streetName: "Teststraat",
      houseNumber: "1",
      zip: "1234AB",
      city: "Utrecht",
      country: "NL",
      phoneNumber: "+31600000000",
      email: "bench@example.invalid",
    },
    preferredJobs: ["software engineer", "benchmark operator"],
    driversLicenses: ["B"],
    languages: [{ name: "Dutch", levelSpoken: 3, levelWritten: 3 }, { name: "English", levelSpoken: 2 }],
    educations: [{
      name: "Computer Science",
      description: "Bachelor",
      institute: "University",
      isCompleted: true,
      hasdiploma: true,
      startDate: "2008-09-01T00:00:00Z",
      endDate: "2012-07-01T00:00:00Z",
    }],
    workExperiences: [{
      profession: "Developer",
      employer: "Example B.V.",
      description: "Wrote software and measured it. ".repeat(8),
      startDate: "2012-09-01T00:00:00Z",
      endDate: "2020-01-01T00:00:00Z",
      stillEmployed: false,
    }],
    presentation: "A CV sent by the benchmark.",
  };
}

function sendCvLine(referenceNumber: string): string {
  return JSON.stringify({ type: "send_cv", content: sampleCv(referenceNumber) }) + "\n";
}

/**
 * Starts fake servers and a client, and sets credentials (the first server is the primary). Returns a skip
 * row instead when that cannot be done here (no fake, or the client refuses the credentials).
 */
async function liveSession(
  context: ScenarioContext,
  scenario: string,
  metric: string,
  servers: number,
  latencyMs: number,
  max: number,
  hasMatches = false,
): Promise<{ client: ClientProcess; fakes: FakeServer[]; fake: FakeModule } | Row> {
  const fake = await loadFake(context);
  if (typeof fake === "string") return skipped(scenario, metric, fake, "ms", max);
  const fakes: FakeServer[] = [];
  let client: ClientProcess | null = null;
  let refused: string | null = null;
  try {
    for (let i = 0; i < servers; i++) {
      fakes.push(await fake.startFakeRtcv({ latencyMs, hasMatches: i === 0 && hasMatches }));
    }
    const content = servers === 1
      ? fakes[0].wireCredentials()
      : fakes.map((server, index) => ({ ...server.wireCredentials(), primary: index === 0 }));
    client = (await spawnReady(context)).client;
    const answer = await client.request(JSON.stringify({ type: "set_credentials", content }) + "\n");
    if (answer === '{"type":"ok"}') return { client, fakes, fake };
    refused = answer;
  } catch (error) {
    if (client) await timeExit(client).catch(() => {});
    for (const server of fakes) await server.close();
    throw error;
  }
  await timeExit(client).catch(() => {});
  for (const server of fakes) await server.close();
  return skipped(scenario, metric, `set_credentials answered: ${answerMessage(refused)}`, "ms", max);
}

/** Sends `n` CVs lockstep with distinct reference numbers; returns round trips in ms and the wrong answers. */
async function timeSends(
  client: ClientProcess,
  n: number,
  prefix: string,
  between?: () => Promise<void>,
  expected = '{"type":"ok","content":false}',
): Promise<{ ms: number[]; wrong: string[] }> {
  const ms: number[] = [];
  const wrong: string[] = [];
  for (let i = 0; i < n; i++) {
    const line = sendCvLine(`${prefix}-${i}`);
    await between?.();
    const start = performance.now();
    const answer = await client.request(line);
    ms.push(performance.now() - start);
    if (answer !== expected) wrong.push(answer.slice(0, 160));
  }
  return { ms, wrong };
}

/**
 * The same scanCV request the client makes, sent by the driver itself with `fetch` to every server in
 * parallel: the floor that a client's round trip is compared with. Each call times one fan-out.
 */
async function bareScanner(fake: FakeModule, servers: readonly FakeServer[], prefix: string) {
  const targets = await Promise.all(servers.map(async (server) => {
    const credentials = server.wireCredentials();
    return {
      url: `${server.url}/api/v1/scraper/scanCV`,
      headers: {
        authorization: await fake.rtcvAuthHeader(credentials.api_key_id, credentials.api_key),
        "content-type": "application/json",
      },
    };
  }));
  const times: number[] = [];
  let index = 0;
  const scan = async () => {
    const body = JSON.stringify({ cv: sampleCv(`${prefix}-bare-${index++}`) });
    const start = performance.now();
    await Promise.all(targets.map(async ({ url, headers }) => {
      const response = await fetch(url, { method: "POST", headers, body });
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`the bare fetch to ${url} got ${response.status}`);
    }));
    times.push(performance.now() - start);
  };
  return { times, scan, primary: targets[0] };
}

/**
 * What the store alone costs a send_cv, done by the driver on a Deno.Kv file of its own in the same kind of
 * directory as the client's: a read of a new reference number, then (`commits`: a mirror's copy or a match's
 * cache entry) one atomic commit of a 1 KiB row and a 72 h cache entry. Each call times one step.
 */
async function storeFloor(dir: string, commits: boolean) {
  const kv = await Deno.openKv(`${dir}/floor.kv`);
  const row = new Uint8Array(1024).fill(7);
  const times: number[] = [];
  let index = 0;
  const step = async () => {
    const key = `floor-${index++}`;
    const start = performance.now();
    await kv.get(["ref", key]);
    if (commits) {
      await kv.atomic().set(["copy", key], row).set(["ref", key], 1, { expireIn: 72 * 3_600_000 }).commit();
    }
    times.push(performance.now() - start);
  };
  return { times, step, commits, close: () => kv.close() };
}

function isBare(cv: unknown): boolean {
  return String((cv as { referenceNumber?: unknown }).referenceNumber).includes("-bare-");
}

/** Scenario 6a: send_cv to 3 servers that each answer after 20 ms. */
export const sendCvFanoutScenario: Scenario = {
  id: "send_cv_fanout",
  alias: "6a",
  title: "send_cv to 3 local fake servers answering after 20 ms (sent in parallel?)",
  peer: false,
  timeoutMs: 120_000,
  async run(context) {
    const metric = "send_cv round trip, 3 servers at 20 ms (median)";
    const session = await liveSession(context, "send_cv_fanout", metric, 3, 20, 23);
    if (!("client" in session)) return [session];
    const { client, fakes, fake } = session;
    try {
      const n = count(context, 60, 15);
      const prefix = `fanout-${Date.now()}`;
      // One bare fan-out before each send_cv, so both see the same moment of the machine.
      const bare = await bareScanner(fake, fakes, prefix);
      await timeSends(client, 5, `${prefix}-warm`, bare.scan);
      bare.times.length = 0;
      const { ms, wrong } = await timeSends(client, n, prefix, bare.scan);
      const summary = summarize(ms);
      const floor = summarize(bare.times);
      const received = fakes.map((server) => server.receivedCvs.filter((cv) => !isBare(cv)).length);
      return [
        measured(
          "send_cv_fanout",
          metric,
          summary.median,
          "ms",
          floor.median + 1,
          `target: the floor + 1 ms; p90 ${formatNumber(summary.p90)} ms`,
        ),
        info(
          "send_cv_fanout",
          "floor: the driver's own fetch to the 3 servers in parallel",
          floor.median,
          "ms",
          `p90 ${formatNumber(floor.p90)} ms; the client adds ${
            formatNumber(summary.median - floor.median)
          } ms`,
        ),
        check(
          "send_cv_fanout",
          "answers and deliveries",
          wrong.length === 0,
          `${n + 5} sent, ${wrong.length} wrong${wrong.length ? ` e.g. ${wrong[0]}` : ""}; ` +
            `servers received ${received.join("/")} from the client`,
        ),
      ];
    } finally {
      await timeExit(client).catch(() => {});
      for (const server of fakes) await server.close();
    }
  },
};

/** Scenario 6b: send_cv to 1 server answering at once, against a bare fetch of the same request. */
export const sendCvOverheadScenario: Scenario = overheadVariant("send_cv_overhead", "6b", 1, false);

/**
 * Scenario 6e: as 6b with one mirror, every CV matched (the mirror's copy through the outbox and the cache
 * entry: one commit on the answer path), against a bare fetch to both servers in parallel.
 */
export const sendCvMirrorOverheadScenario: Scenario = overheadVariant(
  "send_cv_mirror_overhead",
  "6e",
  2,
  true,
);

/**
 * Scenario 6f: as 6e, no CV matched: the mirror's copy is committed after the primary's answer (the price of
 * one commit for a match). No target: shown so that the trade-off stays visible.
 */
export const sendCvMirrorUnmatchedScenario: Scenario = overheadVariant(
  "send_cv_mirror_unmatched",
  "6f",
  2,
  false,
);

/** The overhead scenarios: `servers` 1 (no mirror) or 2 (one mirror); the matched mirror case has a target. */
function overheadVariant(id: string, alias: string, servers: number, matches: boolean): Scenario {
  const limit = 0.5;
  const targeted = servers === 1 || matches;
  const expected = `{"type":"ok","content":${matches}}`;
  return {
    id,
    alias,
    title: servers === 1
      ? "send_cv to 1 server answering at once: client overhead over a bare fetch"
      : `send_cv with one mirror, ${
        matches ? "matched (copy and cache entry committed)" : "not matched (copy committed)"
      }: overhead over a bare fetch`,
    peer: false,
    timeoutMs: 120_000,
    async run(context) {
      const metric = "client overhead over a bare fetch (medians)";
      const session = await liveSession(context, id, metric, servers, 0, limit, matches);
      if (!("client" in session)) return [session];
      const { client, fakes, fake } = session;
      try {
        const prefix = `overhead-${Date.now()}`;
        // Before each send_cv, a bare fetch, the same request through a minimal child process, and a bare store
        // step: all of them see the same moment of the machine.
        const bare = await bareScanner(fake, fakes, prefix);
        const store = await storeFloor(await context.tempDir(), servers === 2 || matches);
        const { url, headers: { authorization } } = bare.primary;
        const child = (await spawnReady(context, { command: floorCommand(context, { url, authorization }) }))
          .client;
        const hops: number[] = [];
        const between = async () => {
          await bare.scan();
          const body = JSON.stringify({ cv: sampleCv(`${prefix}-hop-${hops.length}`) }) + "\n";
          const start = performance.now();
          const answer = await child.request(body);
          hops.push(performance.now() - start);
          if (answer !== '{"type":"ok"}') {
            throw new Error(`the fetching floor answered ${answer.slice(0, 160)}`);
          }
          await store.step();
        };
        const n = count(context, 300, 50);
        const { ms, wrong } = await (async () => {
          await timeSends(client, 20, `${prefix}-warm`, between, expected);
          bare.times.length = 0;
          store.times.length = 0;
          hops.length = 0;
          return await timeSends(client, n, prefix, between, expected);
        })().finally(async () => {
          store.close();
          await timeExit(child).catch(() => {});
        });
        const sent = summarize(ms);
        const direct = summarize(bare.times);
        const floor = summarize(store.times).median;
        const hop = summarize(hops).median;
        // send_cv first asks the cache about the number (a store read for a new one): that part alone.
        const lookups: number[] = [];
        for (let i = 0; i < n; i++) {
          const line = JSON.stringify({ type: "has_cached_reference", content: `${prefix}-unknown-${i}` }) +
            "\n";
          const start = performance.now();
          await client.request(line);
          lookups.push(performance.now() - start);
        }
        const overhead = sent.median - direct.median;
        const note = `send_cv ${formatNumber(sent.median)} ms, bare fetch ${
          formatNumber(direct.median)
        } ms (n=${n})`;
        return [
          targeted
            ? measured(id, metric, overhead, "ms", limit, note)
            : info(id, metric, overhead, "ms", note),
          info(
            id,
            `store floor: a bare Deno.Kv read${store.commits ? " and commit" : ""} by the driver (median)`,
            floor,
            "ms",
            `${store.commits ? "the read and the one durable commit" : "the read"} this send_cv cannot skip`,
          ),
          info(
            id,
            "process floor: the primary's request through a minimal child process (median)",
            hop,
            "ms",
            `a line in, one fetch, a line out; send_cv takes ${
              formatNumber(sent.median - hop - floor)
            } ms more than it and the store floor together`,
          ),
          info(id, "send_cv round trip p90", sent.p90, "ms", `bare fetch p90 ${formatNumber(direct.p90)} ms`),
          info(
            id,
            "lockstep has_cached_reference of a new number (median)",
            summarize(lookups).median,
            "ms",
            "one store read: the first step of send_cv",
          ),
          check(
            id,
            "answers",
            wrong.length === 0,
            wrong.length === 0
              ? `${n + 20} answered ${matches} as the server said`
              : `${wrong.length} wrong, e.g. ${wrong[0]}`,
          ),
        ];
      } finally {
        await timeExit(client).catch(() => {});
        for (const server of fakes) await server.close();
      }
    },
  };
}
