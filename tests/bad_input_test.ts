/**
 * Bad input never stops the client: every line gets one error answer that names the command and the field,
 * and says what is expected, without quoting the raw line or a secret. Every test spawns the real client.
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
} from "./helpers/spawn_client.ts";

const encoder = new TextEncoder();

/** Bytes for a line: UTF-8 of a string, or the bytes as given. */
const bytesOf = (line: string | Uint8Array) => typeof line === "string" ? encoder.encode(line) : line;

function concat(parts: readonly (string | Uint8Array)[]): Uint8Array {
  const chunks = parts.map(bytesOf);
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Pseudo-random bytes from a fixed seed (so a failure can be reproduced), without `\n`. */
function junkBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    const byte = state >>> 24;
    bytes[i] = byte === 0x0a ? 0x0b : byte;
  }
  return bytes;
}

const DEPTH = 100_000;
const deepArray = "[".repeat(DEPTH) + "]".repeat(DEPTH);
const deepObject = '{"a":'.repeat(DEPTH) + "1" + "}".repeat(DEPTH);

/** One bad line and the fragments its error message must contain. */
interface BadLine {
  readonly line: string | Uint8Array;
  readonly expect: readonly string[];
}

const SEND_CV_REFERENCE = "send_cv: content.referenceNumber must be a non-empty string";

