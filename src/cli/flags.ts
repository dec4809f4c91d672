/**
 * Command-line flags of `rtcv_scraper_client`, parsed by `node:util`'s `parseArgs`.
 *
 * A small normalizer in front keeps the Go client's spellings: one-dash long flags (`-replay FILE`,
 * `-replaySkipCommands a,b`, `-repeatReplay=2`), kebab-case aliases (`--replay-skip-commands`) and Go's
 * boolean values (`-help=false`). The flags end at `--` or at the first argument that is not a flag: what
 * follows is the command of wrapper mode (`rtcv_scraper_client [flags] [--] <command> [args...]`).
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The parsed command line. */
export interface Flags {
  /** `-h` / `--help`: print the usage text and exit 0. */
  help: boolean;
  /** `-v` / `--version`: print the version and exit 0. */
  version: boolean;
  /** `--replay FILE`: replay the commands of an input log instead of serving stdin; `null` when not given. */
  replay: string | null;
  /** `--replaySkipCommands a,b`: command types that replay skips (trimmed, empty entries dropped). */
  replaySkipCommands: string[];
  /** `--repeatReplay N`: how many times to replay the log, a positive integer (default 1). */
  repeatReplay: number;
  /** The arguments after the flags (after `--` or from the first non-flag on); empty when none. */
  command: string[];
}

/**
 * The command line is wrong. The program should print the message (and a pointer to `--help`) to stderr and
 * exit with {@linkcode UsageError.exitCode}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFlags, UsageError } from "./flags.ts";
 * assert.throws(() => parseFlags(["-replayy", "f"]), UsageError);
 * ```
 */
export class UsageError extends Error {
  /** Process exit code for usage errors: 2, as Go's `flag` package uses. */
  readonly exitCode = 2;

  /** `message` says which flag or argument is wrong and what is expected. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const OPTIONS = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
  replay: { type: "string" },
  replaySkipCommands: { type: "string" },
  repeatReplay: { type: "string" },
} as const;

/** Spellings (without dashes) that are not `parseArgs` names already → the option name. */
const ALIASES: Readonly<Record<string, keyof typeof OPTIONS>> = {
  h: "help",
  v: "version",
  "replay-skip-commands": "replaySkipCommands",
  "repeat-replay": "repeatReplay",
};

function optionName(name: string): keyof typeof OPTIONS | undefined {
  return Object.hasOwn(OPTIONS, name) ? name as keyof typeof OPTIONS : ALIASES[name];
}

/**
 * Rewrites Go-style flags into `--name=value` / `--name` for `parseArgs` and splits off the command.
 * Unknown flags and missing values are reported here, in the words the flag was written with.
 */
function normalize(args: readonly string[]): { flags: string[]; command: string[] } {
  const flags: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") return { flags, command: args.slice(i + 1) };
    if (!arg.startsWith("-") || arg === "-") return { flags, command: args.slice(i) };
    const body = arg.slice(arg.startsWith("--") ? 2 : 1);
    const eq = body.indexOf("=");
    const shown = eq === -1 ? arg : arg.slice(0, arg.length - body.length + eq);
    const name = optionName(eq === -1 ? body : body.slice(0, eq));
    if (name === undefined) throw new UsageError(`unknown flag ${shown}`);
    let value = eq === -1 ? null : body.slice(eq + 1);
    if (OPTIONS[name].type === "boolean") {
      if (value === null || /^(1|t|true)$/i.test(value)) flags.push(`--${name}`);
      else if (/^(0|f|false)$/i.test(value)) flags.push(`--no-${name}`);
      else {throw new UsageError(
          `invalid value ${JSON.stringify(value)} for ${shown}: expected true or false`,
        );}
      continue;
    }
    if (value === null) {
      const next = args[i + 1];
      if (next === undefined || next === "--" || (next.startsWith("-") && isFlag(next))) {
        throw new UsageError(`flag ${shown} needs a value: ${shown} <value> or ${shown}=<value>`);
      }
      value = next;
      i++;
    }
    if (name === "replay" && value === "") throw new UsageError(`flag ${shown} needs a file name`);
    if (name === "repeatReplay") positiveInteger(shown, value);
    flags.push(`--${name}=${value}`);
  }
  return { flags, command: [] };
}

function isFlag(arg: string): boolean {
  const body = arg.slice(arg.startsWith("--") ? 2 : 1);
  return optionName(body.split("=")[0]) !== undefined;
}

function positiveInteger(flag: string, value: string): number {
  const n = /^[0-9]+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`invalid value ${JSON.stringify(value)} for ${flag}: expected a positive integer`);
  }
  return n;
}

/**
 * Parses the program's arguments (`Deno.args`). A flag given twice keeps its last value, as in Go.
 * `--replaySkipCommands` and `--repeatReplay` need `--replay`.
 *
 * @throws {UsageError} on an unknown flag, a flag without its value, a bad value, or a replay option without
 * `--replay`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFlags } from "./flags.ts";
 * const flags = parseFlags(["-replay", "scraper_client_input.log", "-replaySkipCommands", "ping, send_cv"]);
 * assert.equal(flags.replay, "scraper_client_input.log");
 * assert.deepEqual(flags.replaySkipCommands, ["ping", "send_cv"]);
 * assert.deepEqual(parseFlags(["--", "python3", "scraper.py"]).command, ["python3", "scraper.py"]);
 * ```
 */
export function parseFlags(args: readonly string[]): Flags {
  const { flags, command } = normalize(args);
  const { values } = parseArgs({
    args: flags,
    options: OPTIONS,
    strict: true,
    allowPositionals: false,
    allowNegative: true,
  });
  if (values.replay === undefined && !values.help && !values.version) {
    for (const name of ["replaySkipCommands", "repeatReplay"] as const) {
      if (values[name] !== undefined) {
        throw new UsageError(`flag -${name} only works together with -replay FILE`);
      }
    }
  }
  return {
    help: values.help ?? false,
    version: values.version ?? false,
    replay: values.replay ?? null,
    replaySkipCommands: (values.replaySkipCommands ?? "").split(",").map((s) => s.trim()).filter((s) =>
      s !== ""
    ),
    repeatReplay: values.repeatReplay === undefined
      ? 1
      : positiveInteger("-repeatReplay", values.repeatReplay),
    command,
  };
}
