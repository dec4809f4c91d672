/**
 * Small helpers shared by the scenarios.
 *
 * @module
 */

import type { ClientProcess, LineConsumer } from "../client_process.ts";
import type { ScenarioContext, SpawnSettings } from "../scenario.ts";

/** The first line every client writes. */
export const READY_LINE = '{"type":"ready","content":"waiting for credentials"}';

/** A client that has written its ready line. */
export interface ReadyClient {
  readonly client: ClientProcess;
  /** Milliseconds from spawn to the ready line. */
  readonly readyMs: number;
}

/** Spawns and waits for the ready line; throws when the first line is something else. */
export async function spawnReady(context: ScenarioContext, settings?: SpawnSettings): Promise<ReadyClient> {
  const client = await context.spawn(settings);
  const line = await client.readLine();
  const readyMs = performance.now() - client.spawnedAt;
  if (line !== READY_LINE) {
    client.kill();
    throw new Error(`expected the ready line first, got ${JSON.stringify(line.slice(0, 200))}`);
  }
  return { client, readyMs };
}

/** Notes about accepted non-zero exits (the Go peer's exit 1), printed under the table. */
export const exitNotes: Set<string> = new Set();

/** Milliseconds from closing stdin to the exit (a clean shutdown); throws on a non-zero exit code. */
export async function timeExit(client: ClientProcess): Promise<number> {
  const start = performance.now();
  const status = await client.stop();
  const ms = performance.now() - start;
  if (!client.cleanExits.has(status.code)) {
    throw new Error(`the client exited with code ${status.code} after end of input: ${client.stderrTail}`);
  }
  if (status.code !== 0) exitNotes.add(client.cleanExits.get(status.code)!);
  return ms;
}

/**
 * The argv of the floor program (`floor_echo.ts` under `deno run`); with `fetch`, in its fetch mode, POSTing
 * each line to `fetch.url` (network access to 127.0.0.1 only).
 */
export function floorCommand(
  context: ScenarioContext,
  fetch?: { url: string; authorization: string },
): string[] {
  const program = `${context.benchDir}/floor_echo.ts`;
  if (fetch === undefined) return [Deno.execPath(), "run", program];
  return [Deno.execPath(), "run", "--allow-net=127.0.0.1", program, "fetch", fetch.url, fetch.authorization];
}

/**
 * Wraps a consumer of answers to note when the `marks[i]`-th answer line has been read (ms, from
 * `performance.now()`), e.g. when the last answer of one phase of a pipelined run arrived.
 */
export class LineMarks implements LineConsumer {
  /** `times[i]` is when line `marks[i]` (1-based count) was read, or NaN before. */
  readonly times: number[];
  readonly #inner: LineConsumer & { readonly lines: number };
  readonly #marks: readonly number[];
  #nextMark = 0;

  /** Notes the arrival of the answer lines counted in `marks` (ascending). */
  constructor(inner: LineConsumer & { readonly lines: number }, marks: readonly number[]) {
    this.#inner = inner;
    this.#marks = marks;
    this.times = marks.map(() => NaN);
  }

  feed(chunk: Uint8Array, start: number): number {
    const end = this.#inner.feed(chunk, start);
    const lines = this.#inner.lines;
    while (this.#nextMark < this.#marks.length && lines >= this.#marks[this.#nextMark]) {
      this.times[this.#nextMark++] = performance.now();
    }
    return end;
  }
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `n` when not quick, else `quickN`. */
export function count(context: ScenarioContext, n: number, quickN: number): number {
  return context.quick ? quickN : n;
}

/** CPU ms used by the driver process itself so far (all its threads), from /proc/self/stat. */
export function driverCpuMs(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * What each thread group of the client spent between two {@linkcode ClientProcess.cpuByThread} readings:
 * the total in ms and a note like `deno 420, sw-0 190, tokio-runtime-w 40 (ms)`.
 */
export function cpuDelta(
  before: Map<string, number>,
  after: Map<string, number>,
): { total: number; note: string } {
  const parts: [string, number][] = [];
  let total = 0;
  for (const [name, ms] of after) {
    const spent = ms - (before.get(name) ?? 0);
    total += spent;
    if (spent > 0) parts.push([name, spent]);
  }
  parts.sort((a, b) => b[1] - a[1]);
  const note = parts.length === 0
    ? "no measurable CPU"
    : parts.map(([name, ms]) => `${name} ${ms}`).join(", ") + " (ms)";
  return { total, note };
}

/** The message of an error answer line (its `content`), or the line itself, shortened for a note. */
export function answerMessage(answer: string): string {
  try {
    const parsed = JSON.parse(answer) as { content?: unknown };
    if (typeof parsed.content === "string") return parsed.content.slice(0, 160);
  } catch {
    // Not JSON: show it as it is.
  }
  return answer.slice(0, 160);
}

/** A short description of an error for a report note. */
export function reason(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").slice(0, 300);
}