const CORPUS: readonly BadLine[] = [
  { line: "not json", expect: ["input line is not valid JSON", "one JSON object per line"] },
  {
    line: '{"type":"ping"',
    expect: ["input line is not valid JSON (the line ends before the JSON value does)"],
  },
  {
    line: '{"type":"ping","content":"x" y}',
    expect: ["not valid JSON (unexpected character at column 30 of 31)"],
  },
  { line: "", expect: ["input line is empty", '{"type":"ping"}'] },
  { line: "\t  ", expect: ["input line is empty"] },
  { line: "[]", expect: ['must be a JSON object with a "type" field', "got an empty array"] },
  { line: "null", expect: ['must be a JSON object with a "type" field', "got null"] },
  { line: "42", expect: ['must be a JSON object with a "type" field', "got a number"] },
  { line: '"str"', expect: ['must be a JSON object with a "type" field', "got a string"] },
  { line: "true", expect: ['must be a JSON object with a "type" field', "got a boolean"] },
  { line: "{}", expect: ['has no "type" field', '{"type":"<command>","content":...}'] },
  { line: '{"content":"x"}', expect: ['has no "type" field'] },
  { line: '{"type":5}', expect: ['"type" must be a string', "got a number"] },
  { line: '{"type":null}', expect: ['"type" must be a string', "got null"] },
  { line: '{"type":{"a":1}}', expect: ['"type" must be a string', "got an object"] },
  { line: '{"type":["ping"]}', expect: ['"type" must be a string', "got an array"] },
  { line: '{"type":""}', expect: ['unknown command type ""', "known types:", "send_cv"] },
  { line: '{"type":"SEND_CV"}', expect: ['unknown command type "SEND_CV"'] },
  { line: '{"type":"send_cv"}', expect: ["send_cv: content is missing", "expected an object"] },
  { line: '{"type":"send_cv","content":null}', expect: ["send_cv: content must be an object", "got null"] },
  { line: '{"type":"send_cv","content":[]}', expect: ["send_cv: content must be an object", "array"] },
  {
    line: '{"type":"send_cv","content":"abc"}',
    expect: ["send_cv: content must be an object", "got a string"],
  },
  { line: '{"type":"send_cv","content":{"referenceNumber":5}}', expect: [SEND_CV_REFERENCE] },
  { line: '{"type":"send_cv","content":{"referenceNumber":""}}', expect: [SEND_CV_REFERENCE] },
  { line: '{"type":"send_cv","content":{"referenceNumber":null}}', expect: [SEND_CV_REFERENCE] },
  { line: '{"type":"send_cv","content":{"referenceNumber":["a"]}}', expect: [SEND_CV_REFERENCE] },
  {
    line: '{"type":"send_cv","content":{"presentation":"hi"}}',
    expect: [SEND_CV_REFERENCE, "reference_number"],
  },
  {
    line: '{"type":"send_cv","content":{"reference_number":5}}',
    expect: ["send_cv: content.reference_number must be a non-empty string"],
  },
  {
    line: '{"type":"set_cached_reference","content":""}',
    expect: ["set_cached_reference: content must be a non-empty string", "got an empty string"],
  },
  {
    line: '{"type":"set_cached_reference","content":5}',
    expect: ["set_cached_reference: content must be a non-empty string", "got a number"],
  },
  {
    line: '{"type":"set_cached_reference"}',
    expect: ["set_cached_reference: content is missing", "non-empty string"],
  },
  {
    line: '{"type":"set_short_cached_reference","content":null}',
    expect: ["set_short_cached_reference: content must be a non-empty string", "got null"],
  },
  {
    line: '{"type":"has_cached_reference","content":{"ref":"a"}}',
    expect: ["has_cached_reference: content must be a non-empty string", "got an object"],
  },
  {
    line: '{"type":"get_cached_reference","content":["a"]}',
    expect: ["get_cached_reference: content must be a non-empty string", "got an array"],
  },
  {
    line: '{"type":"get_secret","content":{"key":"k"}}',
    expect: ["get_secret: content.encryption_key is missing", "non-empty string"],
  },
  { line: '{"type":"get_secret","content":"k"}', expect: ["get_secret: content must be an object", '"key"'] },
  {
    line: '{"type":"get_secret","content":{"key":"","encryption_key":"e"}}',
    expect: ["get_secret: content.key must be a non-empty string", "empty string"],
  },
  {
    line: '{"type":"get_users_secret","content":{"key":5,"encryption_key":"e"}}',
    expect: ["get_users_secret: content.key must be a non-empty string", "got a number"],
  },
  { line: '{"type":"get_user_secret"}', expect: ["get_user_secret: content is missing"] },
  { line: '{"type":"set_mock","content":5}', expect: ["set_mock: content"] },
  // Deeply nested JSON: as a whole line, as content, inside a CV.
  { line: deepArray, expect: ['must be a JSON object with a "type" field', "got an array"] },
  {
    line: `{"type":"send_cv","content":${deepArray}}`,
    expect: ["send_cv: content must be an object", "array"],
  },
  {
    line: `{"type":"set_cached_reference","content":${deepObject}}`,
    expect: ["set_cached_reference: content must be a non-empty string", "got an object"],
  },
  { line: `{"type":"nope","content":${deepArray}}`, expect: ['unknown command type "nope"'] },
  { line: "[".repeat(DEPTH), expect: ["input line is not valid JSON"] },
  // Binary junk: NUL bytes, invalid UTF-8, random bytes.
  { line: new Uint8Array([0, 0, 0]), expect: ["input line is not valid JSON"] },
  { line: concat(['{"type":"ping"}', new Uint8Array([0])]), expect: ["input line is not valid JSON"] },
  { line: new Uint8Array([0xc3, 0x28, 0xff, 0xfe]), expect: ["not valid UTF-8", "one JSON object per line"] },
  {
    line: concat(['{"type":"set_cached_reference","content":"', new Uint8Array([0xed, 0xa0, 0x80]), '"}']),
    expect: ["not valid UTF-8"],
  },
  { line: concat([junkBytes(4096, 7), new Uint8Array([0xff])]), expect: ["not valid UTF-8"] },
  { line: junkBytes(65_536 * 2 + 17, 42), expect: [] }, // any error: it may or may not be valid UTF-8
  { line: "\u2028\u00e9\u{1F600}", expect: ["input line is not valid JSON"] },
];

