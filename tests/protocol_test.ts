/**
 * The v1 line protocol as a scraper sees it: the ready line, one answer per input line in input order, line
 * endings, answer shapes, end of input and signals. Every test spawns the real client (`deno run -A main.ts`).
 */
import assert from "node:assert/strict";
import {
  assertErrorAnswer,
  OK,
  OK_FALSE,
  OK_TRUE,
  parseAnswer,
  PONG,
  READY_LINE,
  runSession,
  spawnClient,
  tempDir,
} from "./helpers/spawn_client.ts";

const encoder = new TextEncoder();

const set = (reference: string) => ({ type: "set_cached_reference", content: reference });
const has = (reference: string) => ({ type: "has_cached_reference", content: reference });

Deno.test("the ready line comes first, before the client reads any input, and nothing else follows it", async () => {
  await using client = spawnClient();
  // Nothing is written to stdin: the ready line must come anyway.
  assert.equal(await client.readLine(), READY_LINE);
  const { status, rest, stderr } = await client.finish();
  assert.deepEqual(rest, [], "no input, so no further line");
  assert.equal(status.code, 0, stderr);
});

Deno.test("a lockstep scraper gets each answer while stdin stays open", async () => {
  await using client = spawnClient();
  await client.ready();
  assert.deepEqual(await client.request({ type: "ping" }), { type: "pong" });
  assert.deepEqual(await client.request(has("lockstep-1")), { type: "ok", content: false });
  assert.deepEqual(await client.request(set("lockstep-1")), { type: "ok" });
  assert.deepEqual(await client.request(has("lockstep-1")), { type: "ok", content: true });
  assert.deepEqual(await client.request({ type: "get_cached_reference", content: "lockstep-1" }), {
    type: "ok",
    content: true,
  });
  assert.deepEqual(await client.request(has("lockstep-2")), { type: "ok", content: false });
  const { status, rest } = await client.finish();
  assert.deepEqual(rest, []);
  assert.equal(status.code, 0);
});

Deno.test("a mix pipelined in one write: one answer per line, in input order", async () => {
  const lines = [
    '{"type":"ping"}',
    "",
    "not json",
    '{"type":"launch_rockets"}',
    JSON.stringify(has("pipe-1")),
    JSON.stringify(set("pipe-1")),
    JSON.stringify(has("pipe-1")),
    '{"type":"send_cv","content":{"referenceNumber":"pipe-2"}}', // before set_mock: no server yet
    '{"type":"set_mock"}',
    '{"type":"send_cv","content":{"referenceNumber":"pipe-2"}}',
    '{"type":"send_cv","content":{"referenceNumber":"pipe-2"}}',
    JSON.stringify(has("pipe-2")),
    JSON.stringify(has("pipe-1")), // mock mode has its own cache
    "   ",
    '{"type":"ping"}',
  ];
  await using client = spawnClient();
  await client.ready();
  await client.sendRaw(lines.join("\n") + "\n"); // one write
  const answers = await client.readLines(lines.length);
  assert.equal(answers[0], PONG);
  assertErrorAnswer(answers[1], "empty");
  assertErrorAnswer(answers[2], "not valid JSON");
  assertErrorAnswer(answers[3], 'unknown command type "launch_rockets"', "ping", "send_cv");
  assert.equal(answers[4], OK_FALSE);
  assert.equal(answers[5], OK);
  assert.equal(answers[6], OK_TRUE);
  assertErrorAnswer(answers[7], "send_cv: ", "set_credentials");
  assert.equal(answers[8], OK);
  assert.equal(answers[9], OK_TRUE);
  assert.equal(answers[10], OK_FALSE);
  assert.equal(answers[11], OK_TRUE);
  assert.equal(answers[12], OK_FALSE);
  assertErrorAnswer(answers[13], "empty");
  assert.equal(answers[14], PONG);
  const { status, rest } = await client.finish();
  assert.deepEqual(rest, [], "exactly one answer per line");
  assert.equal(status.code, 0);
});

