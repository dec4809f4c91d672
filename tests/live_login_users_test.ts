/**
 * Live mode, login users (PROTOCOL.md section 7): the scraper's key pair from set_credentials, the
 * environment or the config; its check against the primary's registered public key; `get_login_users` with
 * passwords sealed by the fake the way RT-CV does (libsodium's crypto_box_seal, 32 random bytes in front);
 * the secrets commands falling back to the login users on the newest server; mock login users; and the
 * private key kept out of every output.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DEFAULT_FAKE_KEY,
  type FakeRtcv,
  type FakeRtcvKey,
  ROLES,
  rtcvAuthHeader,
  sealPassword,
  startFakeRtcv,
} from "./fake_rtcv.ts";
import { READY_LINE } from "./helpers/spawn_client.ts";
import {
  error,
  liveDir,
  newKeyPair,
  ok,
  readIfExists,
  SCRAPER_USERS,
  SECRETS,
  sendCv,
  server,
  startLiveClient,
  storeText,
  type TestKeyPair,
} from "./live_helpers.ts";

const ADMIN: FakeRtcvKey = {
  apiKeyId: "aaaaaaaaaaaaaaaaaaaaaaaa",
  apiKey: "dashboard-admin-key-0000",
  roles: [ROLES.admin],
};
const SCRAPER_ID = DEFAULT_FAKE_KEY.apiKeyId;
const SET_PUBLIC_KEY = `${SCRAPER_USERS}${SCRAPER_ID}/setPublicKey`;

/** A newest-variant fake with the scraper key and an admin (dashboard) key. */
function newest(): Promise<FakeRtcv> {
  return startFakeRtcv({ variant: "newest", keys: [{ ...DEFAULT_FAKE_KEY, roles: [1] }, { ...ADMIN }] });
}

/** Stores a login user through the server's own route, as the dashboard does (the server seals it). */
async function addUserAsAdmin(rtcv: FakeRtcv, username: string, password: string): Promise<Response> {
  const response = await fetch(`${rtcv.url}${SCRAPER_USERS}${SCRAPER_ID}`, {
    method: "PATCH",
    headers: {
      authorization: await rtcvAuthHeader(ADMIN.apiKeyId, ADMIN.apiKey),
      "content-type": "application/json",
    },
    body: JSON.stringify({ username, password }),
  });
  await response.body?.cancel();
  return response;
}

function withPair(rtcv: FakeRtcv, pair: TestKeyPair): object {
  return { type: "set_credentials", content: { ...server(rtcv), ...pair } };
}

Deno.test("key pair in set_credentials, newest server without a key: registered once; get_login_users opens the passwords", async () => {
  await using rtcv = await newest();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  const pair = newKeyPair();

  const before = await addUserAsAdmin(rtcv, "too-early", "x");
  assert.equal(before.status, 400, "the server refuses users before a public key is set");

  await ok(client, withPair(rtcv, pair));
  const registrations = rtcv.requestsTo(SET_PUBLIC_KEY);
  assert.equal(registrations.length, 1);
  assert.equal(registrations[0].method, "PATCH");
  assert.deepEqual(registrations[0].body, { publicKey: pair.public_key });
  assert.equal(rtcv.usersOf().publicKey, pair.public_key);

  assert.equal((await addUserAsAdmin(rtcv, "ada", "pw 1")).status, 200);
  assert.equal((await addUserAsAdmin(rtcv, "bob", "pässwörd/#✓")).status, 200);
  assert.deepEqual(await ok(client, { type: "get_login_users" }), [
    { username: "ada", password: "pw 1" },
    { username: "bob", password: "pässwörd/#✓" },
  ]);

  // Setting the same credentials again finds the key registered: nothing is replaced.
  await ok(client, withPair(rtcv, pair));
  assert.equal(rtcv.requestsTo(SET_PUBLIC_KEY).length, 1);
  assert.equal(rtcv.usersOf().users.length, 2);
  assert.equal(await ok(client, sendCv("with-users")), false, "CVs still go out");
});