Deno.test("a corpus of bad lines: each gets one error saying what is wrong, and the process lives on", async () => {
  const input = concat([
    ...CORPUS.flatMap(({ line }) => [bytesOf(line), "\n"]),
    '{"type":"ping"}\n',
    '{"type":"set_cached_reference","content":"after-junk"}\n',
    '{"type":"has_cached_reference","content":"after-junk"}\n',
  ]);
  const session = await runSession(input);
  assert.equal(session.ready, READY_LINE);
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.answers.length, CORPUS.length + 3, "exactly one answer per line");
  CORPUS.forEach(({ line, expect }, i) => {
    const shown = typeof line === "string" ? line.slice(0, 80) : `<${line.length} bytes>`;
    try {
      assertErrorAnswer(session.answers[i], ...expect);
    } catch (error) {
      throw new Error(`corpus line ${i} (${JSON.stringify(shown)}): ${(error as Error).message}`);
    }
  });
  assert.deepEqual(session.answers.slice(CORPUS.length), [PONG, OK, OK_TRUE]);
});

Deno.test("bad lines in mock mode get the same answers, and mock mode keeps working", async () => {
  const session = await runSession([
    { type: "set_mock", content: { secrets: { deep: JSON.parse("[".repeat(2000) + "]".repeat(2000)) } } },
    '{"type":"send_cv","content":{"referenceNumber":5}}',
    '{"type":"send_cv","content":[]}',
    `{"type":"send_cv","content":{"referenceNumber":"deep-cv","x":${deepObject}}}`,
    '{"type":"send_cv","content":{"referenceNumber":"deep-cv"}}',
    `{"type":"set_mock","content":{"secrets":{"deeper":${deepArray}}}}`,
    '{"type":"get_secret","content":{"key":"deeper","encryption_key":"e"}}', // an answer too deep to encode?
    '{"type":"get_users_secret","content":{"key":"deeper","encryption_key":"e"}}',
    '{"type":"ping"}',
  ]);
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.answers.length, 9);
  assert.equal(session.answers[0], OK);
  assertErrorAnswer(session.answers[1], SEND_CV_REFERENCE);
  assertErrorAnswer(session.answers[2], "send_cv: content must be an object");
  assert.equal(session.answers[3], OK_TRUE, "a deeply nested CV is accepted");
  assert.equal(session.answers[4], OK_FALSE);
  assert.equal(session.answers[5], OK);
  // Either the secret itself, or an error if it cannot be encoded: one valid line in both cases.
  const secret = parseAnswer(session.answers[6]);
  assert.ok(secret.type === "ok" || secret.type === "error");
  assertErrorAnswer(session.answers[7], "get_users_secret: ", "set_mock");
  assert.equal(session.answers[8], PONG);
});

Deno.test("error messages never quote the raw line", async () => {
  const marker = `zq${crypto.randomUUID().replaceAll("-", "")}`;
  const lines: (string | Uint8Array)[] = [
    `{"type":"ping","content":"${marker}" x}`,
    `{"type":"send_cv","content":{"referenceNumber":"${marker}"`,
    `${marker}{"type":"ping"}`,
    `{"type":"ping"}${marker}`,
    `{"type":"ping", ${marker}: 1}`,
    `{'type':'ping','content':'${marker}'}`,
    `{"type":"ping","content":"${marker}\\q"}`,
    `{"type":"ping","content":"${marker}`,
    `{"type":"ping","content":[1,2,,"${marker}"]}`,
    `{"type":"set_cached_reference","content":"${marker}\u0001"}`,
    concat([`{"type":"ping","content":"${marker}`, new Uint8Array([0xff]), '"}']),
    `{"type":"send_cv","content":{"referenceNumber":5,"name":"${marker}"}}`,
    `{"type":"send_cv","content":["${marker}"]}`,
    `{"type":"set_cached_reference","content":["${marker}"]}`,
    `{"type":"get_secret","content":{"key":"${marker}"}}`,
    `{"type":"set_mock","content":{"secrets":"${marker}"}}`,
    `{"type":"set_credentials","content":{"server_location":"${marker}","api_key_id":"i","api_key":"k"}}`,
    `{"type":"set_credentials","content":[{"server_location":"ftp://${marker}","api_key_id":"i","api_key":"k"}]}`,
    `{"type":"send_cv","content":{"referenceNumber":"${marker}","pad":"${"x".repeat(2000)}"}}`, // too long
    `{"type":"ping","content":"${marker}"}`, // valid: answered pong
  ];
  const session = await runSession(
    concat(lines.flatMap((line) => [bytesOf(line), "\n"])),
    { RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES: "1000" },
  );
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.answers.length, lines.length);
  session.answers.slice(0, -1).forEach((answer) => assertErrorAnswer(answer));
  assert.equal(session.answers.at(-1), PONG);
  assert.ok(!session.stdout.includes(marker), `stdout quotes input:\n${session.stdout}`);
  assert.ok(!session.stderr.includes(marker), `stderr quotes input:\n${session.stderr}`);
});

