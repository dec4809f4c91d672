/**
 * Live mode: secrets from the primary (wire encoding, shapes, errors), secrets never leaking into any output,
 * and the start-up configuration (`RTCV_SCRAPER_CLIENT_ENV`) with live servers, unreachable servers, invalid
 * documents and mock users.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DEFAULT_FAKE_KEY,
  FAKE_RTCV_VARIANTS,
  rtcvAuthHeader,
  sha512Hex,
  startFakeRtcv,
  unreachableRtcvUrl,
} from "./fake_rtcv.ts";
import { READY_LINE, runSession } from "./helpers/spawn_client.ts";
import {
  credentialsLine,
  error,
  liveDir,
  ok,
  readIfExists,
  received,
  SCAN_CV,
  scanRequests,
  SECRETS,
  sendCv,
  server,
  startLiveClient,
  waitFor,
} from "./live_helpers.ts";

const USERS = [{ username: "ada", password: "pw 1" }, { username: "bob", password: "p/w#2" }];

Deno.test("get_secret: segments go on the wire as RT-CV reads them (raw, not percent-decoded); secrets belong to the key", async () => {
  const other = { apiKeyId: "222222222222222222222222", apiKey: "second-scraper-key-000", roles: [1] };
  await using rtcv = await startFakeRtcv({ keys: [{ ...DEFAULT_FAKE_KEY }, other] });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  const key = "site+a=b:c@d,e;f$g&h";
  const encryptionKey = "enc=key+0123456789";
  rtcv.setSecret(key, encryptionKey, { token: "t-1", nested: [1, null] });
  rtcv.setSecret("a/b c?d#", encryptionKey, { unreachable: true });

  assert.match(
    await error(client, { type: "get_secret", content: { key, encryption_key: encryptionKey } }),
    /set_credentials first/,
  );
  await ok(client, { type: "set_credentials", content: server(rtcv) });
  assert.deepEqual(
    await ok(client, { type: "get_secret", content: { key, encryption_key: encryptionKey } }),
    { token: "t-1", nested: [1, null] },
  );
  const requests = rtcv.requestsTo(SECRETS);
  assert.equal(requests.length, 1);
  assert.equal(requests[0].method, "GET");
  assert.equal(requests[0].path, `/api/v1/secrets/myKey/${key}/${encryptionKey}`);
  assert.equal(
    requests[0].authorization,
    await rtcvAuthHeader(DEFAULT_FAKE_KEY.apiKeyId, DEFAULT_FAKE_KEY.apiKey),
  );
  // What a path cannot carry is percent-encoded; RT-CV looks that text up as it is, so it finds nothing.
  const unreachable = await error(client, {
    type: "get_secret",
    content: { key: "a/b c?d#", encryption_key: encryptionKey },
  });
  assert.match(unreachable, /404: item not found/);
  assert.equal(
    rtcv.requestsTo(SECRETS).at(-1)?.path,
    `/api/v1/secrets/myKey/a%2Fb%20c%3Fd%23/${encryptionKey}`,
  );

  // Another api key does not see this key's secrets.
  await ok(client, {
    type: "set_credentials",
    content: { ...server(rtcv), api_key_id: other.apiKeyId, api_key: other.apiKey },
  });
  assert.match(
    await error(client, { type: "get_secret", content: { key, encryption_key: encryptionKey } }),
    /404: item not found/,
  );
});

Deno.test("get_users_secret and get_user_secret: default keys, custom keys, shapes", async () => {
  await using rtcv = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  const enc = "encryption-key-0001";
  rtcv.setSecret("users", "users-key-0123456789", USERS);
  rtcv.setSecret("user", "user-key-0123456789", USERS[0]);
  rtcv.setSecret("team+logins", enc, USERS);
  rtcv.setSecret("not-a-list", enc, USERS[0]);
  rtcv.setSecret("not-a-user", enc, USERS);
  await ok(client, { type: "set_credentials", content: server(rtcv) });

  assert.deepEqual(
    await ok(client, { type: "get_users_secret", content: { encryption_key: "users-key-0123456789" } }),
    USERS,
  );
  assert.equal(rtcv.requestsTo(SECRETS).at(-1)?.path, "/api/v1/secrets/myKey/users/users-key-0123456789");
  assert.deepEqual(
    await ok(client, { type: "get_user_secret", content: { encryption_key: "user-key-0123456789" } }),
    USERS[0],
  );
  assert.equal(rtcv.requestsTo(SECRETS).at(-1)?.path, "/api/v1/secrets/myKey/user/user-key-0123456789");
  assert.deepEqual(
    await ok(client, { type: "get_users_secret", content: { key: "team+logins", encryption_key: enc } }),
    USERS,
  );
  assert.equal(rtcv.requestsTo(SECRETS).at(-1)?.path, `/api/v1/secrets/myKey/team+logins/${enc}`);

  const notList = await error(client, {
    type: "get_users_secret",
    content: { key: "not-a-list", encryption_key: enc },
  });
  assert.match(notList, /must be a list of \{"username":"...","password":"..."\}/);
  assert.match(notList, /not-a-list/);
  assert.ok(notList.includes(rtcv.origin), notList);
  const notUser = await error(client, {
    type: "get_user_secret",
    content: { key: "not-a-user", encryption_key: enc },
  });
  assert.match(notUser, /must be an object \{"username":"...","password":"..."\}/);

  assert.match(await error(client, { type: "get_secret", content: { encryption_key: "e" } }), /key/);
  assert.match(await error(client, { type: "get_users_secret", content: {} }), /encryption_key/);
  assert.match(await error(client, { type: "get_user_secret", content: "user" }), /encryption_key/);
});

Deno.test("get_secret: a wrong, short or unknown key is an error with the server's message, not retried", async () => {
  await using rtcv = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  rtcv.setSecret("site", "right-encryption-key", { a: 1 });
  await ok(client, { type: "set_credentials", content: server(rtcv) });

  const wrong = await error(client, {
    type: "get_secret",
    content: { key: "site", encryption_key: "wrong-encryption-key" },
  });
  assert.match(wrong, /^get_secret: primary /);
  assert.ok(wrong.includes(rtcv.origin), wrong);
  assert.match(wrong, /500: cipher: message authentication failed/);
  assert.ok(!wrong.includes("wrong-encryption-key"), wrong);
  assert.equal(rtcv.requestsTo(SECRETS).length, 1, "a 500 refusal is not retried");

  const wrongUsers = await error(client, {
    type: "get_users_secret",
    content: { key: "site", encryption_key: "wrong-encryption-key" },
  });
  assert.match(wrongUsers, /cipher: message authentication failed/);
  assert.match(
    await error(client, { type: "get_secret", content: { key: "site", encryption_key: "short" } }),
    /500: encryption key must be at least 16 characters/,
  );
  assert.match(
    await error(client, { type: "get_secret", content: { key: "nope", encryption_key: "x" } }),
    /404: item not found/,
  );
});

Deno.test("secrets never leak: api keys and their hashes are in no output, log or store, failures included", async () => {
  const apiKey = "LeakCanary-ApiKey-7f3e9b21c4";
  const wrongKey = "LeakCanary-WrongKey-d8a61e";
  const keyId = "abcdefabcdefabcdefabcdef";
  const hash = await sha512Hex(apiKey);
  const wrongHash = await sha512Hex(wrongKey);
  await using primary = await startFakeRtcv({ keys: [{ apiKeyId: keyId, apiKey, roles: [1] }] });
  await using mirror = await startFakeRtcv({ keys: [{ apiKeyId: keyId, apiKey, roles: [1] }] });
  await using dir = await liveDir();
  primary.setSecret("site", "enc-key-0123456789", { v: 1 });
  // Servers that echo credentials back in their error answers (JSON and non-JSON).
  primary.failNext(1, 400, { error: `rejected Basic ${keyId}:${hash} (${apiKey})` }, { route: SCAN_CV });
  primary.failNext(4, 502, `<html>proxy saw ${apiKey} / ${hash}</html>`, { route: SCAN_CV, retryAfter: "0" });
  mirror.failNext(Infinity, 503, { error: `mirror saw ${hash}` }, { route: SCAN_CV, retryAfter: "0" });

  const good = { server_location: primary.url, api_key_id: keyId, api_key: apiKey, primary: true };
  const goodMirror = { server_location: mirror.url, api_key_id: keyId, api_key: apiKey, primary: false };
  const lines: (string | object)[] = [
    { type: "set_credentials", content: { ...good, api_key: wrongKey } },
    `{"type":"set_credentials","content":{"server_location":"${primary.url}","api_key":"${apiKey}"`,
    `{"type":"set_credentials","content":{"server_location":"ftp://x","api_key_id":"${keyId}","api_key":"${apiKey}"}}`,
    { type: "set_credentials", content: [good, { ...goodMirror, api_key: wrongKey }] },
    { type: "no_such_command", content: { api_key: apiKey } },
    { type: "set_credentials", content: [good, goodMirror] },
    sendCv("leak-1"),
    sendCv("leak-2"),
    sendCv("leak-3"),
    { type: "get_secret", content: { key: "site", encryption_key: "wrong-key-0123456789" } },
    { type: "get_secret", content: { key: "site", encryption_key: "enc-key-0123456789" } },
  ];
  // One line at a time, so the fake's queued failures meet the send_cv lines in order.
  await using client = await startLiveClient(dir, {
    RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "1000",
    RTCV_SCRAPER_CLIENT_DRAIN_MS: "200",
    LOG_SCRAPER_CLIENT_INPUT: "true",
    ENABLE_SCRAPER_CLIENT_LOG: "true",
  });
  const answers: string[] = [];
  for (const line of lines) {
    await client.send(line);
    answers.push(await client.readLine());
  }
  const finished = await client.finish();
  assert.equal(finished.status.code, 0, finished.stderr);
  const stdout = READY_LINE + "\n" + answers.join("\n") + "\n" + finished.restText;
  const types = answers.map((line) => JSON.parse(line).type);
  assert.deepEqual(types, [
    "error",
    "error",
    "error",
    "error",
    "error",
    "ok",
    "error",
    "error",
    "ok",
    "error",
    "ok",
  ]);
  // The servers' echoes were redacted, not dropped: the status and the rest of the message are there.
  assert.match(answers[6], /answered 400: rejected \[redacted\]/);
  assert.match(answers[7], /answered 502 with a non-JSON body: <html>proxy saw/);

  const inputLog = await readIfExists(join(dir.path, "scraper_client_input.log"));
  const debugLog = await readIfExists(join(dir.path, "scraper_client.log"));
  assert.ok(inputLog.split("\n").length > lines.length, "the input log has every line");
  assert.match(inputLog, /<redacted>/);
  assert.ok(debugLog.length > 0, "the debug log was written");
  assert.match(debugLog, /outbox: delivery of .* failed/);

  let store = "";
  for (const name of await Array.fromAsync(Deno.readDir(dir.path))) {
    if (name.name.startsWith("cache.kv")) {
      store += new TextDecoder("latin1").decode(await Deno.readFile(join(dir.path, name.name)));
    }
  }
  assert.ok(store.includes("leak-1"), "the outbox holds the CV for the mirror");

  const outputs = {
    stdout,
    stderr: finished.stderr,
    "scraper_client.log": debugLog,
    "scraper_client_input.log": inputLog,
    "the Kv store": store,
  };
  const secrets = { apiKey, wrongKey, hash, wrongHash, authorization: `${keyId}:${hash}` };
  for (const [where, text] of Object.entries(outputs)) {
    for (const [what, secret] of Object.entries(secrets)) {
      assert.ok(!text.includes(secret), `${what} appears in ${where}`);
    }
  }
});

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`start-up config with primary_server and alternative_servers: ready, then send_cv without set_credentials [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant, hasMatches: true, scannedReferenceNrs: ["warm-1"] });
    await using mirror = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    const config = `{
    // JSONC: comments and trailing commas are fine
    "primary_server": ${JSON.stringify(primary.wireCredentials())},
    "alternative_servers": [${JSON.stringify(mirror.wireCredentials())},],
  }`;
    await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_ENV: config });
    // The checks ran before the ready line.
    assert.equal(primary.requestsTo("/api/v1/auth/keyinfo").length, 1);
    assert.equal(mirror.requestsTo("/api/v1/auth/keyinfo").length, 1);

    // The newest server has no warm-up route: nothing was cached from it.
    assert.equal(await ok(client, { type: "has_cached_reference", content: "warm-1" }), variant === "older");
    assert.equal(await ok(client, sendCv("cfg-1")), true);
    await waitFor(() => received(mirror, "cfg-1") === 1, 3000, "the alternative server gets the CV");
    assert.equal(received(primary, "cfg-1"), 1);
    assert.equal(await ok(client, sendCv("cfg-1")), false);
    assert.equal(scanRequests(primary, "cfg-1"), 1);

    // A later set_credentials line replaces the configured servers.
    await using other = await startFakeRtcv({ variant });
    await ok(client, { type: "set_credentials", content: server(other) });
    assert.equal(await ok(client, sendCv("cfg-2")), false);
    assert.equal(received(other, "cfg-2"), 1);
    assert.equal(scanRequests(primary, "cfg-2"), 0);
    assert.equal((await client.finish()).status.code, 0);
    assert.equal(scanRequests(mirror, "cfg-2"), 0);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`start-up config naming an unreachable server: exit 1 before the ready line, naming server and step [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    const gone = await unreachableRtcvUrl();
    const config = JSON.stringify({
      primary_server: primary.wireCredentials(),
      alternative_servers: [{ ...primary.wireCredentials(), server_location: gone }],
    });
    const started = performance.now();
    const result = await runSession([{ type: "ping" }], {
      RTCV_SCRAPER_CLIENT_ENV: config,
      RTCV_SCRAPER_CLIENT_KV: dir.kv,
      RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "300",
    }, { cwd: dir.path });
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.ready, null);
    assert.equal(result.stdout, "", "nothing on stdout, not even the ready line");
    assert.ok(result.stderr.includes(gone), result.stderr);
    assert.match(result.stderr, /health check/);
    assert.match(result.stderr, /could not be reached/);
    assert.match(result.stderr, /4 attempts/, "after the retries");
    assert.ok(!result.stderr.includes(DEFAULT_FAKE_KEY.apiKey));
    assert.ok(performance.now() - started < 8000);
  });
}

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`start-up config with a key the server refuses: exit 1 naming the server and the key check [${variant}]`, async () => {
    await using primary = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    const config = JSON.stringify({
      primary_server: { ...primary.wireCredentials(), api_key: "not-the-key-123" },
    });
    const result = await runSession([], { RTCV_SCRAPER_CLIENT_ENV: config, RTCV_SCRAPER_CLIENT_KV: dir.kv }, {
      cwd: dir.path,
    });
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout, "");
    assert.ok(result.stderr.includes(primary.origin), result.stderr);
    assert.match(result.stderr, /key check/);
    assert.match(result.stderr, /401/);
    assert.ok(!result.stderr.includes("not-the-key-123"), result.stderr);
  });
}

Deno.test("invalid start-up config: exit 2 before the ready line, naming the field, no server contacted", async () => {
  await using primary = await startFakeRtcv();
  await using dir = await liveDir();
  const cases: [unknown, RegExp][] = [
    [
      { primary_server: { ...primary.wireCredentials(), server_location: "ftp://x" } },
      /primary_server\.server_location/,
    ],
    [
      { primary_server: primary.wireCredentials(), alternative_servers: [{ server_location: primary.url }] },
      /alternative_servers\[0\]\.api_key_id/,
    ],
    [{ alternative_servers: [primary.wireCredentials()] }, /alternative_servers.*primary_server/],
    [{ mock_mode: true, mock_users: [{ username: "x" }] }, /mock_users\[0\]\.password/],
  ];
  for (const [document, field] of cases) {
    const result = await runSession([{ type: "ping" }], {
      RTCV_SCRAPER_CLIENT_ENV: JSON.stringify(document),
      RTCV_SCRAPER_CLIENT_KV: dir.kv,
    }, { cwd: dir.path });
    assert.equal(result.code, 2, `${JSON.stringify(document)}: ${result.stderr}`);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, field);
    assert.match(result.stderr, /RTCV_SCRAPER_CLIENT_ENV/);
    assert.ok(!result.stderr.includes(DEFAULT_FAKE_KEY.apiKey), result.stderr);
  }
  assert.equal(primary.requests.length, 0);
});

Deno.test("start-up config in mock mode with mock_users: the user secrets answer them, no server involved", async () => {
  await using dir = await liveDir();
  const config = JSON.stringify({
    mock_mode: true,
    mock_users: USERS,
    mock_secrets: { other: { x: 1 } },
  });
  const result = await runSession(
    [
      { type: "get_users_secret", content: { encryption_key: "anything" } },
      { type: "get_user_secret", content: { encryption_key: "anything" } },
      { type: "get_secret", content: { key: "other", encryption_key: "anything" } },
      sendCv("mock-cfg-1"),
      sendCv("mock-cfg-1"),
    ],
    { RTCV_SCRAPER_CLIENT_ENV: config, RTCV_SCRAPER_CLIENT_KV: dir.kv },
    { cwd: dir.path },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.ready, '{"type":"ready","content":"mock mode (configuration)"}');
  assert.deepEqual(result.answers.map((line) => JSON.parse(line)), [
    { type: "ok", content: USERS },
    { type: "ok", content: USERS[0] },
    { type: "ok", content: { x: 1 } },
    { type: "ok", content: true },
    { type: "ok", content: false },
  ]);
});

for (const variant of FAKE_RTCV_VARIANTS) {
  Deno.test(`start-up config: mock_secrets win over mock_users; a later set_credentials replaces mock mode [${variant}]`, async () => {
    await using rtcv = await startFakeRtcv({ variant });
    await using dir = await liveDir();
    const config = JSON.stringify({ mock_mode: true, mock_users: USERS, mock_secrets: { user: USERS[1] } });
    await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_ENV: config });
    assert.deepEqual(
      await ok(client, { type: "get_user_secret", content: { encryption_key: "x" } }),
      USERS[1],
    );
    await ok(client, credentialsLine(rtcv));
    assert.equal(await ok(client, sendCv("after-mock")), false);
    assert.equal(received(rtcv, "after-mock"), 1);
  });
}
