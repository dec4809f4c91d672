/**
 * The benchmark driver: `deno task bench` (= `deno run -A bench/bench.ts`).
 *
 * Spawns the client (`deno run -A <repo>/main.ts`, a temp working directory, `RTCV_SCRAPER_CLIENT_KV` in a
 * temp directory) the way a scraper does, measures each scenario, and prints one table: metric, value,
 * target, pass/FAIL. It is a report, not a gate: the exit code is 0 unless the driver itself breaks.
 * Where a target is relative (ready line, ping, idle RSS, the cache lines, send_cv), its floor is measured in
 * the same run, interleaved with the client where it can be: this machine drifts too much to compare runs.
 *
 *     deno task bench [--only ready,ping,4] [--quick] [--json] [--rebuild-1m]
 *     RTCV_BENCH_PEER=/path/to/rtcv_scraper_client deno task bench    # side by side with another binary
 *
 * Adding a scenario: write a {@linkcode Scenario} (see `scenario.ts`; examples in `scenarios/`) and add it
 * to {@linkcode SCENARIOS}.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { ClientProcess } from "./client_process.ts";
import { failed, formatTable, formatTotals, type Row } from "./report.ts";
import type { Scenario, ScenarioContext, SpawnSettings, Target } from "./scenario.ts";
import { pipelinedCacheScenario, pipelinedShortCacheScenario, store1mScenario } from "./scenarios/cache.ts";
import { exitNotes, reason } from "./scenarios/common.ts";
import { floodScenario } from "./scenarios/flood.ts";
import { ingestDedupeScenario, ingestScenario } from "./scenarios/ingest.ts";
import { redisCacheScenario } from "./scenarios/redis_cache.ts";
import {
  sendCvFanoutScenario,
  sendCvMirrorOverheadScenario,
  sendCvMirrorUnmatchedScenario,
  sendCvOverheadScenario,
} from "./scenarios/send_cv.ts";
import { idleRssScenario, pingScenario, readyScenario } from "./scenarios/startup.ts";

/** Every scenario, in the order they run. */
export const SCENARIOS: readonly Scenario[] = [
  readyScenario,
  pingScenario,
  idleRssScenario,
  pipelinedCacheScenario,
  pipelinedShortCacheScenario,
  redisCacheScenario,
  store1mScenario,
  sendCvFanoutScenario,
  sendCvOverheadScenario,
  sendCvMirrorOverheadScenario,
  sendCvMirrorUnmatchedScenario,
  ingestScenario,
  ingestDedupeScenario,
  floodScenario,
];

/** Environment variables of the client that would change what is measured; never passed on. */
const CLIENT_SETTINGS = /^(RTCV_SCRAPER_CLIENT_|LOG_SCRAPER_CLIENT_INPUT$|ENABLE_SCRAPER_CLIENT_LOG$)/;

const encoder = new TextEncoder();

/** Writes text to stdout or stderr (the driver prints no other way). */
function print(text: string, to: "stdout" | "stderr" = "stdout"): void {
  const bytes = encoder.encode(text);
  const stream = to === "stdout" ? Deno.stdout : Deno.stderr;
  let offset = 0;
  while (offset < bytes.length) offset += stream.writeSync(bytes.subarray(offset));
}

/** The 1-minute load average from /proc/loadavg, or `?`. */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  } catch {
    return "?";
  }
}

/** A bad command line: printed with the usage, exit code 2. */
class UsageError extends Error {
  override name = "UsageError";
}

/** Parsed command line. */
interface Options {
  only: Set<string> | null;
  quick: boolean;
  json: boolean;
  flags: Set<string>;
}