Deno.test("a line over RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES is answered with an error and skipped; the next line is served", async () => {
  const env = { RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES: "1000" };
  const long = `{"type":"set_cached_reference","content":"too-long","pad":"${"x".repeat(5000)}"}`;
  const session = await runSession([
    long,
    '{"type":"ping"}',
    '{"type":"has_cached_reference","content":"too-long"}',
  ], env);
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.answers.length, 3);
  assertErrorAnswer(
    session.answers[0],
    `${encoder.encode(long).length} bytes`,
    "RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES",
  );
  assert.equal(session.answers[1], PONG);
  assert.equal(session.answers[2], OK_FALSE, "the skipped line was not run");
});

Deno.test("an over-long line that arrives in several writes is skipped as a whole", async () => {
  await using client = spawnClient({ env: { RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES: "1000" } });
  await client.ready();
  const long = `{"type":"set_cached_reference","content":"split","pad":"${"y".repeat(5000)}"}`;
  // The first write also completes a normal line; the long line starts in it and ends in the last write.
  const text = `{"type":"ping"}\n${long}\n{"type":"ping"}\n`;
  const pieces = [text.slice(0, 700), text.slice(700, 1500), text.slice(1500, 2300), text.slice(2300)];
  for (const piece of pieces) {
    await client.sendRaw(piece);
    await new Promise((resolve) => setTimeout(resolve, 25)); // let each piece arrive on its own
  }
  assert.equal(await client.readLine(), PONG);
  assertErrorAnswer(await client.readLine(), "RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES");
  assert.equal(await client.readLine(), PONG);
  assert.deepEqual(await client.request({ type: "has_cached_reference", content: "split" }), {
    type: "ok",
    content: false,
  });
  const { status, rest } = await client.finish();
  assert.deepEqual(rest, []);
  assert.equal(status.code, 0);
});