Deno.test("key pair from RTCV_SCRAPER_CLIENT_PUBLIC_KEY / _PRIVATE_KEY and from the config's public_key / private_key", async () => {
  for (const source of ["env", "config"] as const) {
    await using rtcv = await newest();
    await using dir = await liveDir();
    const pair = newKeyPair();
    rtcv.setScraperPublicKey(pair.public_key);
    rtcv.addLoginUser("carol", `secret-${source}`);
    const env: Record<string, string> = source === "env"
      ? { RTCV_SCRAPER_CLIENT_PUBLIC_KEY: pair.public_key, RTCV_SCRAPER_CLIENT_PRIVATE_KEY: pair.private_key }
      : { RTCV_SCRAPER_CLIENT_ENV: JSON.stringify({ primary_server: rtcv.wireCredentials(), ...pair }) };
    await using client = await startLiveClient(dir, env);
    if (source === "env") await ok(client, { type: "set_credentials", content: server(rtcv) });
    assert.deepEqual(await ok(client, { type: "get_login_users" }), [
      { username: "carol", password: `secret-${source}` },
    ]);
    assert.equal(rtcv.requestsTo(SET_PUBLIC_KEY).length, 0, `${source}: the registered key is left alone`);
  }
});

Deno.test("a different public key on the server is an error; the client never replaces it", async () => {
  await using rtcv = await newest();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  const registered = newKeyPair();
  rtcv.setScraperPublicKey(registered.public_key);
  rtcv.addLoginUser("ada", "pw");
  const mine = newKeyPair();

  const message = await error(client, withPair(rtcv, mine));
  assert.match(message, /public key/);
  assert.match(message, /differs/);
  assert.match(message, /deletes the stored users/);
  assert.ok(message.includes(rtcv.origin), message);
  assert.ok(!message.includes(mine.private_key), "never the private key");
  assert.equal(rtcv.requestsTo(SET_PUBLIC_KEY).length, 0, "no setPublicKey request");
  assert.equal(rtcv.usersOf().publicKey, registered.public_key);
  assert.equal(rtcv.usersOf().users.length, 1, "the stored users are still there");
  assert.match(await error(client, sendCv("x")), /set_credentials first/, "the session did not change");
});

Deno.test("a key pair that does not work, or is not base64 of 32 bytes, is an error before any server is contacted", async () => {
  await using rtcv = await newest();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  const a = newKeyPair();
  const b = newKeyPair();
  const cases: [TestKeyPair, RegExp][] = [
    [{ public_key: a.public_key, private_key: b.private_key }, /key pair .*does not work/],
    [{ public_key: "bm90IDMyIGJ5dGVz", private_key: a.private_key }, /public key .*base64 of 32 bytes/],
    [{ public_key: a.public_key, private_key: "%%%not base64%%%" }, /private key .*base64 of 32 bytes/],
  ];
  for (const [pair, expected] of cases) {
    const message = await error(client, withPair(rtcv, pair));
    assert.match(message, expected);
    assert.ok(!message.includes(pair.private_key), message);
  }
  const half = await error(client, {
    type: "set_credentials",
    content: { ...server(rtcv), public_key: a.public_key },
  });
  assert.match(half, /public_key and private_key must be given together/);
  assert.equal(rtcv.requests.length, 0, "no server is contacted with a broken pair");
});

