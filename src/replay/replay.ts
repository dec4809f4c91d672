/**
 * `rtcv_scraper_client -replay FILE`: runs the commands of an input log (`LOG_SCRAPER_CLIENT_INPUT`) again,
 * one after another, through the same command handlers as the line server, and prints one line per command
 * with its duration and answer, then a summary.
 *
 * @module
 */

import type { ClientCore } from "../client_core.ts";
import { DEFAULT_MAX_LINE_BYTES } from "../config/config.ts";
import { parseCommandLine, readCommandLine } from "../protocol/command_line.ts";
import { REDACTED } from "../debug/redact.ts";
import type { Dispatch } from "../debug/command_log.ts";
import { type InputLine, LineSplitter } from "../protocol/line_splitter.ts";
import { formatReplayLine } from "./format_replay_line.ts";
import { emptyCounts, formatReplaySummary, formatRoundSummary, type ReplayCounts } from "./replay_summary.ts";
import { restoreRedactedKey } from "./restore_redacted_key.ts";

/** The environment variable whose value replay puts where the input log redacted an `api_key`. */
export const API_KEY_ENV_VAR = "RTCV_SCRAPER_CLIENT_API_KEY";

/** Exit code when the replay file cannot be opened or read (the same as a usage error). */
export const REPLAY_FILE_EXIT_CODE = 2;

/** Keys shorter than this are not scrubbed from the output: replacing every "ab" would mangle it. */
const MIN_SCRUBBED_KEY_LENGTH = 4;

const READ_BUFFER_BYTES = 64 * 1024;

/** What {@linkcode runReplay} runs with; `main.ts` fills it from the flags and the process. */
export interface ReplayOptions {
  /** The input log to replay (`-replay FILE`). */
  readonly file: string;
  /** Command types not to run (`-replaySkipCommands a,b`); they are counted as skipped. */
  readonly skipCommands: readonly string[];
  /** How many times to run the whole file (`-repeatReplay N`), at least 1. */
  readonly repeat: number;
  /** Where {@linkcode API_KEY_ENV_VAR} is read from (`Deno.env` in the program). */
  readonly env: { get(name: string): string | undefined };
  /**
   * The client to run the commands with. Replay owns it from here on: it is closed (by `close`) before
   * {@linkcode runReplay} resolves.
   */
  readonly core: ClientCore;
  /** Answers one line; default `core.registry.dispatch` (the program passes the debug-logging one). */
  readonly dispatch?: Dispatch;
  /**
   * Closes what replay ran on; default `core.close()`. The program passes the whole runtime's close, so
   * the ingest sink finishes before the store it writes to is closed.
   */
  readonly close?: () => Promise<void>;
  /** Prints one line of the report (stdout in the program). */
  readonly out: (line: string) => void;
  /** Prints one line for a person: warnings and errors (stderr in the program). */
  readonly err: (line: string) => void;
  /** When it aborts (SIGINT), replay stops before the next command and prints the summary. */
  readonly stop?: AbortSignal;
  /** Longest line run, in bytes; longer lines are answered with the client's error. Default 16 MiB. */
  readonly maxLineBytes?: number;
}

/** The replay file could not be opened or read. */
class ReplayFileError extends Error {
  constructor(file: string, cause: unknown) {
    super(`cannot read the replay file ${JSON.stringify(file)}: ${describeFileError(cause)}`, { cause });
    this.name = "ReplayFileError";
  }
}

function describeFileError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  return error instanceof Error ? error.message : String(error);
}

/** The lines of `file`, split and decoded like stdin is (so odd lines are answered as they were). */
async function* readLines(file: string, maxLineBytes: number): AsyncGenerator<InputLine> {
  let handle: Deno.FsFile;
  try {
    handle = await Deno.open(file, { read: true });
  } catch (error) {
    throw new ReplayFileError(file, error);
  }
  try {
    const splitter = new LineSplitter(maxLineBytes);
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    while (true) {
      let count: number | null;
      try {
        count = await handle.read(buffer);
      } catch (error) {
        throw new ReplayFileError(file, error);
      }
      if (count === null) break;
      yield* splitter.push(buffer.subarray(0, count));
    }
    yield* splitter.end();
  } finally {
    handle.close();
  }
}