Deno.test("the line limit counts bytes: exactly the limit is served (also with \\r\\n), one more byte is not", async () => {
  const limit = 1000;
  /** A set_cached_reference line of at least `bytes` bytes (exactly, for one-byte padding), padded in an ignored field. */
  const lineOf = (reference: string, bytes: number, padChar = "p") => {
    const bare = `{"type":"set_cached_reference","content":"${reference}","pad":""}`;
    const count = Math.ceil((bytes - encoder.encode(bare).length) / encoder.encode(padChar).length);
    return bare.replace('"pad":""', `"pad":"${padChar.repeat(count)}"`);
  };
  const multibyte = lineOf("edge-multibyte", limit + 1, "日"); // fewer than 1000 characters, more than 1000 bytes
  assert.ok(multibyte.length < limit);
  assert.equal(encoder.encode(lineOf("edge-at", limit)).length, limit);
  const input = [
    `${lineOf("edge-at", limit)}\n`,
    `${lineOf("edge-at-crlf", limit)}\r\n`,
    `${lineOf("edge-over", limit + 1)}\n`,
    `${lineOf("edge-over-crlf", limit + 1)}\r\n`,
    `${multibyte}\n`,
    ...["edge-at", "edge-at-crlf", "edge-over", "edge-over-crlf", "edge-multibyte"].map((reference) =>
      `{"type":"has_cached_reference","content":"${reference}"}\n`
    ),
  ].join("");
  const session = await runSession(encoder.encode(input), {
    RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES: String(limit),
  });
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.answers.length, 10);
  assert.equal(session.answers[0], OK);
  assert.equal(session.answers[1], OK);
  assertErrorAnswer(session.answers[2], "1001 bytes", "RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES");
  assertErrorAnswer(session.answers[3], "RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES");
  assertErrorAnswer(
    session.answers[4],
    `${encoder.encode(multibyte).length} bytes`,
    "RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES",
  );
  assert.deepEqual(session.answers.slice(5), [OK_TRUE, OK_TRUE, OK_FALSE, OK_FALSE, OK_FALSE]);
});

Deno.test("commands that need a server answer, before credentials, to call set_credentials; cache commands work", async () => {
  const session = await runSession([
    { type: "send_cv", content: { referenceNumber: "no-server-1" } },
    { type: "send_cv", content: { reference_number: "no-server-1" } },
    { type: "get_secret", content: { key: "k", encryption_key: "e" } },
    { type: "get_users_secret", content: { encryption_key: "e" } },
    { type: "get_user_secret", content: { encryption_key: "e" } },
    { type: "set_cached_reference", content: "no-server-2" },
    { type: "set_short_cached_reference", content: "no-server-3" },
    { type: "has_cached_reference", content: "no-server-2" },
    { type: "get_cached_reference", content: "no-server-3" },
    { type: "has_cached_reference", content: "no-server-1" }, // nothing was sent, nothing cached
  ]);
  assert.equal(session.code, 0, session.stderr);
  const types = ["send_cv", "send_cv", "get_secret", "get_users_secret", "get_user_secret"];
  types.forEach((type, i) =>
    assertErrorAnswer(session.answers[i], `${type}: `, "call set_credentials first")
  );
  assert.deepEqual(session.answers.slice(5), [OK, OK, OK_TRUE, OK_TRUE, OK_FALSE]);
});

const API_KEY = `key-${crypto.randomUUID()}`;
const server = (fields: Record<string, unknown> = {}) => ({
  server_location: "https://rtcv.example.com",
  api_key_id: "aaaaaaaaaaaaaaaaaaaaaaaa",
  api_key: API_KEY,
  ...fields,
});

Deno.test("invalid credentials answer errors naming the command and what is expected; the api_key never shows", async () => {
  const cases: [object, string[]][] = [
    [{ type: "set_credentials" }, ["set_credentials: content", "server_location, api_key_id, api_key"]],
    [{ type: "set_credentials", content: 5 }, ["set_credentials: content"]],
    [{ type: "set_credentials", content: [] }, ["set_credentials: content must name at least one server"]],
    [{ type: "set_credentials", content: server({ server_location: "rtcv.example.com" }) }, [
      "set_credentials: ",
    ]],
    [{ type: "set_credentials", content: server({ api_key: "" }) }, ["set_credentials: "]],
    [{ type: "set_credentials", content: server({ api_key_id: 7 }) }, ["set_credentials: "]],
    [
      { type: "set_credentials", content: [server({ primary: true }), server({ primary: true })] },
      ["set_credentials: content must mark exactly one of the 2 servers", '"primary": true', "found 2"],
    ],
    [
      { type: "set_credentials", content: [server(), server()] },
      ["set_credentials: content must mark exactly one of the 2 servers", "found 0"],
    ],
    [
      { type: "set_multiple_credentials", content: [server(), server()] },
      ["set_multiple_credentials: content must mark exactly one", "found 0"],
    ],
    [
      {
        type: "set_multiple_credentials",
        content: [server({ primary: true }), server({ server_location: "ftp://x" })],
      },
      ["set_multiple_credentials: content[1].server_location must start with http:// or https://"],
    ],
    [
      { type: "set_credentials", content: [server({ primary: true }), server({ api_key: "" })] },
      ["set_credentials: content[1].api_key must be a non-empty string"],
    ],
    [{ type: "set_credentials", content: [server({ primary: "yes" }), server()] }, ["set_credentials: "]],
  ];
  const session = await runSession(cases.map(([line]) => line));
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.answers.length, cases.length);
  cases.forEach(([, fragments], i) => assertErrorAnswer(session.answers[i], ...fragments));
  assert.ok(!session.stdout.includes(API_KEY), "the api_key is in stdout");
  assert.ok(!session.stderr.includes(API_KEY), "the api_key is in stderr");
});