Deno.test("older server: the key pair is not checked there; get_login_users says it has no login-users route; secrets still work", async () => {
  await using rtcv = await startFakeRtcv({ variant: "older" });
  await using dir = await liveDir();
  await using client = await startLiveClient(dir, { ENABLE_SCRAPER_CLIENT_LOG: "true" });
  rtcv.setSecret("users", "users-key-0123456789", [{ username: "old", password: "school" }]);

  await ok(client, withPair(rtcv, newKeyPair()));
  const message = await error(client, { type: "get_login_users" });
  assert.match(message, /has no login-users route/);
  assert.ok(message.includes(rtcv.origin), message);
  assert.deepEqual(
    await ok(client, { type: "get_users_secret", content: { encryption_key: "users-key-0123456789" } }),
    [{ username: "old", password: "school" }],
  );
  assert.equal((await client.finish()).status.code, 0);
  assert.match(
    await readIfExists(join(dir.path, "scraper_client.log")),
    /no scraperUsers route .*not checked/,
  );
});

Deno.test("get_login_users without a key pair names RTCV_SCRAPER_CLIENT_PRIVATE_KEY and private_key", async () => {
  await using rtcv = await newest();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, { type: "set_credentials", content: server(rtcv) });
  const message = await error(client, { type: "get_login_users" });
  assert.match(message, /RTCV_SCRAPER_CLIENT_PRIVATE_KEY/);
  assert.match(message, /private_key/);
  assert.equal(rtcv.requestsTo(SCRAPER_USERS).length, 0);
});

Deno.test("a user whose password cannot be opened is left out with a warning naming the user, never the password", async () => {
  await using rtcv = await newest();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  const pair = newKeyPair();
  rtcv.setScraperPublicKey(pair.public_key);
  rtcv.addLoginUser("good", "fine");
  // Sealed to another key (e.g. stored before the key was rotated by hand), and junk.
  const stranger = sealPassword("unreadable-password", newKeyPair().public_key);
  rtcv.usersOf().users.push({ username: "sealed-elsewhere", encryptedPassword: stranger });
  rtcv.usersOf().users.push({ username: "junk", encryptedPassword: "not base64!" });

  await ok(client, withPair(rtcv, pair));
  assert.deepEqual(await ok(client, { type: "get_login_users" }), [{ username: "good", password: "fine" }]);
  const finished = await client.finish();
  assert.match(finished.stderr, /login user "sealed-elsewhere" .*left out/);
  assert.match(finished.stderr, /login user "junk" .*left out/);
  assert.ok(!finished.stderr.includes("unreadable-password"));
});

Deno.test("newest server: get_users_secret / get_user_secret answer the login users; get_secret says there is no secrets route", async () => {
  await using rtcv = await newest();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  const pair = newKeyPair();
  rtcv.setScraperPublicKey(pair.public_key);
  rtcv.addLoginUser("ada", "one");
  rtcv.addLoginUser("bob", "two");
  await ok(client, withPair(rtcv, pair));

  const users = [{ username: "ada", password: "one" }, { username: "bob", password: "two" }];
  assert.deepEqual(
    await ok(client, { type: "get_users_secret", content: { encryption_key: "ignored" } }),
    users,
  );
  assert.deepEqual(
    await ok(client, { type: "get_user_secret", content: { key: "anything", encryption_key: "ignored" } }),
    users[0],
  );
  const secret = await error(client, { type: "get_secret", content: { key: "api", encryption_key: "k" } });
  assert.match(secret, /has no secrets route/);
  assert.ok(secret.includes(rtcv.origin), secret);
  assert.match(secret, /answered 500/);
  assert.equal(rtcv.requestsTo(SECRETS).length, 1, "asked once: the session remembers the route is missing");
});

Deno.test("no secrets route and no key pair: get_users_secret says so and how to set a key pair", async () => {
  for (const variant of ["newest", "older-404"] as const) {
    await using rtcv = variant === "newest"
      ? await newest()
      : await startFakeRtcv({ notFoundRoutes: [SECRETS] });
    await using dir = await liveDir();
    await using client = await startLiveClient(dir);
    await ok(client, { type: "set_credentials", content: server(rtcv) });
    const message = await error(client, { type: "get_users_secret", content: { encryption_key: "e" } });
    assert.match(message, /has no secrets route/, variant);
    assert.match(message, /RTCV_SCRAPER_CLIENT_PUBLIC_KEY/, variant);
  }
});

