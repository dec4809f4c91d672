/**
 * Wrapper mode (PROTOCOL.md section 10), as a scraper written for the Go client v2 meets it: the client runs the
 * scraper (tests/fixtures/v2_scraper.ts, which calls the routes a plan names and prints the answers), serves
 * the routes at `$SCRAPER_ADDRESS`, passes stdio through and exits with the scraper's exit code.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startFakeRtcv } from "./fake_rtcv.ts";
import { acceptWebSockets } from "./fake_rtcv_socket.ts";
import { type ClientProcess, spawnClient } from "./helpers/spawn_client.ts";
import { liveDir } from "./live_helpers.ts";

const SCRAPER = fileURLToPath(new URL("./fixtures/v2_scraper.ts", import.meta.url));

interface Printed {
  readonly name?: string;
  readonly status: number;
  readonly type: string | null;
  readonly body: string;
}

/** Starts the client in wrapper mode around the v2 scraper with `plan`; reads the scraper's address line. */
async function startWrapper(
  dir: string,
  plan: unknown[],
  env: Record<string, string>,
): Promise<{ client: ClientProcess; address: string }> {
  const planFile = join(dir, `plan-${crypto.randomUUID()}.json`);
  await Deno.writeTextFile(planFile, JSON.stringify(plan));
  const client = spawnClient({
    cwd: dir,
    env: { RTCV_SCRAPER_CLIENT_KV: join(dir, "cache.kv"), RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "2000", ...env },
    args: ["--", Deno.execPath(), "run", "-A", SCRAPER, planFile],
    timeoutMs: 30_000,
  });
  const first = JSON.parse(await client.readLine());
  return { client, address: first.address };
}

async function printed(client: ClientProcess): Promise<Printed> {
  return JSON.parse(await client.readLine()) as Printed;
}

/** Every route of wrapper mode. */
const ROUTES = [
  "/send_cv",
  "/send_full_cv",
  "/cvs_list",
  "/users",
  "/set_cached_reference",
  "/set_short_cached_reference",
  "/get_cached_reference",
  "/server_request",
  "/server_response",
  "/command",
];

const MOCK_ENV = JSON.stringify({ mock_mode: true, mock_users: [{ username: "u", password: "p" }] });
const cv = (reference: string) => JSON.stringify({ referenceNumber: reference, presentation: "x" });
const request = (path: string, body?: string, method?: string) => ({ request: { path, body, method } });

