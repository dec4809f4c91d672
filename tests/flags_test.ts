import assert from "node:assert/strict";
import { type Flags, parseFlags, UsageError } from "../src/cli/flags.ts";
import { helpText } from "../src/cli/help_text.ts";
import { DEFAULT_FLAGS } from "../src/cli/default_flags.ts";

const DEFAULTS: Flags = {
  help: false,
  version: false,
  replay: null,
  replaySkipCommands: [],
  repeatReplay: 1,
  command: [],
};

function usageError(args: string[]): UsageError {
  try {
    parseFlags(args);
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected UsageError, got ${err}`);
    return err;
  }
  assert.fail(`expected a UsageError for ${JSON.stringify(args)}`);
}

Deno.test("no arguments: defaults, the ones main.ts uses without loading the parser", () => {
  assert.deepEqual(parseFlags([]), DEFAULTS);
  assert.deepEqual(DEFAULT_FLAGS, DEFAULTS);
});

Deno.test("help and version in every spelling", () => {
  for (const arg of ["-h", "--h", "-help", "--help", "--help=true", "-help=1"]) {
    assert.deepEqual(parseFlags([arg]), { ...DEFAULTS, help: true }, arg);
  }
  for (const arg of ["-v", "--v", "-version", "--version", "--version=t"]) {
    assert.deepEqual(parseFlags([arg]), { ...DEFAULTS, version: true }, arg);
  }
  assert.deepEqual(parseFlags(["--help=false"]), DEFAULTS);
});

Deno.test("replay flags, Go style with a separate value", () => {
  assert.deepEqual(
    parseFlags(["-replay", "./scraper_client_input.log", "-replaySkipCommands", "has_cached_reference,ping"]),
    {
      ...DEFAULTS,
      replay: "./scraper_client_input.log",
      replaySkipCommands: ["has_cached_reference", "ping"],
    },
  );
});

Deno.test("replay flags in all four forms", () => {
  const forms = [
    ["-replay", "in.log", "-repeatReplay", "3"],
    ["--replay", "in.log", "--repeatReplay", "3"],
    ["-replay=in.log", "-repeatReplay=3"],
    ["--replay=in.log", "--repeatReplay=3"],
    ["--replay=in.log", "--repeat-replay", "3"],
  ];
  for (const args of forms) {
    assert.deepEqual(parseFlags(args), { ...DEFAULTS, replay: "in.log", repeatReplay: 3 }, args.join(" "));
  }
});

Deno.test("a value after = may contain = and start with a dash", () => {
  assert.equal(parseFlags(["--replay=a=b.log"]).replay, "a=b.log");
  assert.equal(parseFlags(["-replay=-odd.log"]).replay, "-odd.log");
  assert.equal(parseFlags(["-replay", "-odd.log"]).replay, "-odd.log");
});

Deno.test("replaySkipCommands is trimmed and empty entries are dropped", () => {
  const flags = parseFlags(["-replay", "f", "--replay-skip-commands", " ping , ,send_cv,, "]);
  assert.deepEqual(flags.replaySkipCommands, ["ping", "send_cv"]);
  assert.deepEqual(parseFlags(["-replay", "f", "-replaySkipCommands="]).replaySkipCommands, []);
});

Deno.test("a flag given twice keeps the last value", () => {
  assert.equal(parseFlags(["-replay", "a", "--replay", "b"]).replay, "b");
});

Deno.test("repeatReplay must be a positive integer; the error names the flag and the value", () => {
  for (const bad of ["0", "-1", "1.5", "abc", "", "1e2", "99999999999999999999"]) {
    const err = usageError(["-replay", "f", `-repeatReplay=${bad}`]);
    assert.equal(err.exitCode, 2);
    assert.equal(
      err.message,
      `invalid value ${JSON.stringify(bad)} for -repeatReplay: expected a positive integer`,
    );
  }
  const err = usageError(["--replay", "f", "--repeatReplay", "x"]);
  assert.equal(err.message, 'invalid value "x" for --repeatReplay: expected a positive integer');
});

Deno.test("unknown flags are named", () => {
  assert.equal(usageError(["-replayy", "f"]).message, "unknown flag -replayy");
  assert.equal(usageError(["--verbose=yes"]).message, "unknown flag --verbose");
  assert.equal(usageError(["-Replay", "f"]).message, "unknown flag -Replay");
});

Deno.test("a missing value is an error naming the flag", () => {
  assert.equal(
    usageError(["-replay"]).message,
    "flag -replay needs a value: -replay <value> or -replay=<value>",
  );
  assert.match(usageError(["--replay", "--repeatReplay", "2"]).message, /^flag --replay needs a value/);
  assert.match(
    usageError(["-replay", "f", "-replaySkipCommands"]).message,
    /^flag -replaySkipCommands needs/,
  );
  assert.match(usageError(["--replay="]).message, /^flag --replay needs a file name/);
});

Deno.test("bad boolean values are errors; a later false wins over an earlier true", () => {
  assert.match(usageError(["--help=maybe"]).message, /^invalid value "maybe" for --help/);
  assert.deepEqual(parseFlags(["-help", "-help=false"]), DEFAULTS);
});

Deno.test("the flags end at -- or at the first argument that is not a flag: the rest is the command", () => {
  assert.deepEqual(parseFlags(["extra"]), { ...DEFAULTS, command: ["extra"] });
  assert.deepEqual(parseFlags(["python3", "scraper.py", "-replay", "x", "--", "y"]), {
    ...DEFAULTS,
    command: ["python3", "scraper.py", "-replay", "x", "--", "y"],
  });
  assert.deepEqual(parseFlags(["--", "-replay", "x"]), { ...DEFAULTS, command: ["-replay", "x"] });
  assert.deepEqual(parseFlags(["-help", "--", "node", "s.js"]), {
    ...DEFAULTS,
    help: true,
    command: ["node", "s.js"],
  });
  assert.deepEqual(parseFlags(["-"]), { ...DEFAULTS, command: ["-"] });
  assert.deepEqual(parseFlags(["-replay", "f", "extra"]), { ...DEFAULTS, replay: "f", command: ["extra"] });
  assert.deepEqual(parseFlags(["--"]), DEFAULTS);
  assert.equal(usageError(["-unknown", "--", "x"]).message, "unknown flag -unknown");
});

Deno.test("replay options without -replay are errors", () => {
  assert.equal(
    usageError(["-repeatReplay", "2"]).message,
    "flag -repeatReplay only works together with -replay FILE",
  );
  assert.match(usageError(["-replaySkipCommands", "ping"]).message, /^flag -replaySkipCommands only works/);
});

Deno.test("UsageError carries exit code 2", () => {
  const err = usageError(["--nope"]);
  assert.ok(err instanceof Error);
  assert.equal(err.name, "UsageError");
  assert.equal(err.exitCode, 2);
});

Deno.test("helpText lists every flag and every environment variable, one line each", () => {
  const text = helpText("1.2.3");
  assert.ok(text.startsWith("rtcv_scraper_client 1.2.3\n"));
  const lines = text.split("\n");
  for (const flag of ["--help", "--version", "--replay", "--replaySkipCommands", "--repeatReplay"]) {
    assert.ok(lines.some((l) => l.includes(flag)), `missing ${flag}`);
  }
  const env = [
    "LOG_SCRAPER_CLIENT_INPUT",
    "ENABLE_SCRAPER_CLIENT_LOG",
    "RTCV_SCRAPER_CLIENT_KV",
    "DENO_KV_ACCESS_TOKEN",
    "RTCV_SCRAPER_CLIENT_API_KEY",
    "RTCV_SCRAPER_CLIENT_TIMEOUT_MS",
    "RTCV_SCRAPER_CLIENT_ENV",
    "RTCV_SCRAPER_CLIENT_ENV_FILE",
    "RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT",
    "RTCV_SCRAPER_CLIENT_HEALTH_CHECK_HOST",
    "RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES",
    "RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS",
    "RTCV_SCRAPER_CLIENT_DRAIN_MS",
    "RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS",
  ];
  for (const name of env) {
    const defining = lines.filter((l) => l.trimStart().startsWith(`${name} `));
    assert.equal(defining.length, 1, `expected exactly one line for ${name}`);
    assert.ok(defining[0].trim().length > name.length + 10, `no description for ${name}`);
  }
  assert.ok(lines.every((l) => l.length <= 120), "help lines should fit a terminal");
});
