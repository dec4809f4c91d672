/**
 * Command-line flags of `rtcv_scraper_client` and its `--help` text.
 *
 * Flags may be written Go style (`-replay FILE`, `-replay=FILE`) or with two dashes (`--replay FILE`,
 * `--replay=FILE`). `--` ends the flags. The client takes no positional arguments.
 *
 * @module
 */

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
}

/**
 * The command line is wrong. The program should print the message (and a pointer to `--help`) to stderr and
 * exit with {@linkcode UsageError.exitCode}.
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

type FlagName = "help" | "version" | "replay" | "replaySkipCommands" | "repeatReplay";

/** Accepted spellings (without dashes) → flag. Go's names first; kebab-case aliases for `--` users. */
const SPELLINGS: ReadonlyMap<string, FlagName> = new Map<string, FlagName>([
  ["h", "help"],
  ["help", "help"],
  ["v", "version"],
  ["version", "version"],
  ["replay", "replay"],
  ["replaySkipCommands", "replaySkipCommands"],
  ["replay-skip-commands", "replaySkipCommands"],
  ["repeatReplay", "repeatReplay"],
  ["repeat-replay", "repeatReplay"],
]);

const BOOLEAN_FLAGS: ReadonlySet<FlagName> = new Set<FlagName>(["help", "version"]);

/** Go's `strconv.ParseBool` spellings, for `-help=false` and the like. */
const BOOLEAN_VALUES: ReadonlyMap<string, boolean> = new Map([
  ["1", true],
  ["t", true],
  ["T", true],
  ["true", true],
  ["TRUE", true],
  ["True", true],
  ["0", false],
  ["f", false],
  ["F", false],
  ["false", false],
  ["FALSE", false],
  ["False", false],
]);

/** Splits `-name`, `--name`, `-name=value`, `--name=value`; `null` when `arg` is not a flag. */
function splitFlag(arg: string): { name: string; value: string | null } | null {
  if (!arg.startsWith("-") || arg === "-" || arg === "--") return null;
  const body = arg.startsWith("--") ? arg.slice(2) : arg.slice(1);
  const eq = body.indexOf("=");
  return eq === -1 ? { name: body, value: null } : { name: body.slice(0, eq), value: body.slice(eq + 1) };
}

/** Whether `arg` is a flag this program knows (so it is not taken as the value of the flag before it). */
function isKnownFlag(arg: string): boolean {
  const split = splitFlag(arg);
  return split !== null && SPELLINGS.has(split.name);
}

function parsePositiveInteger(flag: string, value: string): number {
  const n = /^[0-9]+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`invalid value ${JSON.stringify(value)} for ${flag}: expected a positive integer`);
  }
  return n;
}

/**
 * Parses the program's arguments (`Deno.args`).
 *
 * A flag given twice keeps its last value, as in Go. `--replaySkipCommands` and `--repeatReplay` need
 * `--replay`.
 *
 * @throws {UsageError} on an unknown flag, a flag without its value, a bad value, a positional argument, or
 * a replay option without `--replay`.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const flags = parseFlags(["-replay", "scraper_client_input.log", "-replaySkipCommands", "ping, send_cv"]);
 * // flags.replay === "scraper_client_input.log", flags.replaySkipCommands: ["ping", "send_cv"]
 * ```
 */