const USAGE = `usage: deno task bench [--only <name|number>,...] [--quick] [--json] [--rebuild-1m]

  --only       run only these scenarios, by name or number (e.g. --only ping,4,store_1m)
  --quick      smaller counts: a smoke run
  --json       print the rows as JSON on stdout (the table goes to stderr)
  --rebuild-1m rebuild the cached 1M-reference store even when it could be reused
  RTCV_BENCH_PEER=/path/to/binary  also run the scenarios marked "peer" against that binary
  RTCV_BENCH_1M_KV=/path           where the 1M-reference store is kept (default $TMPDIR/rtcv_bench_1m.kv)
  RTCV_BENCH_DENO_FLAGS="..."      extra \`deno run\` flags for the client (e.g. --cpu-prof --cpu-prof-dir=DIR)

scenarios:
${
  SCENARIOS.map((s) => `  ${s.alias.padEnd(3)} ${s.id.padEnd(17)} ${s.title}${s.peer ? " [peer]" : ""}`).join(
    "\n",
  )
}
`;

function parseArgs(args: readonly string[]): Options {
  const options: Options = { only: null, quick: false, json: false, flags: new Set() };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s, 2);
    switch (flag) {
      case "--only": {
        const value = inline ?? args[++i];
        if (!value) throw new UsageError(`--only needs a list of scenarios\n\n${USAGE}`);
        options.only = new Set(value.split(",").map((name) => name.trim()).filter(Boolean));
        break;
      }
      case "--quick":
        options.quick = true;
        break;
      case "--json":
        options.json = true;
        break;
      case "--rebuild-1m":
        options.flags.add("rebuild-1m");
        break;
      case "--help":
      case "-h":
        print(USAGE);
        Deno.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument ${args[i]}\n\n${USAGE}`);
    }
  }
  return options;
}

function selectScenarios(only: Set<string> | null): Scenario[] {
  if (only === null) return [...SCENARIOS];
  const known = new Set(SCENARIOS.flatMap((s) => [s.id, s.alias]));
  const unknown = [...only].filter((name) => !known.has(name));
  if (unknown.length > 0) throw new UsageError(`unknown scenario ${unknown.join(", ")}\n\n${USAGE}`);
  return SCENARIOS.filter((s) => only.has(s.id) || only.has(s.alias));
}

/** Runs one scenario against one target; any error or the timeout becomes a FAIL row. */
async function runScenario(
  scenario: Scenario,
  target: Target,
  shared: { repo: string; benchDir: string; root: string; options: Options },
): Promise<Row[]> {
  const children = new Set<ClientProcess>();
  let finished = false;
  let dirs = 0;
  const tempDir = async () => {
    const dir = `${shared.root}/${scenario.id}-${target.kind}-${++dirs}`;
    await Deno.mkdir(dir, { recursive: true });
    return dir;
  };
  const baseEnv = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) => !CLIENT_SETTINGS.test(name)),
  );
  const context: ScenarioContext = {
    target,
    quick: shared.options.quick,
    repo: shared.repo,
    benchDir: shared.benchDir,
    flags: shared.options.flags,
    tempDir,
    progress: (message) => print(`    ${message}\n`, "stderr"),
    async spawn(settings: SpawnSettings = {}) {
      const cwd = settings.cwd ?? await tempDir();
      if (finished) throw new Error(`scenario ${scenario.id} has ended; no more processes`);
      const env = {
        ...baseEnv,
        RTCV_SCRAPER_CLIENT_KV: settings.kvPath ?? `${cwd}/cache.kv`,
        ...settings.env,
      };
      // The Go client exits 1 at end of input: a clean end for it, reported with a note.
      const cleanExits = target.kind === "peer" && settings.command === undefined
        ? new Map([[0, ""], [1, "the peer exits 1 at end of input (the Go client does)"]])
        : undefined;
      const client = ClientProcess.spawn({
        command: settings.command ?? target.command,
        cwd,
        env,
        cleanExits,
      });
      children.add(client);
      return client;
    },
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) =>
    timer = setTimeout(() => resolve("timeout"), scenario.timeoutMs)
  );
  const started = performance.now();
  try {
    const result = await Promise.race([scenario.run(context), timeout]);
    if (result === "timeout") {
      return [failed(scenario.id, "scenario", `timed out after ${scenario.timeoutMs / 1000} s`)];
    }
    return result;
  } catch (error) {
    return [failed(scenario.id, "scenario", `the scenario broke: ${reason(error)}`)];
  } finally {
    clearTimeout(timer);
    finished = true;
    for (const child of children) child.kill("SIGKILL");
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    print(`    (${scenario.id} on ${target.label}: ${seconds} s)\n`, "stderr");
  }
}

/** Puts the peer's figures beside the client's rows with the same scenario and metric. */
function mergePeer(rows: Row[], peerRows: readonly Row[]): void {
  for (const peerRow of peerRows) {
    const measurement = {
      value: peerRow.value,
      unit: peerRow.unit,
      status: peerRow.status,
      note: peerRow.note,
    };
    const row = rows.find((r) => r.scenario === peerRow.scenario && r.metric === peerRow.metric);
    if (row) row.peer = measurement;
    else {
      rows.push({
        scenario: peerRow.scenario,
        metric: peerRow.metric,
        value: null,
        unit: peerRow.unit,
        max: peerRow.max,
        status: "info",
        note: "only measured on the peer",
        peer: measurement,
      });
    }
  }
}

async function main(): Promise<void> {
  const options = parseArgs(Deno.args);
  const scenarios = selectScenarios(options.only);
  const benchDir = fileURLToPath(new URL(".", import.meta.url)).replace(/\/$/, "");
  const repo = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
  // RTCV_BENCH_DENO_FLAGS adds `deno run` flags for the client, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const denoFlags = (Deno.env.get("RTCV_BENCH_DENO_FLAGS") ?? "").split(/\s+/).filter(Boolean);
  const client: Target = {
    kind: "client",
    label: "deno main.ts",
    command: [Deno.execPath(), "run", "-A", ...denoFlags, `${repo}/main.ts`],
  };
  const peerPath = Deno.env.get("RTCV_BENCH_PEER");
  const peer: Target | null = peerPath
    ? { kind: "peer", label: peerPath.split("/").pop() || peerPath, command: [peerPath] }
    : null;
  const root = await Deno.makeTempDir({ prefix: "rtcv_bench_" });
  const shared = { repo, benchDir, root, options };
  const machine = `${navigator.hardwareConcurrency} cpus, deno ${Deno.version.deno}, ${Deno.build.target}`;
  const loadBefore = loadAverage();
  print(
    `rtcv_scraper_client bench${options.quick ? " (--quick)" : ""}: ${machine}, load average ${loadBefore}; ${
      scenarios.map((s) => s.id).join(", ")
    }\n`,
    "stderr",
  );
  const rows: Row[] = [];
  try {
    for (const scenario of scenarios) {
      print(`[${scenario.alias}] ${scenario.id}: ${scenario.title}\n`, "stderr");
      const scenarioRows = await runScenario(scenario, client, shared);
      if (peer && scenario.peer) mergePeer(scenarioRows, await runScenario(scenario, peer, shared));
      rows.push(...scenarioRows);
    }
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
  // Other work on the machine moves every figure: say how busy it was.
  const load = `load average ${loadBefore} before, ${loadAverage()} after`;
  const table = formatTable(rows, peer?.label) + formatTotals(rows) +
    `${options.quick ? " (--quick counts)" : ""}; ${machine}, ${load}\n` +
    [...exitNotes].map((note) => `note: ${note}\n`).join("");
  if (options.json) {
    print(table, "stderr");
    print(
      JSON.stringify(
        {
          machine,
          load,
          quick: options.quick,
          peer: peer?.command[0] ?? null,
          date: new Date().toISOString(),
          rows,
        },
        null,
        2,
      ) + "\n",
    );
  } else {
    print("\n" + table);
  }
}

if (import.meta.main) {
  try {
    await main();
    // Exit even if a timed-out scenario left a fake server or timer behind.
    Deno.exit(0);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    print(`${error.message}\n`, "stderr");
    Deno.exit(2);
  }
}
