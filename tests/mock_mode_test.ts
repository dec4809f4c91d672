/**
 * Mock mode (`set_mock`) as a scraper tries things out with it: CVs "match" once, secrets come from `set_mock`,
 * and the persistent store of live mode is never read or written. Every test spawns the real client.
 */
import assert from "node:assert/strict";
import {
  assertErrorAnswer,
  OK,
  OK_FALSE,
  OK_TRUE,
  PONG,
  runSession,
  spawnClient,
  tempDir,
} from "./helpers/spawn_client.ts";

const okWith = (content: unknown) => JSON.stringify({ type: "ok", content });

const sendCv = (cv: Record<string, unknown>) => ({ type: "send_cv", content: cv });
const has = (reference: string) => ({ type: "has_cached_reference", content: reference });

Deno.test("send_cv answers true for a new reference number, then false for the same one", async () => {
  await using client = spawnClient();
  await client.ready();
  assert.deepEqual(await client.request({ type: "set_mock", content: {} }), { type: "ok" });
  const cv = {
    referenceNumber: "mock-1",
    presentation: "Hello",
    educations: [],
    languages: [{ name: "nl" }],
  };
  assert.deepEqual(await client.request(sendCv(cv)), { type: "ok", content: true });
  assert.deepEqual(await client.request(sendCv(cv)), { type: "ok", content: false });
  assert.deepEqual(await client.request(sendCv({ referenceNumber: "mock-1" })), {
    type: "ok",
    content: false,
  });
  assert.deepEqual(await client.request(sendCv({ referenceNumber: "mock-2" })), {
    type: "ok",
    content: true,
  });
  assert.deepEqual(await client.request(has("mock-1")), { type: "ok", content: true });
  assert.deepEqual(await client.request({ type: "get_cached_reference", content: "mock-2" }), {
    type: "ok",
    content: true,
  });
  assert.deepEqual(await client.request(has("mock-3")), { type: "ok", content: false });
  const { status } = await client.finish();
  assert.equal(status.code, 0);
});

Deno.test("the same CV pipelined twice in one write is sent once: true, then false", async () => {
  const session = await runSession([
    { type: "set_mock" },
    sendCv({ referenceNumber: "twice" }),
    sendCv({ referenceNumber: "twice" }),
    has("twice"),
    has("pipelined-before-set"),
    { type: "set_cached_reference", content: "pipelined-before-set" },
    has("pipelined-before-set"),
    has("pipelined-before-send"),
    sendCv({ referenceNumber: "pipelined-before-send" }),
    has("pipelined-before-send"),
  ]);
  assert.equal(session.code, 0, session.stderr);
  assert.deepEqual(session.answers, [
    OK,
    OK_TRUE,
    OK_FALSE,
    OK_TRUE,
    OK_FALSE,
    OK,
    OK_TRUE,
    OK_FALSE,
    OK_TRUE,
    OK_TRUE,
  ]);
});

Deno.test("reference_number is accepted as an alias of referenceNumber", async () => {
  const session = await runSession([
    { type: "set_mock" },
    sendCv({ reference_number: "alias-1", presentation: "Hello" }),
    sendCv({ referenceNumber: "alias-1" }),
    sendCv({ reference_number: "alias-1" }),
    has("alias-1"),
    sendCv({ referenceNumber: "alias-2" }),
    sendCv({ reference_number: "alias-2" }),
    sendCv({ reference_number: "" }),
  ]);
  assert.equal(session.code, 0, session.stderr);
  assert.deepEqual(session.answers.slice(0, 7), [
    OK,
    OK_TRUE,
    OK_FALSE,
    OK_FALSE,
    OK_TRUE,
    OK_TRUE,
    OK_FALSE,
  ]);
  assertErrorAnswer(session.answers[7], "send_cv: content.reference_number must be a non-empty string");
});