Deno.test("mock mode: every v2 route answers as v2 did, POST /command reaches any command, bad input is a 400 with a message", async () => {
  await using dir = await liveDir();
  const pdf = btoa("%PDF-1.4 a small document");
  const plan = [
    request("/send_cv", cv("w-1")),
    request("/send_cv", cv("w-1"), "PUT"), // any method; cached now: not sent
    request("/set_cached_reference", "w-2"),
    request("/get_cached_reference", "w-2", "PATCH"),
    request("/get_cached_reference", "w-3"),
    request("/set_short_cached_reference", "w-3"),
    request("/get_cached_reference", "w-3"),
    request("/command", '{"type":"ping"}'),
    request("/command", '{"type":"has_cached_reference","content":"w-1"}'),
    request("/users", undefined, "GET"),
    request("/cvs_list", JSON.stringify([{ referenceNumber: "l-1" }, { referenceNumber: "l-2" }])),
    {
      request: {
        path: "/send_full_cv",
        multipart: { metadata: cv("w-doc"), cv_base64: pdf, cv_type: "application/pdf" },
      },
    },
    { request: { path: "/send_full_cv", multipart: { metadata: cv("w-doc"), cv_base64: pdf } } },
    // Bad input, route by route.
    request("/send_cv", "{not json"),
    request("/send_cv", ""),
    request("/send_cv", '{"presentation":"no reference"}'),
    request("/send_cv", "x".repeat(5000)),
    request("/set_cached_reference", ""),
    request("/get_cached_reference", ""),
    request("/set_short_cached_reference", ""),
    request("/server_response", "[1]"),
    request("/server_response", '{"id":"0-1","data":1}'),
    request("/cvs_list", "nope"),
    request("/command", "not a line"),
    request("/command", ""),
    request("/command", '{"type":"ping"}', "PUT"),
    request("/send_full_cv", "plain text"),
    { request: { path: "/send_full_cv", multipart: { metadata: cv("w-doc2") } } },
    { request: { path: "/send_full_cv", multipart: { metadata: "{bad", cv_base64: pdf } } },
    { request: { path: "/send_full_cv", multipart: { metadata: cv("w-doc3"), cv_base64: "" } } },
    request("/nowhere", ""),
    ...ROUTES.map((path) => request(path, "x".repeat(5000))),
    { exit: 3 },
  ];
  const { client, address } = await startWrapper(dir.path, plan, {
    RTCV_SCRAPER_CLIENT_ENV: MOCK_ENV,
    RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES: "4096",
  });
  await using _client = client;
  assert.match(address, /^http:\/\/127\.0\.0\.1:(\d+)$/);
  const port = Number(address.split(":")[2]);
  assert.ok(port >= 4001 && port <= 6000, `port ${port}`);

  const ok = async (body: string) => {
    const answer = await printed(client);
    assert.deepEqual([answer.status, answer.body], [200, body]);
    assert.equal(answer.type, "application/json");
  };
  await ok("true");
  await ok("false");
  await ok("true");
  await ok("true");
  await ok("false");
  await ok("true");
  await ok("true");
  await ok('{"type":"pong"}');
  await ok('{"type":"ok","content":true}');
  await ok('[{"username":"u","password":"p"}]');
  await ok("true");
  await ok("true");
  await ok("false");
  const bad = async (status: number, message: RegExp) => {
    const answer = await printed(client);
    assert.equal(answer.status, status, answer.body);
    assert.match(answer.type ?? "", /^text\/plain/);
    assert.match(answer.body, message);
  };
  await bad(400, /^the body is not valid JSON; expected a CV object/);
  await bad(400, /^the body is empty; expected a CV object/);
  await bad(400, /referenceNumber must be a non-empty string/);
  await bad(413, /longer than 4096 bytes \(RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES\)/);
  await bad(400, /^set_cached_reference: content must be a non-empty string/);
  await bad(400, /^has_cached_reference: content must be a non-empty string/);
  await bad(400, /^set_short_cached_reference: content must be a non-empty string/);
  await bad(400, /^server_response: content must be an object/);
  await bad(400, /^server_response: no server request has the id "0-1"/);
  await bad(400, /^the body is not valid JSON; expected a JSON array of CVs/);
  await bad(400, /^input line is not valid JSON/);
  await bad(400, /^input line is empty/);
  await bad(405, /^\/command takes POST/);
  await bad(400, /^the body is not multipart\/form-data/);
  await bad(400, /^found 0 cv parts/);
  await bad(400, /^the metadata part is not valid JSON/);
  await bad(400, /^send_cv_document_outcome: .*empty/);
  await bad(404, /^404 not found: \/nowhere/);
  for (const _path of ROUTES) await bad(413, /longer than 4096 bytes/);
  const { status, stderr } = await client.waitForExit();
  assert.equal(status.code, 3, stderr);
  assert.match(stderr, /configuration from RTCV_SCRAPER_CLIENT_ENV/);
  assert.match(stderr, /serving the scraper routes at http:\/\/127\.0\.0\.1:\d+/);
});