Deno.test("end of stdin: 3000 pipelined lines are all answered in order, then exit 0, and the writes are stored", async () => {
  await using dir = await tempDir();
  const env = { RTCV_SCRAPER_CLIENT_KV: `${dir.path}/store.kv` };
  const lines: object[] = [];
  const expected: string[] = [];
  for (let i = 0; i < 1000; i++) {
    lines.push(set(`bulk-${i}`), has(`bulk-${i}`), i % 2 === 0 ? { type: "ping" } : has(`never-${i}`));
    expected.push(OK, OK_TRUE, i % 2 === 0 ? PONG : OK_FALSE);
  }
  const first = await runSession(lines, env); // writes everything, then closes stdin at once
  assert.equal(first.ready, READY_LINE);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.answers.length, expected.length);
  assert.deepEqual(first.answers, expected);

  // Every `ok` meant "in the store": a second process sees all of them.
  const second = await runSession(Array.from({ length: 1000 }, (_, i) => has(`bulk-${i}`)), env);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(second.answers, Array(1000).fill(OK_TRUE));
});

Deno.test("CRLF line endings, also mixed with LF, are accepted", async () => {
  const input = '{"type":"ping"}\r\n' +
    `${JSON.stringify(set("crlf-1"))}\r\n` +
    `${JSON.stringify(has("crlf-1"))}\n` +
    "\r\n" +
    `{"type":"get_cached_reference","content":"crlf-1"}\r\n` +
    "not json\r\n" +
    '{"type":"ping"}\r\n';
  const session = await runSession(encoder.encode(input));
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.answers.length, 7);
  assert.deepEqual(session.answers.slice(0, 3), [PONG, OK, OK_TRUE]);
  assertErrorAnswer(session.answers[3], "empty");
  assert.equal(session.answers[4], OK_TRUE, "the reference number does not keep a \\r");
  assertErrorAnswer(session.answers[5], "not valid JSON");
  assert.equal(session.answers[6], PONG);
});

Deno.test("a last line without \\n is answered and done before the exit", async () => {
  await using dir = await tempDir();
  const env = { RTCV_SCRAPER_CLIENT_KV: `${dir.path}/store.kv` };
  const first = await runSession(encoder.encode(`{"type":"ping"}\n${JSON.stringify(set("last-line"))}`), env);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(first.answers, [PONG, OK]);
  assert.ok(first.stdout.endsWith(`${OK}\n`), "the answer to the last line ends in \\n too");

  const second = await runSession(encoder.encode(JSON.stringify(has("last-line"))), env);
  assert.deepEqual(second.answers, [OK_TRUE]);

  const junk = await runSession(encoder.encode("{not json"));
  assert.equal(junk.answers.length, 1);
  assertErrorAnswer(junk.answers[0], "not valid JSON");
  assert.equal(junk.code, 0);
});

Deno.test("answers have the exact compact shapes of protocol v1", async () => {
  const session = await runSession([
    { type: "ping" },
    set("shape-1"),
    has("shape-1"),
    has("shape-2"),
    { type: "set_mock", content: { secrets: { s: { a: [1, "x", null, { b: true }] }, n: 5, text: 'é\n"' } } },
    { type: "get_secret", content: { key: "s", encryption_key: "k" } },
    { type: "get_secret", content: { key: "n", encryption_key: "k" } },
    { type: "get_secret", content: { key: "text", encryption_key: "k" } },
    { type: "get_secret", content: { key: "none", encryption_key: "k" } },
    { type: "nope" },
  ]);
  assert.equal(session.code, 0, session.stderr);
  assert.deepEqual(session.answers.slice(0, 9), [
    '{"type":"pong"}',
    '{"type":"ok"}',
    '{"type":"ok","content":true}',
    '{"type":"ok","content":false}',
    '{"type":"ok"}',
    '{"type":"ok","content":{"a":[1,"x",null,{"b":true}]}}',
    '{"type":"ok","content":5}',
    '{"type":"ok","content":"é\\n\\""}',
    '{"type":"ok","content":null}',
  ]);
  assert.match(session.answers[9], /^\{"type":"error","content":"[^\n]+"\}$/);
  for (const line of session.answers) parseAnswer(line); // compact, known type, only type and content
});