Deno.test("mock mode: cache commands share the mock's cache with send_cv", async () => {
  await using client = spawnClient();
  await client.ready();
  const steps: [object, object][] = [
    [{ type: "set_mock" }, { type: "ok" }],
    [{ type: "set_cached_reference", content: "cached-first" }, { type: "ok" }],
    [sendCv({ referenceNumber: "cached-first" }), { type: "ok", content: false }], // a cached one answers false
    [{ type: "set_short_cached_reference", content: "short-first" }, { type: "ok" }],
    [sendCv({ referenceNumber: "short-first" }), { type: "ok", content: false }],
    [has("short-first"), { type: "ok", content: true }],
    [sendCv({ referenceNumber: "sent-first" }), { type: "ok", content: true }],
    [{ type: "set_short_cached_reference", content: "sent-first" }, { type: "ok" }],
    [has("sent-first"), { type: "ok", content: true }],
  ];
  for (const [command, answer] of steps) {
    assert.deepEqual(await client.request(command), answer, JSON.stringify(command));
  }
  const { status } = await client.finish();
  assert.equal(status.code, 0);
});

// KNOWN BUG (reported): a cache write pipelined before a send_cv of the same number is overtaken by it. The cache
// commands (src/commands/cache_commands.ts) await `session.cacheForCommands()` before they write, while send_cv
// reads the cache at once, so the read reaches the store first. Remove `ignore` once fixed.
Deno.test({
  name: "mock mode: a set_cached_reference pipelined before send_cv of the same number makes it answer false",

  fn: async () => {
    const session = await runSession([
      { type: "set_mock" },
      { type: "set_cached_reference", content: "cached-first" },
      sendCv({ referenceNumber: "cached-first" }),
      { type: "set_short_cached_reference", content: "short-first" },
      sendCv({ referenceNumber: "short-first" }),
    ]);
    assert.deepEqual(session.answers, [OK, OK, OK_FALSE, OK, OK_FALSE]);
  },
});

Deno.test("get_secret returns the mock secret with that key, or null", async () => {
  const secrets = {
    api: { token: "abc" },
    list: [1, "two", null],
    number: 42,
    text: "plain",
    falsy: false,
    nothing: null,
    "with/slash and space?#": "odd key",
  };
  const get = (key: string) => ({ type: "get_secret", content: { key, encryption_key: "any" } });
  const session = await runSession([
    { type: "set_mock", content: { secrets } },
    ...Object.keys(secrets).map(get),
    get("missing"),
    { type: "get_secret", content: { key: "api" } },
  ]);
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.answers[0], OK);
  assert.deepEqual(session.answers.slice(1, -2), Object.values(secrets).map(okWith));
  assert.equal(session.answers.at(-2), okWith(null));
  assertErrorAnswer(session.answers.at(-1)!, "get_secret: content.encryption_key is missing");
});

Deno.test("get_users_secret and get_user_secret read the keys `users` and `user` unless told otherwise", async () => {
  const users = [{ username: "foo", password: "bar" }, { username: "baz", password: "" }];
  const user = { username: "solo", password: "pw" };
  const session = await runSession([
    {
      type: "set_mock",
      content: { secrets: { users, user, team: [user], admin: users[0], empty: [] } },
    },
    { type: "get_users_secret", content: { encryption_key: "e" } },
    { type: "get_user_secret", content: { encryption_key: "e" } },
    { type: "get_users_secret", content: { key: "team", encryption_key: "e" } },
    { type: "get_user_secret", content: { key: "admin", encryption_key: "e" } },
    { type: "get_users_secret", content: { key: "empty", encryption_key: "e" } },
    { type: "get_users_secret", content: { key: "users" } },
  ]);
  assert.equal(session.code, 0, session.stderr);
  assert.deepEqual(session.answers.slice(0, 6), [
    OK,
    okWith(users),
    okWith(user),
    okWith([user]),
    okWith(users[0]),
    okWith([]),
  ]);
  assertErrorAnswer(session.answers[6], "get_users_secret: content.encryption_key is missing");
});