Deno.test("live: /send_cv reaches RT-CV, /server_request waits for a request over the websocket (a second call makes the first answer 400), /server_response answers it", async () => {
  await using rtcv = await startFakeRtcv({ hasMatches: true, variant: "newest" });
  await using sockets = acceptWebSockets(rtcv);
  await using dir = await liveDir();
  const config = JSON.stringify({ primary_server: rtcv.wireCredentials() });
  await Deno.writeTextFile(join(dir.path, "env.json"), config);
  const plan = [
    request("/send_cv", cv("live-1")),
    request("/send_cv", cv("live-1")),
    request("/cvs_list", JSON.stringify([{ referenceNumber: "list-1" }, { referenceNumber: "list-2" }])),
    request("/users", undefined, "GET"),
    {
      request: {
        path: "/send_full_cv",
        multipart: {
          metadata: JSON.stringify({ reference_number: "live-doc" }),
          cv_base64: btoa("%PDF-x"),
          cv_type: "application/pdf",
        },
      },
    },
    { request: { path: "/server_request", method: "GET" }, as: "first" },
    { request: { path: "/server_request", method: "GET" }, as: "second" },
    { first: ["first", "second"] },
    { print: "one waits" },
    { first: ["first", "second"] },
    request("/server_response", JSON.stringify({ id: "0-41", type: "login", data: { ok: true } })),
    // A caller that gives up (an HTTP client's timeout) does not take the next request with it.
    { request: { path: "/server_request", abortAfterMs: 300 } },
    { readStdin: true },
    { request: { path: "/server_request" } },
    { exit: 0 },
  ];
  const { client } = await startWrapper(dir.path, plan, { LOG_SCRAPER_CLIENT_INPUT: "true" });
  await using _client = client;
  assert.deepEqual((await printed(client)).body, "true");
  assert.deepEqual((await printed(client)).body, "false", "cached after a match: not sent again");
  assert.equal(rtcv.receivedCvs.length, 1);
  assert.equal((await printed(client)).body, "true");
  assert.deepEqual(rtcv.receivedCvLists.map((list) => list.map((entry) => entry.referenceNumber)), [[
    "list-1",
    "list-2",
  ]]);
  const users = await printed(client);
  assert.equal(users.status, 400, "no key pair is set");
  assert.match(users.body, /key pair.*RTCV_SCRAPER_CLIENT_PUBLIC_KEY/);
  assert.deepEqual((await printed(client)).body, "true");
  assert.equal(rtcv.receivedDocuments.length, 1);
  const [document] = rtcv.receivedDocuments;
  assert.deepEqual(document.metadata, { referenceNumber: "live-doc" });
  assert.deepEqual([document.fileName, document.contentType], ["cv.pdf", "application/pdf"]);
  assert.equal(new TextDecoder().decode(document.bytes), "%PDF-x");
  const replaced = await printed(client);
  assert.equal(replaced.status, 400);
  assert.match(replaced.body, /a later next_server_request took over this wait/);
  assert.equal(await client.readLine(), '"one waits"');
  await sockets.waitForOpen(1);
  sockets.push({ type: "login", id: 41, data: { site: "x" } });
  const answered = await printed(client);
  assert.equal(answered.status, 200);
  assert.deepEqual(JSON.parse(answered.body), { type: "login", id: "0-41", data: { site: "x" } });
  assert.equal((await printed(client)).body, "true");
  await sockets.waitForReceived(1);
  assert.deepEqual(sockets.received, [{ type: "login", id: 41, data: { ok: true } }]);
  assert.deepEqual(await printed(client), { status: 0, type: null, body: "aborted" });
  // The client has noticed the caller went away once it ended that wait (the input log shows the cancel).
  const inputLog = join(dir.path, "scraper_client_input.log");
  const deadline = Date.now() + 10_000;
  while (!(await Deno.readTextFile(inputLog).catch(() => "")).includes('"cancel":true')) {
    assert.ok(Date.now() < deadline, "the wait of the caller that went away is ended");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  sockets.push({ type: "later", id: 42, data: null }); // while nobody waits: it is kept
  await client.send("go on");
  assert.equal(await client.readLine(), '"go on"');
  assert.deepEqual(JSON.parse((await printed(client)).body), { type: "later", id: "0-42", data: null });
  const { status, stderr } = await client.waitForExit();
  assert.equal(status.code, 0, stderr);
  assert.match(stderr, /configuration from env\.json/);
  assert.doesNotMatch(stderr, /legacy/, "no warning about request.signal on the scraper's stderr");
});

Deno.test("SIGTERM goes to the scraper; the routes answer until it exited; its exit code is the client's (128+15 when the signal ends it)", async () => {
  await using dir = await liveDir();
  // A scraper that handles SIGTERM: it still sends a CV, then exits 0.
  {
    const plan = [
      { print: "waiting" },
      { waitForSignal: "SIGTERM" },
      request("/send_cv", cv("after-term")),
      { exit: 0 },
    ];
    const { client } = await startWrapper(dir.path, plan, { RTCV_SCRAPER_CLIENT_ENV: MOCK_ENV });
    await using _client = client;
    assert.equal(await client.readLine(), '"waiting"');
    client.kill("SIGTERM");
    assert.equal(await client.readLine(), '"got SIGTERM"');
    assert.equal((await printed(client)).body, "true");
    const { status } = await client.waitForExit();
    assert.equal(status.code, 0);
  }
  // A scraper that does not handle it: the signal ends it, and no process is left behind. Its stdin and
  // stdout are the client's.
  {
    const pidFile = join(dir.path, "scraper.pid");
    const { client } = await startWrapperShell(
      dir.path,
      `echo $$ > ${pidFile}; echo started; read line; echo "got $line"; exec sleep 30`,
    );
    await using _client = client;
    assert.equal(await client.readLine(), "started");
    await client.send("hello"); // stdin is the scraper's
    assert.equal(await client.readLine(), "got hello");
    const pid = Number((await Deno.readTextFile(pidFile)).trim());
    client.kill("SIGTERM");
    const { status } = await client.waitForExit();
    assert.equal(status.code, 143);
    assert.equal(processExists(pid), false, "the scraper must not be left running");
  }
});

Deno.test("a scraper command that does not exist: exit 127 with a message; a config naming a dead server: exit 1 before the scraper runs", async () => {
  await using dir = await liveDir();
  const missing = spawnClient({
    cwd: dir.path,
    env: { RTCV_SCRAPER_CLIENT_ENV: MOCK_ENV, RTCV_SCRAPER_CLIENT_KV: ":memory:" },
    args: ["no-such-scraper-command-here"],
  });
  await using _missing = missing;
  const gone = await missing.waitForExit();
  assert.equal(gone.status.code, 127);
  assert.match(gone.stderr, /cannot start "no-such-scraper-command-here": command not found/);

  const dead = spawnClient({
    cwd: dir.path,
    env: {
      RTCV_SCRAPER_CLIENT_ENV: JSON.stringify({
        primary_server: { server_location: "http://127.0.0.1:1", api_key_id: "a", api_key: "b" },
      }),
      RTCV_SCRAPER_CLIENT_KV: ":memory:",
      RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "500",
    },
    args: ["sh", "-c", "echo the scraper ran"],
  });
  await using _dead = dead;
  const failed = await dead.waitForExit();
  assert.equal(failed.status.code, 1);
  assert.deepEqual(failed.rest, [], "the scraper never ran");
  assert.match(failed.stderr, /start-up checks/);
});

/** Wrapper mode around `sh -c script`. */
function startWrapperShell(dir: string, script: string): Promise<{ client: ClientProcess }> {
  const client = spawnClient({
    cwd: dir,
    env: { RTCV_SCRAPER_CLIENT_ENV: MOCK_ENV, RTCV_SCRAPER_CLIENT_KV: ":memory:" },
    args: ["sh", "-c", script],
  });
  return Promise.resolve({ client });
}

function processExists(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

Deno.test("RTCV_SCRAPER_CLIENT_ADDRESS picks the address; SIGINT is passed to the scraper too", async () => {
  await using dir = await liveDir();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const plan = [{ print: "waiting" }, { waitForSignal: "SIGINT" }, request("/command", '{"type":"ping"}'), {
    exit: 7,
  }];
  const { client, address } = await startWrapper(dir.path, plan, {
    RTCV_SCRAPER_CLIENT_ENV: MOCK_ENV,
    RTCV_SCRAPER_CLIENT_ADDRESS: `127.0.0.1:${port}`,
  });
  await using _client = client;
  assert.equal(address, `http://127.0.0.1:${port}`);
  assert.equal(await client.readLine(), '"waiting"');
  client.kill("SIGINT");
  assert.equal(await client.readLine(), '"got SIGINT"');
  assert.equal((await printed(client)).body, '{"type":"pong"}');
  const { status } = await client.waitForExit();
  assert.equal(status.code, 7);
});
