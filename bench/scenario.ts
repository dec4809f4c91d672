/**
 * What a benchmark scenario is and what it gets to work with. Adding a scenario is one
 * {@linkcode Scenario} object in a file under `scenarios/` and one entry in the list in `bench.ts`.
 *
 * @module
 */

import type { ClientProcess } from "./client_process.ts";
import type { Row } from "./report.ts";

/** The program under test: this repository's client, or the peer binary of `RTCV_BENCH_PEER`. */
export interface Target {
  /** `client` for this repository's `main.ts`, `peer` for `RTCV_BENCH_PEER`. */
  readonly kind: "client" | "peer";
  /** Shown in the table, e.g. `deno main.ts` or the peer binary's file name. */
  readonly label: string;
  /** The argv that starts it. */
  readonly command: readonly string[];
}

/** How {@linkcode ScenarioContext.spawn} starts a client. */
export interface SpawnSettings {
  /** The store file; default a fresh `cache.kv` in a fresh temp directory. */
  readonly kvPath?: string;
  /** Working directory; default a fresh temp directory. */
  readonly cwd?: string;
  /** Extra environment variables. */
  readonly env?: Record<string, string>;
  /** Another argv than the target's (e.g. the floor echo program). */
  readonly command?: readonly string[];
}

/** What a scenario runs with. */
export interface ScenarioContext {
  /** The program being measured in this run of the scenario. */
  readonly target: Target;
  /** `--quick`: smaller counts for a smoke run. */
  readonly quick: boolean;
  /** Absolute path of the repository (where `main.ts` is). */
  readonly repo: string;
  /** Absolute path of `bench/`. */
  readonly benchDir: string;
  /** Flags the scenario may look at, e.g. `rebuild-1m`. */
  readonly flags: ReadonlySet<string>;
  /** A fresh temporary directory, removed when the benchmark ends. */
  tempDir(): Promise<string>;
  /**
   * Spawns the target (stdio piped, a clean environment with `RTCV_SCRAPER_CLIENT_KV` set). The process is
   * killed if the scenario ends or times out while it still runs.
   */
  spawn(settings?: SpawnSettings): Promise<ClientProcess>;
  /** A progress line on stderr. */
  progress(message: string): void;
}

/** One benchmark scenario. */
export interface Scenario {
  /** Used by `--only` and in the table, e.g. `ping`. */
  readonly id: string;
  /** The number in the task description, also accepted by `--only` (e.g. `2`, `6a`). */
  readonly alias: string;
  /** One line saying what it measures. */
  readonly title: string;
  /** Whether it also runs against `RTCV_BENCH_PEER`. */
  readonly peer: boolean;
  /** The scenario is abandoned (and its processes killed) after this long. */
  readonly timeoutMs: number;
  /** Measures; throws only when the driver itself fails (a wrong answer is a `fail` row). */
  run(context: ScenarioContext): Promise<Row[]>;
}