// KNOWN BUG (reported): for a single server object, zod reports the union as a whole ("content must be a server
// object ... or an array of them") instead of the field, because the object branch of `credentialsSchema`
// (src/commands/session_commands.ts) ends in `.transform(...)`, which marks its issues as aborting; the same
// happens in the array form for a field of the wrong type (`"primary":"yes"`). Remove `ignore` once fixed.
Deno.test({
  name: "invalid credentials for a single server name the field",

  fn: async () => {
    const session = await runSession([
      { type: "set_credentials", content: server({ server_location: "rtcv.example.com" }) },
      { type: "set_credentials", content: server({ api_key: "" }) },
      { type: "set_credentials", content: [server({ server_location: "rtcv.example.com" })] },
      { type: "set_credentials", content: [server({ primary: "yes" }), server()] },
    ]);
    assertErrorAnswer(session.answers[0], "set_credentials: content.server_location", "http://");
    assertErrorAnswer(session.answers[1], "set_credentials: content.api_key", "non-empty");
    assertErrorAnswer(session.answers[2], "set_credentials: content[0].server_location", "http://");
    assertErrorAnswer(session.answers[3], "set_credentials: content[0].primary must be true or false");
  },
});

// KNOWN BUG (reported): `mockSchema` (src/commands/session_commands.ts) is a union of null, undefined and an
// object, so any bad content gets zod's generic "Invalid input". Remove `ignore` once fixed.
Deno.test({
  name: "set_mock with bad content says what is expected",

  fn: async () => {
    const session = await runSession([
      { type: "set_mock", content: 5 },
      { type: "set_mock", content: { secrets: 5 } },
    ]);
    assertErrorAnswer(session.answers[0], "set_mock: content must be", "secrets");
    assertErrorAnswer(session.answers[1], "set_mock: content.secrets must be an object");
  },
});

Deno.test("a failed set_credentials leaves mock mode as it was", async () => {
  const session = await runSession([
    { type: "set_mock", content: { secrets: { k: "v" } } },
    { type: "send_cv", content: { referenceNumber: "keep-1" } },
    { type: "set_credentials", content: server({ server_location: "not a url" }) },
    { type: "set_credentials", content: [server(), server()] },
    { type: "set_multiple_credentials", content: [] },
    { type: "get_secret", content: { key: "k", encryption_key: "e" } },
    { type: "send_cv", content: { referenceNumber: "keep-1" } },
    { type: "send_cv", content: { referenceNumber: "keep-2" } },
  ]);
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.answers[0], OK);
  assert.equal(session.answers[1], OK_TRUE);
  for (const answer of session.answers.slice(2, 5)) assertErrorAnswer(answer, "credentials: ");
  assert.deepEqual(session.answers.slice(5), ['{"type":"ok","content":"v"}', OK_FALSE, OK_TRUE]);
});
