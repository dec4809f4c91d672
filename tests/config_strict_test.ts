/**
 * The configuration is strict, as a scraper's deployment sees it: a misspelled field, or mock mode next to
 * servers, stops the client before its ready line (exit 2, naming the source, the field and what to write
 * instead); a configuration that sets the mode says which in the ready line.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../src/config/config.ts";
import { startFakeRtcv } from "./fake_rtcv.ts";
import { runSession, tempDir } from "./helpers/spawn_client.ts";

const SECRET = "sup3r-s3cret-api-key";
const server = {
  server_location: "https://rtcv.example.com",
  api_key_id: "0123456789abcdef01234567",
  api_key: SECRET,
};

async function configError(document: unknown): Promise<ConfigError> {
  try {
    await loadConfig(new Map([["RTCV_SCRAPER_CLIENT_ENV", JSON.stringify(document)]]));
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.ok(!error.message.includes(SECRET), error.message);
    return error;
  }
  assert.fail(`${JSON.stringify(document)} was accepted`);
}

Deno.test("an unknown field is an error naming it and the closest known field, at every level", async () => {
  const cases: [unknown, string, string][] = [
    [{ mokc_users: [] }, "mokc_users", "mock_users"],
    [{ mock_mode: true, timeout: 5 }, "timeout", "timeout_ms"],
    [{ primary_server: { ...server, api_kee: "x" } }, "primary_server.api_kee", "api_key"],
    [
      { primary_server: server, alternative_servers: [server, { ...server, server_locaton: "x" }] },
      "alternative_servers[1].server_locaton",
      "server_location",
    ],
    [{ mock_users: [{ username: "u", password: "p", pasword: "p" }] }, "mock_users[0].pasword", "password"],
    [{ ingest: { base_url: "https://jobs.example.com", token: SECRET, tokn: "x" } }, "ingest.tokn", "token"],
  ];
  for (const [document, field, closest] of cases) {
    const error = await configError(document);
    assert.equal(error.field, field, error.message);
    assert.ok(
      error.message.startsWith(`RTCV_SCRAPER_CLIENT_ENV: ${field} is not a known field`),
      error.message,
    );
    assert.ok(error.message.includes(`did you mean ${closest}?`), error.message);
  }
});

Deno.test("the known fields come from the schema: every field of a full document is accepted", async () => {
  // Fields named in the contract; a field added to the schema is known without a list to keep in step.
  const config = await loadConfig(
    new Map([["RTCV_SCRAPER_CLIENT_ENV", JSON.stringify({ mock_mode: true, mock_secrets: { any_key: 1 } })]]),
  );
  assert.deepEqual(
    config.mockSecrets,
    { any_key: 1 },
    "mock_secrets keys are the scraper's own: not checked",
  );
});

Deno.test("mock_mode true together with servers is an error naming both", async () => {
  for (
    const [document, servers] of [
      [{ mock_mode: true, primary_server: server }, "primary_server"],
      [
        { mock_mode: true, primary_server: server, alternative_servers: [server] },
        "primary_server and alternative_servers",
      ],
    ] as const
  ) {
    const error = await configError(document);
    assert.equal(error.field, "mock_mode");
    assert.match(error.message, new RegExp(`mock_mode is true together with ${servers}`));
  }
  // mock_mode false next to servers is fine: the servers set the mode.
  const config = await loadConfig(
    new Map([["RTCV_SCRAPER_CLIENT_ENV", JSON.stringify({ mock_mode: false, primary_server: server })]]),
  );
  assert.equal(config.primaryServer?.serverLocation, server.server_location);
});

Deno.test("the client exits 2 before the ready line on an unknown field, naming the file and the field", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/rtcv.jsonc`;
  await Deno.writeTextFile(file, '{\n  "mock_mode": true,\n  "mokc_users": [],\n}\n');
  const result = await runSession([{ type: "ping" }], {
    RTCV_SCRAPER_CLIENT_ENV_FILE: file,
    RTCV_SCRAPER_CLIENT_KV: ":memory:",
  }, { cwd: dir.path });
  assert.equal(result.code, 2, result.stderr);
  assert.equal(result.stdout, "");
  assert.ok(
    result.stderr.includes(`RTCV_SCRAPER_CLIENT_ENV_FILE ${file}: mokc_users is not a known field`),
    result.stderr,
  );
  assert.match(result.stderr, /did you mean mock_users\?/);
});

Deno.test("the client exits 2 on mock_mode with a primary_server, contacting no server", async () => {
  await using rtcv = await startFakeRtcv();
  const result = await runSession([{ type: "ping" }], {
    RTCV_SCRAPER_CLIENT_ENV: JSON.stringify({ mock_mode: true, primary_server: rtcv.wireCredentials() }),
    RTCV_SCRAPER_CLIENT_KV: ":memory:",
  });
  assert.equal(result.code, 2, result.stderr);
  assert.equal(result.stdout, "");
  assert.match(result.stderr, /RTCV_SCRAPER_CLIENT_ENV: mock_mode .*primary_server/);
  assert.equal(rtcv.requests.length, 0);
});

Deno.test("the ready line says the mode the configuration set", async () => {
  await using rtcv = await startFakeRtcv();
  await using dir = await tempDir();
  const env = { RTCV_SCRAPER_CLIENT_KV: `${dir.path}/cache.kv` };
  const none = await runSession([{ type: "ping" }], env, { cwd: dir.path });
  assert.equal(none.ready, '{"type":"ready","content":"waiting for credentials"}');
  const mock = await runSession(
    [{ type: "ping" }],
    { ...env, RTCV_SCRAPER_CLIENT_ENV: '{"mock_mode":true}' },
    {
      cwd: dir.path,
    },
  );
  assert.equal(mock.ready, '{"type":"ready","content":"mock mode (configuration)"}', mock.stderr);
  const live = await runSession([{ type: "ping" }], {
    ...env,
    RTCV_SCRAPER_CLIENT_ENV: JSON.stringify({
      primary_server: { ...rtcv.wireCredentials(), server_location: `${rtcv.url}/` },
    }),
  }, { cwd: dir.path });
  assert.equal(live.ready, JSON.stringify({ type: "ready", content: `live: ${rtcv.origin}` }), live.stderr);
  assert.deepEqual([mock.answers, live.answers], [['{"type":"pong"}'], ['{"type":"pong"}']]);
});