export function parseFlags(args: string[]): Flags {
  const flags: Flags = { help: false, version: false, replay: null, replaySkipCommands: [], repeatReplay: 1 };
  const given = new Set<FlagName>();

  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      if (i + 1 < args.length) {
        throw new UsageError(
          `unexpected argument ${JSON.stringify(args[i + 1])}: this program takes no arguments`,
        );
      }
      break;
    }
    const split = splitFlag(arg);
    if (split === null) {
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)}: this program takes no arguments`);
    }
    const name = SPELLINGS.get(split.name);
    const shown = arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg;
    if (name === undefined) throw new UsageError(`unknown flag ${shown}`);
    given.add(name);

    if (BOOLEAN_FLAGS.has(name)) {
      let on = true;
      if (split.value !== null) {
        const parsed = BOOLEAN_VALUES.get(split.value);
        if (parsed === undefined) {
          throw new UsageError(
            `invalid value ${JSON.stringify(split.value)} for ${shown}: expected true or false`,
          );
        }
        on = parsed;
      }
      if (name === "help") flags.help = on;
      else flags.version = on;
      continue;
    }

    let value = split.value;
    if (value === null) {
      const next = args[i + 1];
      if (next === undefined || isKnownFlag(next) || next === "--") {
        throw new UsageError(`flag ${shown} needs a value: ${shown} <value> or ${shown}=<value>`);
      }
      value = next;
      i++;
    }

    switch (name) {
      case "replay":
        if (value === "") throw new UsageError(`flag ${shown} needs a file name`);
        flags.replay = value;
        break;
      case "replaySkipCommands":
        flags.replaySkipCommands = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
        break;
      case "repeatReplay":
        flags.repeatReplay = parsePositiveInteger(shown, value);
        break;
    }
  }

  if (flags.replay === null && !flags.help && !flags.version) {
    for (const name of ["replaySkipCommands", "repeatReplay"] as const) {
      if (given.has(name)) throw new UsageError(`flag -${name} only works together with -replay FILE`);
    }
  }
  return flags;
}

/** Environment variables the client reads, with one line of help each (PROTOCOL.md section 4). */
const ENVIRONMENT: ReadonlyArray<readonly [string, string]> = [
  [
    "LOG_SCRAPER_CLIENT_INPUT",
    "true/1/t: append input lines (keys redacted) to scraper_client_input.log",
  ],
  ["ENABLE_SCRAPER_CLIENT_LOG", "true/1/t: write debug log lines to scraper_client.log"],
  [
    "RTCV_SCRAPER_CLIENT_KV",
    "cache and outbox store: a file path, :memory:, KV Connect or redis:// URL",
  ],
  ["DENO_KV_ACCESS_TOKEN", "access token for a Deno KV Connect URL in RTCV_SCRAPER_CLIENT_KV"],
  ["RTCV_SCRAPER_CLIENT_API_KEY", "api key that -replay puts back where the input log redacted it"],
  ["RTCV_SCRAPER_CLIENT_TIMEOUT_MS", "timeout of each request attempt in milliseconds (default 20000)"],
  [
    "RTCV_SCRAPER_CLIENT_ENV",
    "JSONC configuration text (servers, mock mode, ingest); wins over _ENV_FILE",
  ],
  ["RTCV_SCRAPER_CLIENT_ENV_FILE", "path of a JSONC configuration file"],
  ["RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT", "serve GET / (health) and GET /metrics on this port"],
  ["RTCV_SCRAPER_CLIENT_HEALTH_CHECK_HOST", "address the health check server binds to (default 127.0.0.1)"],
  ["RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES", "longest accepted input line in bytes (default 16777216 = 16 MiB)"],
  [
    "RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS",
    "first wait before retrying a failed mirror delivery (default 1000, doubles)",
  ],
  ["RTCV_SCRAPER_CLIENT_DRAIN_MS", "how long exit waits for mirror and ingest deliveries (default 5000)"],
  ["RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS", "testing aid: shifts the client's clock by this many milliseconds"],
];

/** The flags, with one line of help each. */
const FLAG_HELP: ReadonlyArray<readonly [string, string]> = [
  ["-h, --help", "print this help and exit"],
  ["-v, --version", "print the version and exit"],
  ["--replay FILE", "run the commands of an input log (scraper_client_input.log) again and time them"],
  ["--replaySkipCommands a,b", "with --replay: command types to skip, comma separated"],
  ["--repeatReplay N", "with --replay: replay the log N times (default 1)"],
];

function table(rows: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, text]) => `  ${name.padEnd(width)}  ${text}`).join("\n");
}

/**
 * The `--help` text: what the program is, its flags and its environment variables, one line each.
 *
 * @example
 * ```ts
 * import { helpText } from "./flags.ts";
 * const text = helpText("0.1.0"); // starts with "rtcv_scraper_client 0.1.0"
 * ```
 */
export function helpText(version: string): string {
  return [
    `rtcv_scraper_client ${version}`,
    "",
    "Reads JSON commands from stdin, one per line, answers one JSON line each on stdout, and talks to RT-CV.",
    "",
    "Usage:",
    "  rtcv_scraper_client",
    "  rtcv_scraper_client -replay FILE [-replaySkipCommands a,b] [-repeatReplay N]",
    "",
    "Flags (one or two dashes; -flag value or -flag=value):",
    table(FLAG_HELP),
    "",
    "Environment:",
    table(ENVIRONMENT),
    "",
  ].join("\n");
}