Deno.test("a mock secret of the wrong shape, or none, answers an error that says how to provide it in set_mock", async () => {
  const session = await runSession([
    {
      type: "set_mock",
      content: {
        secrets: {
          users: { username: "a", password: "b" },
          user: [{ username: "a", password: "b" }],
          bad: [{ username: 1 }],
        },
      },
    },
    { type: "get_users_secret", content: { encryption_key: "e" } },
    { type: "get_user_secret", content: { encryption_key: "e" } },
    { type: "get_users_secret", content: { key: "bad", encryption_key: "e" } },
    { type: "get_user_secret", content: { key: "absent", encryption_key: "e" } },
    { type: "set_mock" }, // no secrets at all
    { type: "get_users_secret", content: { encryption_key: "e" } },
    { type: "get_user_secret", content: { encryption_key: "e" } },
  ]);
  assert.equal(session.code, 0, session.stderr);
  const howTo = (key: string) => `{"type":"set_mock","content":{"secrets":{"${key}":`;
  assert.equal(session.answers[0], OK);
  assertErrorAnswer(
    session.answers[1],
    'get_users_secret: the mock secret "users" must be a list',
    howTo("users"),
  );
  assertErrorAnswer(
    session.answers[2],
    'get_user_secret: the mock secret "user" must be an object',
    howTo("user"),
  );
  assertErrorAnswer(session.answers[3], 'get_users_secret: the mock secret "bad"', howTo("bad"));
  assertErrorAnswer(session.answers[4], 'get_user_secret: the mock secret "absent"', howTo("absent"));
  assert.equal(session.answers[5], OK);
  assertErrorAnswer(session.answers[6], "get_users_secret: ", howTo("users"));
  assertErrorAnswer(session.answers[7], "get_user_secret: ", howTo("user"));
});

Deno.test("set_mock with null or without content means {}; a later set_mock replaces the secrets", async () => {
  const get = (key: string) => ({ type: "get_secret", content: { key, encryption_key: "e" } });
  const session = await runSession([
    { type: "set_mock", content: null },
    get("a"),
    sendCv({ referenceNumber: "null-mock" }),
    { type: "set_mock", content: { secrets: { a: 1 } } },
    get("a"),
    { type: "set_mock" },
    get("a"),
    { type: "set_mock", content: {} },
    { type: "set_mock", content: { secrets: { b: 2 } } },
    get("a"),
    get("b"),
  ]);
  assert.equal(session.code, 0, session.stderr);
  assert.deepEqual(session.answers, [
    OK,
    okWith(null),
    OK_TRUE,
    OK,
    okWith(1),
    OK,
    okWith(null),
    OK,
    OK,
    okWith(null),
    okWith(2),
  ]);
});

Deno.test("a mock session never creates or writes the persistent store", async () => {
  await using dir = await tempDir();
  const store = `${dir.path}/store.kv`;
  const mock = await runSession(
    [
      { type: "set_mock" },
      sendCv({ referenceNumber: "mock-only-1" }),
      { type: "set_cached_reference", content: "mock-only-2" },
      { type: "set_short_cached_reference", content: "mock-only-3" },
      has("mock-only-1"),
      { type: "ping" },
    ],
    { RTCV_SCRAPER_CLIENT_KV: store },
    { cwd: dir.path },
  );
  assert.equal(mock.code, 0, mock.stderr);
  assert.deepEqual(mock.answers, [OK, OK_TRUE, OK, OK, OK_TRUE, PONG]);
  const files = [...Deno.readDirSync(dir.path)].map((entry) => entry.name);
  assert.deepEqual(
    files,
    [],
    "nothing written: neither the store nor the default store in the working directory",
  );

  const live = await runSession(
    ["mock-only-1", "mock-only-2", "mock-only-3"].map(has),
    { RTCV_SCRAPER_CLIENT_KV: store },
  );
  assert.deepEqual(live.answers, [OK_FALSE, OK_FALSE, OK_FALSE]);
});

Deno.test("cache commands before set_mock use the persistent store, which mock mode neither reads nor writes", async () => {
  await using dir = await tempDir();
  const env = { RTCV_SCRAPER_CLIENT_KV: `${dir.path}/store.kv` };
  const first = await runSession([
    { type: "set_cached_reference", content: "live-1" },
    has("live-1"),
    { type: "set_mock" },
    has("live-1"), // the mock's own cache
    sendCv({ referenceNumber: "live-1" }), // so it counts as new
    { type: "set_cached_reference", content: "mock-1" },
  ], env);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(first.answers, [OK, OK_TRUE, OK, OK_FALSE, OK_TRUE, OK]);

  const second = await runSession([has("live-1"), has("mock-1")], env);
  assert.deepEqual(second.answers, [OK_TRUE, OK_FALSE]);
});