/**
 * Replays an input log: runs its lines through `core` one after another (each answer is awaited, so each
 * duration is that command's alone), `repeat` times, and prints through `out` one line per command,
 * `<duration>ms IN: <type> OUT: <answer type>[: <content JSON>]`, then a summary line. With several rounds,
 * each round starts with `round <i> of <n>` and ends with its own summary.
 *
 * - Lines whose type is in `skipCommands` are not run; they are counted as skipped.
 * - Lines that are not commands (not JSON, no `type`, blank) are run too (the client answers their error)
 *   and show as `IN: (invalid)`.
 * - An `api_key` that the log redacted in `set_credentials` / `set_multiple_credentials` is filled from
 *   {@linkcode API_KEY_ENV_VAR}. Without it, replay says so once through `err` and goes on; those commands
 *   then answer their error. The key never appears in what is printed.
 *
 * Resolves with the exit code: 0 when the file was replayed (also when commands answered errors),
 * {@linkcode REPLAY_FILE_EXIT_CODE} when the file cannot be opened or read (the message names the file),
 * 1 when the client could not be closed cleanly. Never throws for those; `core` is closed in every case.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientCore } from "../client_core.ts";
 * import { systemClock } from "../clock.ts";
 * import { runReplay } from "./replay.ts";
 *
 * const file = await Deno.makeTempFile();
 * await Deno.writeTextFile(file, '{"type":"set_mock"}\n{"type":"ping"}\n');
 * const lines: string[] = [];
 * const code = await runReplay({
 *   file,
 *   skipCommands: [],
 *   repeat: 1,
 *   env: Deno.env,
 *   core: new ClientCore({ kvLocation: ":memory:", clock: systemClock(), warn: () => {} }),
 *   out: (line) => lines.push(line),
 *   err: () => {},
 * });
 * assert.equal(code, 0);
 * assert.match(lines[1], /^\d+ms IN: ping OUT: pong$/); // lines[2] is the summary
 * await Deno.remove(file);
 * ```
 */
export async function runReplay(options: ReplayOptions): Promise<number> {
  const rawKey = options.env.get(API_KEY_ENV_VAR);
  const key = rawKey === undefined || rawKey === "" ? undefined : rawKey;
  const scrub = key !== undefined && key.length >= MIN_SCRUBBED_KEY_LENGTH
    ? (text: string) => text.replaceAll(key, REDACTED)
    : (text: string) => text;
  const out = (line: string) => options.out(scrub(line));
  const err = (line: string) => options.err(scrub(line));

  const { core } = options;
  const rounds = Math.max(1, Math.floor(options.repeat));
  const skip = new Set(options.skipCommands);
  const known = new Set(core.registry.types);
  for (const type of skip) {
    if (!known.has(type)) {
      err(
        `replay: note: -replaySkipCommands names ${
          JSON.stringify(type)
        }, which is not a command type this client knows (it only skips lines with exactly that type)`,
      );
    }
  }

  let code = 0;
  let missingKeyReported = false;
  const total = emptyCounts();
  let stopped = false;
  const started = performance.now();
  try {
    for (let round = 1; round <= rounds && !stopped; round++) {
      if (rounds > 1) out(`round ${round} of ${rounds}`);
      const counts: ReplayCounts = emptyCounts();
      const roundStarted = performance.now();
      for await (const line of readLines(options.file, options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES)) {
        if (options.stop?.aborted) {
          stopped = true;
          break;
        }
        let input = line;
        let type: string | null = null;
        if (line.kind === "text") {
          const parsed = parseCommandLine(line.text);
          if (typeof parsed !== "string") type = parsed.type;
          if (type !== null && skip.has(type)) {
            counts.skipped++;
            continue;
          }
          const restored = restoreRedactedKey(line.text, key);
          if (restored.redactedKeys > 0 && key === undefined && !missingKeyReported) {
            missingKeyReported = true;
            err(
              `replay: the credentials in ${
                JSON.stringify(options.file)
              } were redacted when the log was written (api_key "${REDACTED}"); set ${API_KEY_ENV_VAR} to the api key to replay them. Going on: those commands will answer an error.`,
            );
          }
          if (restored.text !== line.text) input = { kind: "text", text: restored.text };
        }
        const commandStarted = performance.now();
        const parsedInput = readCommandLine(input);
        const answer =
          await (options.dispatch ? options.dispatch(parsedInput) : core.registry.dispatch(parsedInput));
        const durationMs = performance.now() - commandStarted;
        counts.run++;
        if (answer.type === "error") counts.errors++;
        out(formatReplayLine({ durationMs, type, answer }));
      }
      counts.durationMs = performance.now() - roundStarted;
      total.run += counts.run;
      total.skipped += counts.skipped;
      total.errors += counts.errors;
      if (rounds > 1 && !stopped) out(formatRoundSummary(counts, round, rounds));
    }
    total.durationMs = performance.now() - started;
    out(formatReplaySummary(total, { rounds, stopped }));
  } catch (error) {
    if (!(error instanceof ReplayFileError)) throw error;
    err(`rtcv_scraper_client: ${error.message}`);
    code = REPLAY_FILE_EXIT_CODE;
  } finally {
    try {
      await (options.close ? options.close() : core.close());
    } catch (error) {
      err(
        `rtcv_scraper_client: replay: closing the client failed: ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
      code ||= 1;
    }
  }
  return code;
}