Deno.test("older server answering 404 for the secrets route: the users secrets fall back to the login users too", async () => {
  // A server that has login users but answers 404 for secrets: the fallback is keyed on the route, not the build.
  await using rtcv = await newest();
  rtcv.notFoundRoutes.add(SECRETS);
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  const pair = newKeyPair();
  rtcv.setScraperPublicKey(pair.public_key);
  rtcv.addLoginUser("dora", "404");
  await ok(client, withPair(rtcv, pair));
  assert.deepEqual(await ok(client, { type: "get_user_secret", content: { encryption_key: "e" } }), {
    username: "dora",
    password: "404",
  });
});

Deno.test("mock mode: login users from set_mock login_users and from the config's mock_users", async () => {
  await using dir = await liveDir();
  const users = [{ username: "m1", password: "p1" }];
  {
    await using client = await startLiveClient(dir);
    assert.deepEqual(await ok(client, { type: "set_mock", content: { login_users: users } }), undefined);
    assert.deepEqual(await ok(client, { type: "get_login_users" }), users);
    await ok(client, { type: "set_mock", content: {} });
    assert.deepEqual(await ok(client, { type: "get_login_users" }), []);
    assert.match(
      await error(client, { type: "set_mock", content: { login_users: [{ username: "x" }] } }),
      /login_users\[0\]\.password/,
    );
  }
  {
    await using client = await startLiveClient(dir, {
      RTCV_SCRAPER_CLIENT_ENV: JSON.stringify({ mock_mode: true, mock_users: users }),
    });
    assert.deepEqual(await ok(client, { type: "get_login_users" }), users);
  }
});

Deno.test("the private key is in no output, log, input log or store, failures included", async () => {
  await using rtcv = await newest();
  await using dir = await liveDir();
  const pair = newKeyPair();
  const other = newKeyPair();
  rtcv.setScraperPublicKey(pair.public_key);
  rtcv.addLoginUser("ada", "pw");
  await using client = await startLiveClient(dir, {
    LOG_SCRAPER_CLIENT_INPUT: "true",
    ENABLE_SCRAPER_CLIENT_LOG: "true",
    RTCV_SCRAPER_CLIENT_PUBLIC_KEY: other.public_key,
    RTCV_SCRAPER_CLIENT_PRIVATE_KEY: other.private_key,
  });
  const lines: (string | object)[] = [
    { type: "set_credentials", content: server(rtcv) }, // the env pair differs from the server's
    {
      type: "set_credentials",
      content: { ...server(rtcv), public_key: other.public_key, private_key: pair.private_key },
    },
    `{"type":"set_credentials","content":{"private_key":"${pair.private_key}"`,
    { type: "no_such_command", content: { private_key: pair.private_key } },
    withPair(rtcv, pair),
    { type: "get_login_users" },
    sendCv("pk-1"),
  ];
  const answers: string[] = [];
  for (const line of lines) {
    await client.send(line);
    answers.push(await client.readLine());
  }
  assert.deepEqual(answers.map((line) => JSON.parse(line).type), [
    "error",
    "error",
    "error",
    "error",
    "ok",
    "ok",
    "ok",
  ]);
  const finished = await client.finish();
  const inputLog = await readIfExists(join(dir.path, "scraper_client_input.log"));
  assert.match(inputLog, /"private_key":"<redacted>"/);
  const outputs = {
    stdout: READY_LINE + "\n" + answers.join("\n") + "\n" + finished.restText,
    stderr: finished.stderr,
    "scraper_client.log": await readIfExists(join(dir.path, "scraper_client.log")),
    "scraper_client_input.log": inputLog,
    "the Kv store": await storeText(dir),
  };
  for (const [where, text] of Object.entries(outputs)) {
    for (const secret of [pair.private_key, other.private_key]) {
      assert.ok(!text.includes(secret), `a private key appears in ${where}`);
    }
  }
});