Deno.test("unknown extra fields on an input line are ignored", async () => {
  const session = await runSession([
    '{"type":"ping","seq":7,"content":{"x":1}}',
    '{"seq":"abc","type":"set_cached_reference","content":"extra-1","meta":{"a":[1]}}',
    '{"type":"has_cached_reference","content":"extra-1","version":1,"type_hint":null}',
    '{"type":"set_mock","content":{"secrets":{"k":1},"other":true},"trace":"x"}',
    '{"type":"send_cv","content":{"referenceNumber":"extra-2","someCvField":[1,2]},"extra":true}',
    '{"type":"get_secret","content":{"key":"k","encryption_key":"e","unused":1},"x":[]}',
  ]);
  assert.equal(session.code, 0, session.stderr);
  assert.deepEqual(session.answers, [PONG, OK, OK_TRUE, OK, OK_TRUE, '{"type":"ok","content":1}']);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal} while idle: exit 0 without a further line`, async () => {
    await using client = spawnClient();
    await client.ready();
    assert.deepEqual(await client.request({ type: "ping" }), { type: "pong" });
    client.kill(signal); // stdin stays open: the signal alone must end it
    const { status, rest, stderr } = await client.waitForExit();
    assert.equal(status.code, 0, stderr);
    assert.equal(status.signal, null);
    assert.deepEqual(rest, []);
  });
}

Deno.test("SIGTERM while busy: every line answered before the exit is done, exit 0", async () => {
  await using dir = await tempDir();
  const env = { RTCV_SCRAPER_CLIENT_KV: `${dir.path}/store.kv` };
  const count = 3000;
  await using client = spawnClient({ env });
  await client.ready();
  const writing = client.sendRaw(
    Array.from({ length: count }, (_, i) => JSON.stringify(set(`term-${i}`)) + "\n").join(""),
  ).catch(() => {}); // the client may stop reading before it has all of it
  assert.equal(await client.readLine(), OK);
  client.kill("SIGTERM");
  const { status, rest, stderr } = await client.waitForExit();
  await client.closeStdin();
  await writing;
  assert.equal(status.code, 0, stderr);
  const answered = 1 + rest.length;
  assert.ok(answered <= count);
  for (const line of rest) assert.equal(line, OK);

  const check = await runSession(Array.from({ length: answered }, (_, i) => has(`term-${i}`)), env);
  assert.deepEqual(check.answers, Array(answered).fill(OK_TRUE), "every answered ok is in the store");
});

Deno.test("stdout carries protocol lines only, also with logs enabled and a failing store", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a_file`, "not a directory");
  const lines = [
    '{"type":"ping"}',
    "",
    "garbage \u0000 line",
    '{"type":"unknown"}',
    JSON.stringify(set("stdout-1")), // the store cannot be opened: an error answer, a warning on stderr
    JSON.stringify(has("stdout-1")),
    '{"type":"send_cv","content":{"referenceNumber":"stdout-2"}}',
    '{"type":"set_mock","content":{"secrets":{"users":[{"username":"u","password":"p"}]}}}',
    '{"type":"send_cv","content":{"referenceNumber":"stdout-2"}}',
    '{"type":"get_users_secret","content":{"encryption_key":"e"}}',
    '{"type":"get_user_secret","content":{"encryption_key":"e"}}',
    '{"type":"get_secret","content":{"key":"users","encryption_key":"e"}}',
    '{"type":"set_credentials","content":{"server_location":"nope","api_key_id":"i","api_key":"k"}}',
    '{"type":"ping"}',
  ];
  const session = await runSession(lines, {
    RTCV_SCRAPER_CLIENT_KV: `${dir.path}/a_file/store.kv`,
    ENABLE_SCRAPER_CLIENT_LOG: "true",
    LOG_SCRAPER_CLIENT_INPUT: "true",
  }, { cwd: dir.path });
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.ready, READY_LINE);
  assert.equal(session.answers.length, lines.length, "one line per input line, nothing else");
  for (const line of session.answers) parseAnswer(line);
  assert.ok(session.stdout.endsWith("\n"));
  assertErrorAnswer(session.answers[4], "set_cached_reference: ", "cannot open the store");
  assertErrorAnswer(session.answers[5], "has_cached_reference: ");
  assert.equal(session.answers[8], OK_TRUE);
  assert.equal(session.answers.at(-1), PONG);
});
