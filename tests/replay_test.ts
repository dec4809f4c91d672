/**
 * Replay (`rtcv_scraper_client -replay FILE`): the recorded sessions in `fixtures/replay/`, the helpers, and
 * the flags through `main.ts`.
 *
 * Fixtures: `fixtures/replay/<name>.log` is an input log as `LOG_SCRAPER_CLIENT_INPUT` writes it;
 * `<name>.out` is the expected replay output with durations normalised to `Nms` and fake server URLs to
 * `{{RTCV_URL}}` / `{{RTCV_URL_2}}`; the optional `<name>.options.json` holds `skipCommands`, `repeat`, and
 * `fake` (the fake RT-CV's setup: then the log is replayed through `main.ts` against two fakes, with
 * `RTCV_SCRAPER_CLIENT_API_KEY` set to the fake's key). After an intended behaviour change, rewrite the
 * `.out` files with `UPDATE_FIXTURES=1 deno test -A tests/replay_test.ts` and review the diff.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ClientCore, type LiveConnector } from "../src/client_core.ts";
import { systemClock } from "../src/clock.ts";
import { CommitBatcher } from "../src/cache/commit_batcher.ts";
import { KvOutboxStore } from "../src/outbox/kv_outbox_store.ts";
import { ConnectError } from "../src/rtcv/connect_error.ts";
import { MockBackend } from "../src/session/mock_backend.ts";
import { parseCommandLine } from "../src/protocol/command_line.ts";
import { REDACTED } from "../src/debug/redact.ts";
import { formatReplayLine } from "../src/replay/format_replay_line.ts";
import { API_KEY_ENV_VAR, REPLAY_FILE_EXIT_CODE, runReplay } from "../src/replay/replay.ts";
import { formatReplaySummary, formatRoundSummary } from "../src/replay/replay_summary.ts";
import { restoreRedactedKey } from "../src/replay/restore_redacted_key.ts";
import { DEFAULT_FAKE_KEY, type FakeRtcv, startFakeRtcv } from "./fake_rtcv.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MAIN = join(ROOT, "main.ts");
const FIXTURES = join(ROOT, "fixtures", "replay");
const UPDATE = Deno.env.get("UPDATE_FIXTURES") === "1";

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** Makes replay output comparable: `12ms` → `Nms`, fake server URLs → their placeholders. */
function normalize(text: string, urls: Record<string, string> = {}): string {
  let result = text;
  // Longest first, so that a URL that is a prefix of another (port 4000 vs 40001) cannot break it.
  for (const [placeholder, url] of Object.entries(urls).sort((a, b) => b[1].length - a[1].length)) {
    result = result.replaceAll(url, placeholder);
  }
  return result.replace(/\b\d+(?:\.\d+)?ms\b/g, "Nms");
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_replay_test_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface ReplayRun {
  code: number;
  out: string[];
  err: string[];
}

/** Runs {@link runReplay} in this process with a fresh core, as `main.ts` will. */
async function replayInProcess(
  file: string,
  options: {
    skipCommands?: string[];
    repeat?: number;
    env?: Record<string, string>;
    connectLive?: LiveConnector;
    stop?: AbortSignal;
  } = {},
): Promise<ReplayRun> {
  const kvDir = await Deno.makeTempDir({ prefix: "rtcv_replay_kv_" });
  const out: string[] = [];
  const err: string[] = [];
  try {
    const core = new ClientCore({
      kvLocation: join(kvDir, "kv.sqlite3"),
      clock: systemClock(),
      warn: (message) => err.push(`warn: ${message}`),
      connectLive: options.connectLive,
    });
    const env = options.env ?? {};
    const code = await runReplay({
      file,
      skipCommands: options.skipCommands ?? [],
      repeat: options.repeat ?? 1,
      env: { get: (name) => env[name] },
      core,
      out: (line) => out.push(line),
      err: (line) => err.push(line),
      stop: options.stop,
    });
    return { code, out, err };
  } finally {
    await Deno.remove(kvDir, { recursive: true });
  }
}

async function writeLog(dir: string, lines: string[], name = "scraper_client_input.log"): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, lines.map((line) => line + "\n").join(""));
  return path;
}

