/**
 * The input log (`LOG_SCRAPER_CLIENT_INPUT`) and the debug log (`ENABLE_SCRAPER_CLIENT_LOG`) of the real
 * program: `deno run -A main.ts` in a temporary working directory, fed like a scraper feeds it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { REDACTED } from "../src/debug/redact.ts";
import { startFakeRtcv } from "./fake_rtcv.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const INPUT_LOG = "scraper_client_input.log";
const DEBUG_LOG = "scraper_client.log";
const posix = Deno.build.os !== "windows";
const encoder = new TextEncoder();

/** Every secret in the session starts with this, so one search finds any leak. */
const SECRET = "SECRET-";
const KEY_ID = "111111111111111111111111";

/** A fake RT-CV that accepts the session's keys, so the credentials lines answer ok. */
function startFake() {
  return startFakeRtcv({
    keys: ["one", "two", "three"].map((name) => ({ apiKeyId: KEY_ID, apiKey: SECRET + name, roles: [1] })),
  });
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_input_log_process_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function modeOf(path: string): Promise<number> {
  return ((await Deno.stat(path)).mode ?? 0) & 0o777;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

interface Session {
  code: number;
  answers: string[];
  stderr: string;
}

/** Runs main.ts in `cwd` with `env`, writes `input` to its stdin, closes it and waits for the exit. */
async function runSession(cwd: string, env: Record<string, string>, input: Uint8Array): Promise<Session> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN],
    cwd,
    env: {
      LOG_SCRAPER_CLIENT_INPUT: "",
      ENABLE_SCRAPER_CLIENT_LOG: "",
      RTCV_SCRAPER_CLIENT_ENV: "",
      RTCV_SCRAPER_CLIENT_ENV_FILE: "",
      RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT: "",
      RTCV_SCRAPER_CLIENT_KV: "",
      NO_COLOR: "1",
      ...env,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(input);
  await writer.close();
  const output = await child.output();
  const decoder = new TextDecoder();
  const lines = decoder.decode(output.stdout).split("\n");
  assert.equal(lines.pop(), "", "stdout ends with a newline");
  assert.equal(lines.shift(), '{"type":"ready","content":"waiting for credentials"}');
  return { code: output.code, answers: lines, stderr: decoder.decode(output.stderr) };
}

/** The session a scraper sends, as text lines (bytes added separately for the non-UTF-8 line). */
function sessionLines(serverUrl: string): { lines: Uint8Array[]; expectedLog: string[] } {
  const credentials = (key: string, extra = "") =>
    `{"server_location":"${serverUrl}","api_key_id":"${KEY_ID}","api_key":"${key}"${extra}}`;
  const text: [string, string][] = [
    // [line sent, line expected in the log]
    [
      `{"type":"set_credentials","content":${credentials(`${SECRET}one`)}}`,
      `{"type":"set_credentials","content":${credentials(REDACTED)}}`,
    ],
    ['{"type":"ping"}', '{"type":"ping"}'],
    [
      // Broken JSON: the log still must not hold the key.
      `{"type":"set_credentials","content":{"api_key":"${SECRET}broken-123`,
      `{"type":"set_credentials","content":{"api_key":"${REDACTED}"`,
    ],
    [
      `{"type":"set_multiple_credentials","content":[${credentials(`${SECRET}two`, ',"primary":true')},${
        credentials(`${SECRET}three`, ',"primary":false')
      }]}`,
      `{"type":"set_multiple_credentials","content":[${credentials(REDACTED, ',"primary":true')},${
        credentials(REDACTED, ',"primary":false')
      }]}`,
    ],
    [
      `{"type":"set_ingest","content":{"base_url":"http://127.0.0.1:9","token":"${SECRET}token"}}`,
      `{"type":"set_ingest","content":{"base_url":"http://127.0.0.1:9","token":"${REDACTED}"}}`,
    ],
    ["", ""],
    ["not json at all", "not json at all"],
    ['{"type":"set_mock"}', '{"type":"set_mock"}'],
    [
      '{"type":"send_cv","content":{"referenceNumber":"r-1"}}',
      '{"type":"send_cv","content":{"referenceNumber":"r-1"}}',
    ],
  ];
  const lines = text.map(([sent]) => encoder.encode(sent + "\n"));
  const expectedLog = text.map(([, logged]) => logged);
  // A line that is not UTF-8: logged with replacement characters (and still no secret).
  const invalid = new Uint8Array([
    ...encoder.encode('{"type":"ping","x":"'),
    0xff,
    0xfe,
    ...encoder.encode(`","api_key":"${SECRET}in-bad-utf8"}\n`),
  ]);
  lines.splice(2, 0, invalid);
  expectedLog.splice(2, 0, `{"type":"ping","x":"\uFFFD\uFFFD","api_key":"${REDACTED}"}`);
  return { lines, expectedLog };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, chunk) => n + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

for (const value of ["true", "1", "t"]) {
  Deno.test(`LOG_SCRAPER_CLIENT_INPUT=${value} writes every input line, in order, redacted, to a 0600 file`, async () => {
    await using fake = await startFake();
    await withTempDir(async (dir) => {
      const { lines, expectedLog } = sessionLines(fake.url);
      const session = await runSession(dir, { LOG_SCRAPER_CLIENT_INPUT: value }, concat(lines));
      assert.equal(session.code, 0, session.stderr);
      assert.equal(session.answers.length, lines.length, "one answer per line");
      assert.equal(session.answers[0], '{"type":"ok"}', "set_credentials with the fake's key");
      assert.equal(session.answers[4], '{"type":"ok"}', "set_multiple_credentials with the fake's keys");
      assert.equal(session.answers.at(-1), '{"type":"ok","content":true}', "the session still works");

      const log = join(dir, INPUT_LOG);
      if (posix) assert.equal((await modeOf(log)).toString(8), "600");
      const text = await Deno.readTextFile(log);
      assert.deepEqual(text.split("\n"), [...expectedLog, ""]);
      assert.ok(!text.includes(SECRET), "no secret in the input log");
      assert.ok(!session.stderr.includes(SECRET), "no secret on stderr");
      assert.ok(!session.answers.join("\n").includes(SECRET), "no secret in the answers");
      assert.ok(!(await exists(join(dir, DEBUG_LOG))), "the debug log is off unless asked for");
    });
  });
}

Deno.test("the input log is appended to across runs", async () => {
  await withTempDir(async (dir) => {
    const env = { LOG_SCRAPER_CLIENT_INPUT: "true" };
    await runSession(dir, env, encoder.encode('{"type":"ping"}\n'));
    await runSession(dir, env, encoder.encode('{"type":"set_mock"}\n{"type":"ping"}\n'));
    assert.equal(
      await Deno.readTextFile(join(dir, INPUT_LOG)),
      '{"type":"ping"}\n{"type":"set_mock"}\n{"type":"ping"}\n',
    );
  });
});

for (const value of ["", "false", "0", "f"]) {
  Deno.test(`LOG_SCRAPER_CLIENT_INPUT=${JSON.stringify(value)} writes no input log`, async () => {
    await withTempDir(async (dir) => {
      const session = await runSession(
        dir,
        { LOG_SCRAPER_CLIENT_INPUT: value },
        encoder.encode('{"type":"ping"}\n'),
      );
      assert.deepEqual(session.answers, ['{"type":"pong"}']);
      assert.ok(!(await exists(join(dir, INPUT_LOG))));
    });
  });
}

Deno.test("ENABLE_SCRAPER_CLIENT_LOG=true writes timestamped debug lines without the key to a 0600 file", async () => {
  await using fake = await startFake();
  await withTempDir(async (dir) => {
    const { lines } = sessionLines(fake.url);
    const session = await runSession(dir, { ENABLE_SCRAPER_CLIENT_LOG: "true" }, concat(lines));
    assert.equal(session.code, 0, session.stderr);
    assert.equal(session.answers.length, lines.length);

    const log = join(dir, DEBUG_LOG);
    if (posix) assert.equal((await modeOf(log)).toString(8), "600");
    const text = await Deno.readTextFile(log);
    const entries = text.split("\n");
    assert.equal(entries.pop(), "");
    assert.ok(entries.length > 0, "the debug log has lines");
    for (const entry of entries) {
      assert.match(entry, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S/, entry);
      const when = Date.parse(entry.slice(0, entry.indexOf(" ")));
      assert.ok(Math.abs(Date.now() - when) < 10 * 60_000, `a current timestamp: ${entry}`);
    }
    assert.ok(entries.some((entry) => entry.includes("set_credentials")), text);
    assert.ok(!text.includes(SECRET), "no secret in the debug log");
    assert.ok(!session.stderr.includes(SECRET), "no secret on stderr");
    assert.ok(!(await exists(join(dir, INPUT_LOG))), "the input log is off unless asked for");
  });
});

Deno.test("a log that cannot be opened is reported on stderr, and the client serves without it", async () => {
  await withTempDir(async (dir) => {
    // A directory where the log files would go: opening them fails, also for root.
    await Deno.mkdir(join(dir, INPUT_LOG));
    await Deno.mkdir(join(dir, DEBUG_LOG));
    const session = await runSession(
      dir,
      {
        LOG_SCRAPER_CLIENT_INPUT: "true",
        ENABLE_SCRAPER_CLIENT_LOG: "true",
        RTCV_SCRAPER_CLIENT_KV: ":memory:",
      },
      encoder.encode('{"type":"ping"}\n{"type":"set_mock"}\n'),
    );
    assert.equal(session.code, 0, session.stderr);
    assert.deepEqual(session.answers.slice(-2), ['{"type":"pong"}', '{"type":"ok"}']);
    assert.match(session.stderr, /no input log: .*scraper_client_input\.log/);
    assert.match(session.stderr, /no debug log: .*scraper_client\.log/);
  });
});