interface ProcessRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `deno run -A main.ts ...args` in `cwd` with no stdin. The variables that change what the client does
 * are emptied (the client treats an empty variable as unset) unless `env` sets them.
 */
async function runMain(args: string[], cwd: string, env: Record<string, string> = {}): Promise<ProcessRun> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    env: {
      [API_KEY_ENV_VAR]: "",
      LOG_SCRAPER_CLIENT_INPUT: "",
      ENABLE_SCRAPER_CLIENT_LOG: "",
      RTCV_SCRAPER_CLIENT_ENV: "",
      RTCV_SCRAPER_CLIENT_ENV_FILE: "",
      RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT: "",
      RTCV_SCRAPER_CLIENT_KV: ":memory:",
      NO_COLOR: "1",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/** Items waiting in the Kv store at `path` for the server at `url` (its outbox channels). */
async function pendingFor(path: string, url: string): Promise<number> {
  const kv = await Deno.openKv(path);
  try {
    let pending = 0;
    for (const [channel, counts] of await new KvOutboxStore(kv, new CommitBatcher(kv)).status()) {
      if (channel.startsWith(url)) pending += counts.pending;
    }
    return pending;
  } finally {
    kv.close();
  }
}

/** Fails with a hint when `main.ts` served the line protocol instead of replaying. */
function assertReplayWired(run: ProcessRun): void {
  assert.ok(
    !run.stdout.startsWith('{"type":"ready"'),
    "main.ts served stdin instead of replaying: -replay is not wired in main.ts yet " +
      `(see src/replay/replay.ts)\nstderr: ${run.stderr}`,
  );
}

/** Compares with a fixture's expected output, or writes it with UPDATE_FIXTURES=1. */
async function assertMatchesFixture(actual: string, expectedFile: string): Promise<void> {
  if (UPDATE) {
    await Deno.writeTextFile(expectedFile, actual);
    return;
  }
  let expected: string;
  try {
    expected = await Deno.readTextFile(expectedFile);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    assert.fail(
      `${expectedFile} is missing; create it with UPDATE_FIXTURES=1 deno test -A tests/replay_test.ts\n` +
        `actual output:\n${actual}`,
    );
  }
  assert.equal(actual, expected, `replay output differs from ${expectedFile}`);
}

// ---------------------------------------------------------------------------------------------------------
// Fixtures

interface FakeSetup {
  scannedReferenceNrs?: string[];
  /** Reference numbers that scanCV answers `hasMatches: true` for. */
  hasMatches?: string[];
  secrets?: { key: string; encryptionKey: string; value: unknown }[];
  /** Reference numbers of the CVs each fake must have received by the end, in order. */
  expectReceived?: { primary?: string[]; mirror?: string[] };
}

interface FixtureOptions {
  skipCommands?: string[];
  repeat?: number;
  fake?: FakeSetup;
}

async function startFake(setup: FakeSetup): Promise<FakeRtcv> {
  const matches = new Set(setup.hasMatches ?? []);
  const fake = await startFakeRtcv({
    scannedReferenceNrs: setup.scannedReferenceNrs ?? [],
    hasMatches: (cv) => matches.has(String(cv.referenceNumber)),
  });
  for (const secret of setup.secrets ?? []) fake.setSecret(secret.key, secret.encryptionKey, secret.value);
  return fake;
}

function readFixtureOptions(name: string): FixtureOptions {
  try {
    return JSON.parse(Deno.readTextFileSync(join(FIXTURES, `${name}.options.json`)));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
}

const fixtureNames = [...Deno.readDirSync(FIXTURES)]
  .filter((entry) => entry.isFile && entry.name.endsWith(".log"))
  .map((entry) => entry.name.slice(0, -".log".length))
  .sort();

Deno.test("fixtures/replay holds mock and live sessions", () => {
  assert.ok(fixtureNames.includes("mock_session"), fixtureNames.join(", "));
  assert.ok(fixtureNames.includes("live_session"), fixtureNames.join(", "));
});

for (const name of fixtureNames) {
  const options = readFixtureOptions(name);
  const logFile = join(FIXTURES, `${name}.log`);
  const expectedFile = join(FIXTURES, `${name}.out`);

  if (options.fake === undefined) {
    Deno.test(`fixture ${name}: replay (mock) prints ${name}.out`, async () => {
      const run = await replayInProcess(logFile, {
        skipCommands: options.skipCommands,
        repeat: options.repeat,
      });
      assert.equal(run.code, 0, run.err.join("\n"));
      assert.deepEqual(run.err, []);
      await assertMatchesFixture(normalize(run.out.join("\n") + "\n"), expectedFile);
    });
    continue;
  }

  Deno.test(`fixture ${name}: replay through main.ts against the fake RT-CV prints ${name}.out`, async () => {
    const primary = await startFake(options.fake!);
    const secondary = await startFake(options.fake!);
    try {
      await withTempDir(async (dir) => {
        const text = (await Deno.readTextFile(logFile))
          .replaceAll("{{RTCV_URL_2}}", secondary.url)
          .replaceAll("{{RTCV_URL}}", primary.url);
        const file = join(dir, `${name}.log`);
        await Deno.writeTextFile(file, text);
        const args = ["-replay", file];
        if (options.skipCommands?.length) args.push("-replaySkipCommands", options.skipCommands.join(","));
        if (options.repeat !== undefined) args.push("-repeatReplay", String(options.repeat));
        const store = join(dir, "store.kv");
        const run = await runMain(args, dir, {
          [API_KEY_ENV_VAR]: DEFAULT_FAKE_KEY.apiKey,
          RTCV_SCRAPER_CLIENT_KV: store,
        });
        assertReplayWired(run);
        assert.ok(
          !run.stdout.includes("live RT-CV servers are not supported by this build"),
          `live mode is not wired in main.ts yet:\n${run.stdout}`,
        );
        assert.ok(!run.stdout.includes(DEFAULT_FAKE_KEY.apiKey), "the api key must never be printed");
        assert.ok(!run.stderr.includes(DEFAULT_FAKE_KEY.apiKey), "the api key must never be printed");
        assert.ok(!run.stderr.includes(API_KEY_ENV_VAR), `no missing-key message expected:\n${run.stderr}`);
        assert.equal(run.code, 0, run.stderr);
        await assertMatchesFixture(
          normalize(run.stdout, { "{{RTCV_URL}}": primary.url, "{{RTCV_URL_2}}": secondary.url }),
          expectedFile,
        );
        // The restored key reached the server: every authenticated request was accepted.
        assert.ok(primary.requestsTo("/api/v1/auth/keyinfo").length > 0, "the fake was never asked");
        assert.deepEqual(
          primary.requests.filter((r) => r.path !== "/api/v1/health" && r.authorization === null),
          [],
        );
        const expected = options.fake!.expectReceived ?? {};
        const references = (fake: FakeRtcv) => fake.receivedCvs.map((cv) => cv.referenceNumber);
        if (expected.primary) {
          assert.deepEqual(references(primary), expected.primary, "CVs the primary received");
        }
        if (expected.mirror) {
          // Set_mock right after the send_cv switches away from the mirror: a copy whose send had not started
          // stays in the store for a later process naming that mirror, one whose request the switch aborted
          // may also have reached it (in flight: at least once). Never lost (section 11).
          const delivered = references(secondary);
          const waiting = await pendingFor(store, secondary.url);
          assert.deepEqual(delivered, expected.mirror.slice(0, delivered.length), "CVs the mirror received");
          assert.ok(
            delivered.length + waiting >= expected.mirror.length && waiting <= expected.mirror.length,
            `CVs for the mirror, delivered or kept: ${delivered.length} delivered, ${waiting} waiting`,
          );
        }
      });
    } finally {
      await primary.close();
      await secondary.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// runReplay in this process

const MOCK_LINES = [
  '{"type":"set_mock","content":{}}',
  '{"type":"ping"}',
  '{"type":"send_cv","content":{"referenceNumber":"r-1"}}',
  '{"type":"has_cached_reference","content":"r-1"}',
];

Deno.test("runReplay prints one line per command and a summary", async () => {
  await withTempDir(async (dir) => {
    const file = await writeLog(dir, [...MOCK_LINES, "not json"]);
    const run = await replayInProcess(file);
    assert.equal(run.code, 0);
    assert.deepEqual(run.err, []);
    const lines = run.out.map((line) => normalize(line));
    assert.deepEqual(lines.slice(0, 4), [
      "Nms IN: set_mock OUT: ok",
      "Nms IN: ping OUT: pong",
      "Nms IN: send_cv OUT: ok: true",
      "Nms IN: has_cached_reference OUT: ok: true",
    ]);
    assert.match(lines[4], /^Nms IN: \(invalid\) OUT: error: "input line is not valid JSON/);
    assert.equal(lines[5], "replay: 5 commands run, 0 skipped, 1 error, total Nms");
    assert.equal(lines.length, 6);
    for (const line of run.out.slice(0, -1)) assert.match(line, /^\d+ms IN: /);
  });
});

Deno.test("runReplay -repeatReplay runs the whole file N times on the same client and says which round", async () => {
  await withTempDir(async (dir) => {
    const file = await writeLog(dir, MOCK_LINES);
    const run = await replayInProcess(file, { repeat: 3 });
    assert.equal(run.code, 0);
    const lines = run.out.map((line) => normalize(line));
    assert.deepEqual(lines.filter((line) => line.startsWith("round")), [
      "round 1 of 3",
      "round 1 of 3: 4 commands run, 0 skipped, 0 errors, Nms",
      "round 2 of 3",
      "round 2 of 3: 4 commands run, 0 skipped, 0 errors, Nms",
      "round 3 of 3",
      "round 3 of 3: 4 commands run, 0 skipped, 0 errors, Nms",
    ]);
    // The reference is new in round 1 only: later rounds find it cached.
    assert.deepEqual(lines.filter((line) => line.includes("IN: send_cv")), [
      "Nms IN: send_cv OUT: ok: true",
      "Nms IN: send_cv OUT: ok: false",
      "Nms IN: send_cv OUT: ok: false",
    ]);
    assert.equal(lines.at(-1), "replay: 3 rounds, 12 commands run, 0 skipped, 0 errors, total Nms");
    assert.equal(lines.length, 3 * (4 + 2) + 1);
  });
});

Deno.test("runReplay -replaySkipCommands does not run those commands and counts them", async () => {
  await withTempDir(async (dir) => {
    const file = await writeLog(dir, MOCK_LINES);
    const run = await replayInProcess(file, { skipCommands: ["set_mock", "ping"], repeat: 2 });
    assert.equal(run.code, 0);
    const lines = run.out.map((line) => normalize(line));
    assert.ok(
      !lines.some((line) => line.includes("IN: ping") || line.includes("IN: set_mock")),
      lines.join("\n"),
    );
    // Without set_mock, send_cv has no session: it answers the error that says to set credentials first.
    const sendCv = lines.filter((line) => line.includes("IN: send_cv"));
    assert.equal(sendCv.length, 2);
    for (const line of sendCv) assert.match(line, /^Nms IN: send_cv OUT: error: ".*set_credentials/);
    assert.equal(lines.at(-1), "replay: 2 rounds, 4 commands run, 4 skipped, 2 errors, total Nms");
  });
});

Deno.test("runReplay notes a skip type that no command has, and skips it all the same", async () => {
  await withTempDir(async (dir) => {
    const file = await writeLog(dir, ['{"type":"launch_rockets"}', '{"type":"ping"}']);
    const run = await replayInProcess(file, { skipCommands: ["launch_rockets"] });
    assert.equal(run.code, 0);
    assert.equal(run.err.length, 1);
    assert.match(run.err[0], /"launch_rockets".*not a command type/);
    assert.equal(
      normalize(run.out.join("\n")),
      "Nms IN: ping OUT: pong\nreplay: 1 command run, 1 skipped, 0 errors, total Nms",
    );
  });
});

const REDACTED_CREDENTIALS =
  `{"type":"set_credentials","content":{"server_location":"https://rtcv.example.com",` +
  `"api_key_id":"aaaaaaaaaaaaaaaaaaaaaaaa","api_key":"${REDACTED}"}}`;

Deno.test("runReplay without RTCV_SCRAPER_CLIENT_API_KEY says the key was redacted, once, and goes on", async () => {
  await withTempDir(async (dir) => {
    const file = await writeLog(dir, [REDACTED_CREDENTIALS, '{"type":"ping"}', REDACTED_CREDENTIALS]);
    const run = await replayInProcess(file, { repeat: 2 });
    assert.equal(run.code, 0);
    assert.equal(run.err.length, 1, run.err.join("\n"));
    assert.match(run.err[0], /redacted/);
    assert.ok(run.err[0].includes(API_KEY_ENV_VAR), run.err[0]);
    assert.ok(run.err[0].includes(file), "the message names the log");
    const lines = run.out.map((line) => normalize(line));
    const credentials = lines.filter((line) => line.includes("IN: set_credentials"));
    assert.equal(credentials.length, 4);
    for (const line of credentials) assert.match(line, /^Nms IN: set_credentials OUT: error: "/);
    assert.equal(lines.filter((line) => line === "Nms IN: ping OUT: pong").length, 2);
    assert.equal(lines.at(-1), "replay: 2 rounds, 6 commands run, 0 skipped, 4 errors, total Nms");
  });
});

Deno.test("runReplay fills redacted keys (object and array forms) from RTCV_SCRAPER_CLIENT_API_KEY and never prints it", async () => {
  const key = "replay-secret-key-0123456789";
  await withTempDir(async (dir) => {
    const server = (location: string, primary: boolean) =>
      `{"server_location":"${location}","api_key_id":"bbbbbbbbbbbbbbbbbbbbbbbb","api_key":"${REDACTED}","primary":${primary}}`;
    const file = await writeLog(dir, [
      REDACTED_CREDENTIALS,
      `{"type":"set_multiple_credentials","content":[${server("https://a.example", true)},${
        server("https://b.example", false)
      }]}`,
      `{"type":"set_credentials","content":[${server("https://c.example", true)}]}`,
      '{"type":"send_cv","content":{"referenceNumber":"r-1"}}',
    ]);
    const seen: string[][] = [];
    const run = await replayInProcess(file, {
      env: { [API_KEY_ENV_VAR]: key },
      connectLive: async (servers, deps) => {
        seen.push(servers.map((s) => s.apiKey));
        // A careless error message that quotes the key: replay must still not print it.
        if (servers.length === 2) throw new ConnectError(`server rejected key ${servers[1].apiKey}`);
        return new MockBackend(await deps.openReferenceCache(), {});
      },
    });
    assert.equal(run.code, 0);
    assert.deepEqual(seen, [[key], [key, key], [key]]);
    assert.deepEqual(run.err, []);
    const text = run.out.join("\n");
    assert.ok(!text.includes(key), text);
    assert.deepEqual(run.out.slice(0, 4).map((line) => normalize(line)), [
      "Nms IN: set_credentials OUT: ok",
      `Nms IN: set_multiple_credentials OUT: error: "set_multiple_credentials: server rejected key ${REDACTED}"`,
      "Nms IN: set_credentials OUT: ok",
      "Nms IN: send_cv OUT: ok: true",
    ]);
  });
});

Deno.test("runReplay of a missing file exits 2 with a message naming the file", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "no_such_input.log");
    const run = await replayInProcess(file);
    assert.equal(run.code, REPLAY_FILE_EXIT_CODE);
    assert.equal(run.code, 2);
    assert.deepEqual(run.out, []);
    assert.equal(run.err.length, 1);
    assert.ok(run.err[0].includes(file), run.err[0]);
    assert.match(run.err[0], /no such file/);
  });
});

Deno.test("runReplay of a directory exits 2 with a message naming it", async () => {
  await withTempDir(async (dir) => {
    const run = await replayInProcess(dir);
    assert.equal(run.code, 2);
    assert.equal(run.err.length, 1);
    assert.ok(run.err[0].includes(dir), run.err[0]);
  });
});

Deno.test({
  name: "runReplay of an unreadable file exits 2",
  ignore: Deno.build.os === "windows" || Deno.uid() === 0,
  fn: async () => {
    await withTempDir(async (dir) => {
      const file = await writeLog(dir, ['{"type":"ping"}']);
      await Deno.chmod(file, 0o000);
      const run = await replayInProcess(file);
      assert.equal(run.code, 2);
      assert.match(run.err[0], /permission denied/);
    });
  },
});

Deno.test("runReplay of an empty file runs nothing", async () => {
  await withTempDir(async (dir) => {
    const file = await writeLog(dir, []);
    const run = await replayInProcess(file);
    assert.equal(run.code, 0);
    assert.deepEqual(run.out.map((line) => normalize(line)), [
      "replay: 0 commands run, 0 skipped, 0 errors, total Nms",
    ]);
  });
});

Deno.test("runReplay answers a line without a final newline, CRLF lines and invalid UTF-8 like stdin", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "in.log");
    const bytes = new Uint8Array([
      ...new TextEncoder().encode('{"type":"ping"}\r\n'),
      0xff,
      0xfe,
      0x0a,
      ...new TextEncoder().encode('{"type":"ping"}'),
    ]);
    await Deno.writeFile(file, bytes);
    const run = await replayInProcess(file);
    assert.deepEqual(run.out.map((line) => normalize(line)), [
      "Nms IN: ping OUT: pong",
      'Nms IN: (invalid) OUT: error: "input line is not valid UTF-8; send one JSON object per line"',
      "Nms IN: ping OUT: pong",
      "replay: 3 commands run, 0 skipped, 1 error, total Nms",
    ]);
  });
});

Deno.test("runReplay stops before the next command when the stop signal aborts", async () => {
  await withTempDir(async (dir) => {
    const file = await writeLog(dir, MOCK_LINES);
    const stop = new AbortController();
    stop.abort();
    const run = await replayInProcess(file, { stop: stop.signal, repeat: 2 });
    assert.equal(run.code, 0);
    assert.deepEqual(run.out.map((line) => normalize(line)), [
      "round 1 of 2",
      "replay: 2 rounds, 0 commands run, 0 skipped, 0 errors, total Nms (stopped before the end)",
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Pure helpers

Deno.test("restoreRedactedKey fills api_key in credentials objects and arrays only", () => {
  const key = "k3y";
  const object = REDACTED_CREDENTIALS;
  const restored = restoreRedactedKey(object, key);
  assert.equal(restored.redactedKeys, 1);
  assert.deepEqual(JSON.parse(restored.text), {
    type: "set_credentials",
    content: {
      server_location: "https://rtcv.example.com",
      api_key_id: "aaaaaaaaaaaaaaaaaaaaaaaa",
      api_key: key,
    },
  });

  const array =
    `{"type":"set_multiple_credentials","content":[{"api_key":"${REDACTED}"},{"api_key":"real"},` +
    `{"api_key":"${REDACTED}"},"junk",null]}`;
  const restoredArray = restoreRedactedKey(array, key);
  assert.equal(restoredArray.redactedKeys, 2);
  assert.deepEqual(JSON.parse(restoredArray.text).content, [
    { api_key: key },
    { api_key: "real" },
    { api_key: key },
    "junk",
    null,
  ]);

  // Without a key: counted, line unchanged.
  assert.deepEqual(restoreRedactedKey(array, undefined), { text: array, redactedKeys: 2 });

  // Other commands, other fields, broken lines, real keys: untouched.
  for (
    const line of [
      `{"type":"set_mock","content":{"secrets":{"api":{"token":"${REDACTED}"}}}}`,
      `{"type":"set_ingest","content":{"base_url":"https://i","token":"${REDACTED}"}}`,
      `{"type":"set_credentials","content":{"api_key":"${REDACTED}"`,
      `{"type":"set_credentials","content":{"api_key":"not-redacted"}}`,
      `{"type":"set_credentials","content":{"other":"${REDACTED}"}}`,
      `{"type":"set_credentials","content":"${REDACTED}"}`,
      `["${REDACTED}"]`,
      "",
    ]
  ) {
    assert.deepEqual(restoreRedactedKey(line, key), { text: line, redactedKeys: 0 }, line);
  }
});

Deno.test("formatReplayLine: ok, ok with content, pong, error, invalid and odd types", () => {
  const line = (type: string | null, answer: Parameters<typeof formatReplayLine>[0]["answer"], ms = 3.4) =>
    formatReplayLine({ durationMs: ms, type, answer });
  assert.equal(line("set_mock", { type: "ok" }), "3ms IN: set_mock OUT: ok");
  assert.equal(line("send_cv", { type: "ok", content: false }, 12.5), "13ms IN: send_cv OUT: ok: false");
  assert.equal(
    line("get_user_secret", { type: "ok", content: { username: "u", password: "p" } }),
    '3ms IN: get_user_secret OUT: ok: {"username":"u","password":"p"}',
  );
  assert.equal(line("get_secret", { type: "ok", content: null }), "3ms IN: get_secret OUT: ok: null");
  assert.equal(line("ping", { type: "pong" }), "3ms IN: ping OUT: pong");
  assert.equal(
    line(null, { type: "error", content: 'a "quoted"\nmessage' }),
    '3ms IN: (invalid) OUT: error: "a \\"quoted\\"\\nmessage"',
  );
  assert.equal(
    line("two words\n", { type: "error", content: "x" }),
    '3ms IN: "two words\\n" OUT: error: "x"',
  );
  assert.equal(
    line("x".repeat(100), { type: "error", content: "x" }),
    `3ms IN: "${"x".repeat(64)}..." OUT: error: "x"`,
  );
  assert.equal(line("ping", { type: "pong" }, -1), "0ms IN: ping OUT: pong");
});

Deno.test("summaries say run, skipped, errors and time", () => {
  assert.equal(
    formatReplaySummary({ run: 1, skipped: 0, errors: 1, durationMs: 0.4 }, { rounds: 1 }),
    "replay: 1 command run, 0 skipped, 1 error, total 0ms",
  );
  assert.equal(
    formatReplaySummary({ run: 8, skipped: 2, errors: 0, durationMs: 1500 }, { rounds: 2 }),
    "replay: 2 rounds, 8 commands run, 2 skipped, 0 errors, total 1500ms",
  );
  assert.equal(
    formatRoundSummary({ run: 4, skipped: 1, errors: 2, durationMs: 7 }, 1, 2),
    "round 1 of 2: 4 commands run, 1 skipped, 2 errors, 7ms",
  );
});

// ---------------------------------------------------------------------------------------------------------
// Recorded with LOG_SCRAPER_CLIENT_INPUT, replayed: the same answers

Deno.test("a session recorded with LOG_SCRAPER_CLIENT_INPUT replays with the same answers", async () => {
  await withTempDir(async (dir) => {
    const session = (await Deno.readTextFile(join(FIXTURES, "mock_session.log"))).split("\n").slice(0, -1);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN],
      cwd: dir,
      env: {
        LOG_SCRAPER_CLIENT_INPUT: "1",
        RTCV_SCRAPER_CLIENT_KV: ":memory:",
        ENABLE_SCRAPER_CLIENT_LOG: "",
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(session.map((line) => line + "\n").join("")));
    await writer.close();
    const output = await child.output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const answers = new TextDecoder().decode(output.stdout).split("\n").slice(1, -1).map((line) =>
      JSON.parse(line)
    );
    assert.equal(answers.length, session.length);

    const log = join(dir, "scraper_client_input.log");
    assert.deepEqual((await Deno.readTextFile(log)).split("\n").slice(0, -1), session);
    const run = await replayInProcess(log);
    assert.equal(run.code, 0);
    const replayed = run.out.slice(0, -1).map((line) => line.replace(/^\d+ms /, ""));
    const expected = answers.map((answer, i) => {
      const parsed = parseCommandLine(session[i]);
      const type = typeof parsed === "string" ? null : parsed.type;
      return formatReplayLine({ durationMs: 0, type, answer }).replace(/^\d+ms /, "");
    });
    assert.deepEqual(replayed, expected);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Through main.ts (these need main.ts to call runReplay for -replay)

Deno.test("main.ts -replay FILE and --replay=FILE replay a log", async () => {
  const expected = await Deno.readTextFile(join(FIXTURES, "mock_session.out"));
  await withTempDir(async (dir) => {
    const file = join(FIXTURES, "mock_session.log");
    for (const args of [["-replay", file], ["--replay=" + file], ["--replay", file], ["-replay=" + file]]) {
      const run = await runMain(args, dir);
      assertReplayWired(run);
      assert.equal(run.code, 0, `${args.join(" ")}\n${run.stderr}`);
      assert.equal(normalize(run.stdout), expected, args.join(" "));
    }
  });
});

Deno.test("main.ts -repeatReplay and -replaySkipCommands, Go style and --double-dash", async () => {
  const expected = await Deno.readTextFile(join(FIXTURES, "mock_skip_repeat.out"));
  await withTempDir(async (dir) => {
    const file = join(FIXTURES, "mock_skip_repeat.log");
    for (
      const args of [
        ["-replay", file, "-replaySkipCommands", "ping,has_cached_reference", "-repeatReplay", "2"],
        [`--replay=${file}`, "--replaySkipCommands=ping, has_cached_reference", "--repeatReplay=2"],
        ["--replay", file, "--replay-skip-commands", "ping,has_cached_reference", "--repeat-replay", "2"],
      ]
    ) {
      const run = await runMain(args, dir);
      assertReplayWired(run);
      assert.equal(run.code, 0, `${args.join(" ")}\n${run.stderr}`);
      assert.equal(normalize(run.stdout), expected, args.join(" "));
    }
  });
});

Deno.test("main.ts -replay with redacted credentials and no RTCV_SCRAPER_CLIENT_API_KEY says so on stderr", async () => {
  await using fake = await startFakeRtcv();
  await withTempDir(async (dir) => {
    const credentials = REDACTED_CREDENTIALS.replace("https://rtcv.example.com", fake.url)
      .replace("aaaaaaaaaaaaaaaaaaaaaaaa", DEFAULT_FAKE_KEY.apiKeyId);
    const file = await writeLog(dir, [credentials, '{"type":"ping"}']);
    const run = await runMain(["-replay", file], dir);
    assertReplayWired(run);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /redacted/);
    assert.ok(run.stderr.includes(API_KEY_ENV_VAR), run.stderr);
    const lines = normalize(run.stdout, { "{{RTCV_URL}}": fake.url }).split("\n");
    // The fake refuses the marker as a key; the answer is printed like any other.
    assert.match(lines[0], /^Nms IN: set_credentials OUT: error: ".*\{\{RTCV_URL\}\}/);
    assert.equal(lines[1], "Nms IN: ping OUT: pong");
    assert.ok(!run.stdout.includes(API_KEY_ENV_VAR), "stdout carries the report only");
  });
});

Deno.test("main.ts -replay of a missing file exits 2 naming the file", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "missing_input.log");
    const run = await runMain(["-replay", file], dir);
    assertReplayWired(run);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.stdout, "");
    assert.ok(run.stderr.includes(file), run.stderr);
  });
});

Deno.test("main.ts exits 2 on an unknown flag or a replay option without -replay", async () => {
  await withTempDir(async (dir) => {
    for (
      const args of [["-replayy", "x.log"], ["--nope"], ["-repeatReplay", "2"], [
        "-replay",
        "x",
        "-repeatReplay",
        "0",
      ]]
    ) {
      const run = await runMain(args, dir);
      assert.ok(
        !run.stdout.startsWith('{"type":"ready"'),
        `${args.join(" ")}: flags are not parsed by main.ts yet`,
      );
      assert.equal(run.code, 2, `${args.join(" ")}\n${run.stderr}`);
      assert.equal(run.stdout, "");
      assert.notEqual(run.stderr.trim(), "", "a usage error says what is wrong");
    }
  });
});
