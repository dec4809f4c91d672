import assert from "node:assert/strict";
import {
  type ClientConfig,
  ConfigError,
  DEFAULT_DRAIN_MS,
  DEFAULT_HEALTH_CHECK_HOST,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_OUTBOX_RETRY_MS,
  DEFAULT_TIMEOUT_MS,
  loadConfig,
} from "../src/config/config.ts";

const SECRET = "sup3r-s3cret-api-key";
const TOKEN = "ingest-t0ken-value";

/** Loads with the given environment and an in-memory file system. */
function load(env: Record<string, string>, files: Record<string, string> = {}): Promise<ClientConfig> {
  return loadConfig(new Map(Object.entries(env)), (path) => {
    if (!(path in files)) throw new Deno.errors.NotFound(`No such file or directory: ${path}`);
    return files[path];
  });
}

/** Expects a ConfigError and returns it. */
async function loadError(
  env: Record<string, string>,
  files: Record<string, string> = {},
): Promise<ConfigError> {
  try {
    await await load(env, files);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail("expected a ConfigError");
}

function assertNoSecret(err: Error): void {
  assert.ok(!err.message.includes(SECRET), `message leaks the api key: ${err.message}`);
  assert.ok(!err.message.includes(TOKEN), `message leaks the token: ${err.message}`);
}

const server = (location: string, key = SECRET) => ({
  server_location: location,
  api_key_id: "0123456789abcdef01234567",
  api_key: key,
});

Deno.test("defaults with no configuration at all", async () => {
  assert.deepEqual(await load({}), {
    configSource: null,
    wrapperAddress: null,
    keyPair: null,
    primaryServer: null,
    alternativeServers: [],
    mockMode: false,
    mockUsers: null,
    mockSecrets: {},
    ingest: null,
    timeoutMs: DEFAULT_TIMEOUT_MS,
    kvPath: null,
    healthCheckPort: null,
    healthCheckHost: DEFAULT_HEALTH_CHECK_HOST,
    maxLineBytes: DEFAULT_MAX_LINE_BYTES,
    outboxRetryMs: DEFAULT_OUTBOX_RETRY_MS,
    outboxMaxAttempts: 5,
    outboxMaxAgeMs: 72 * 3600_000,
    outboxLeaseMs: 30_000,
    drainMs: DEFAULT_DRAIN_MS,
    clockOffsetMs: 0,
    logInput: false,
    debugLog: false,
    maxInFlight: 8,
    maxPendingBytes: 8 * 1024 * 1024,
  });
  assert.equal(DEFAULT_OUTBOX_RETRY_MS, 1000);
  assert.equal(DEFAULT_DRAIN_MS, 5000);
  assert.equal(DEFAULT_TIMEOUT_MS, 20000);
  assert.equal(DEFAULT_HEALTH_CHECK_HOST, "127.0.0.1");
  assert.equal(DEFAULT_MAX_LINE_BYTES, 16 * 1024 * 1024);
});

Deno.test("empty environment variables count as unset", async () => {
  const config = await load({
    RTCV_SCRAPER_CLIENT_ENV: "",
    RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "",
    RTCV_SCRAPER_CLIENT_KV: "",
    LOG_SCRAPER_CLIENT_INPUT: "",
  });
  assert.equal(config.timeoutMs, DEFAULT_TIMEOUT_MS);
  assert.equal(config.kvPath, null);
  assert.equal(config.logInput, false);
});

Deno.test("full document from RTCV_SCRAPER_CLIENT_ENV with comments and trailing commas", async () => {
  const text = `// deployment config
{
  /* the server whose answers count */
  "primary_server": ${JSON.stringify(server("https://rtcv.example.com"))},
  "alternative_servers": [
    ${JSON.stringify(server("http://backup.example.com:4000", "other-key"))},
  ],
  "mock_mode": false,
  "mock_users": [{"username": "foo", "password": "bar"},],
  "mock_secrets": {"user": {"username": "a", "password": "b"}},
  "public_key": "the-public-key",
  "private_key": "the-private-key",
  "ingest": {"base_url": "https://ingest.example.com", "token": "${TOKEN}"},
  "timeout_ms": 5000,
  "kv": ":memory:",
  "health_check_port": 0,
  "health_check_host": "0.0.0.0",
  "max_line_bytes": 1024,
  "outbox_retry_ms": 250,
  "drain_ms": 0,
  "log_input": true,
  "debug_log": true, // unknown fields are errors: see config_strict_test.ts
}`;
  assert.deepEqual(await load({ RTCV_SCRAPER_CLIENT_ENV: text }), {
    configSource: "RTCV_SCRAPER_CLIENT_ENV",
    wrapperAddress: null,
    keyPair: {
      publicKey: "the-public-key",
      privateKey: "the-private-key",
      source: "the config's public_key / private_key",
    },
    primaryServer: {
      serverLocation: "https://rtcv.example.com",
      apiKeyId: "0123456789abcdef01234567",
      apiKey: SECRET,
    },
    alternativeServers: [{
      serverLocation: "http://backup.example.com:4000",
      apiKeyId: "0123456789abcdef01234567",
      apiKey: "other-key",
    }],
    mockMode: false,
    mockUsers: [{ username: "foo", password: "bar" }],
    mockSecrets: { user: { username: "a", password: "b" } },
    ingest: { baseUrl: "https://ingest.example.com", token: TOKEN },
    timeoutMs: 5000,
    kvPath: ":memory:",
    healthCheckPort: 0,
    healthCheckHost: "0.0.0.0",
    maxLineBytes: 1024,
    outboxRetryMs: 250,
    outboxMaxAttempts: 5,
    outboxMaxAgeMs: 72 * 3600_000,
    outboxLeaseMs: 30_000,
    drainMs: 0,
    clockOffsetMs: 0,
    logInput: true,
    debugLog: true,
    maxInFlight: 8,
    maxPendingBytes: 8 * 1024 * 1024,
  });
});

Deno.test("document from RTCV_SCRAPER_CLIENT_ENV_FILE, with a byte order mark and CRLF line endings", async () => {
  const config = await load(
    { RTCV_SCRAPER_CLIENT_ENV_FILE: "/etc/rtcv.jsonc" },
    {
      "/etc/rtcv.jsonc": '\uFEFF{\r\n  "mock_mode": true, // on\r\n  "mock_secrets": {"k": [1, 2]},\r\n}\r\n',
    },
  );
  assert.equal(config.mockMode, true);
  assert.deepEqual(config.mockSecrets, { k: [1, 2] });
});

Deno.test("a file holding only comments is an empty configuration", async () => {
  const config = await load(
    { RTCV_SCRAPER_CLIENT_ENV_FILE: "/etc/rtcv.jsonc" },
    { "/etc/rtcv.jsonc": '// everything commented out\n/* {"mock_mode": true} */\n' },
  );
  assert.equal(config.mockMode, false);
});

Deno.test("null fields count as absent", async () => {
  const config = await load({
    RTCV_SCRAPER_CLIENT_ENV:
      '{"primary_server": null, "mock_users": null, "timeout_ms": null, "ingest": null}',
  });
  assert.equal(config.primaryServer, null);
  assert.equal(config.mockUsers, null);
  assert.equal(config.timeoutMs, DEFAULT_TIMEOUT_MS);
});

Deno.test("RTCV_SCRAPER_CLIENT_ENV wins over RTCV_SCRAPER_CLIENT_ENV_FILE, which is then not read", async () => {
  const config = await loadConfig(
    new Map([
      ["RTCV_SCRAPER_CLIENT_ENV", '{"timeout_ms": 111}'],
      ["RTCV_SCRAPER_CLIENT_ENV_FILE", "/etc/rtcv.jsonc"],
    ]),
    () => assert.fail("the file must not be read"),
  );
  assert.equal(config.timeoutMs, 111);
});

Deno.test("environment variables win over the document for the same setting", async () => {
  const doc = JSON.stringify({
    timeout_ms: 5000,
    kv: "/data/from-file.kv",
    health_check_port: 8080,
    health_check_host: "10.0.0.1",
    max_line_bytes: 1000,
    outbox_retry_ms: 100,
    drain_ms: 100,
    log_input: true,
    debug_log: false,
  });
  const config = await load(
    {
      RTCV_SCRAPER_CLIENT_ENV_FILE: "/etc/rtcv.jsonc",
      RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "7000",
      RTCV_SCRAPER_CLIENT_KV: "/data/from-env.kv",
      RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT: "9090",
      RTCV_SCRAPER_CLIENT_HEALTH_CHECK_HOST: "::1",
      RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES: "2000",
      RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "300",
      RTCV_SCRAPER_CLIENT_DRAIN_MS: "0",
      RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS: "3600000",
      LOG_SCRAPER_CLIENT_INPUT: "false",
      ENABLE_SCRAPER_CLIENT_LOG: "TRUE",
    },
    { "/etc/rtcv.jsonc": doc },
  );
  assert.equal(config.timeoutMs, 7000);
  assert.equal(config.kvPath, "/data/from-env.kv");
  assert.equal(config.healthCheckPort, 9090);
  assert.equal(config.healthCheckHost, "::1");
  assert.equal(config.maxLineBytes, 2000);
  assert.equal(config.outboxRetryMs, 300);
  assert.equal(config.drainMs, 0);
  assert.equal(config.clockOffsetMs, 3600000);
  assert.equal(config.logInput, false);
  assert.equal(config.debugLog, true);
});

Deno.test("the document's settings apply when the environment variable is not set", async () => {
  const config = await load({ RTCV_SCRAPER_CLIENT_ENV: '{"timeout_ms": 5000, "log_input": true}' });
  assert.equal(config.timeoutMs, 5000);
  assert.equal(config.logInput, true);
});

Deno.test("boolean environment variables: true, 1 and t in any case mean on", async () => {
  for (const on of ["true", "TRUE", "True", "1", "t", "T", " true "]) {
    assert.equal((await load({ LOG_SCRAPER_CLIENT_INPUT: on })).logInput, true, on);
    assert.equal((await load({ ENABLE_SCRAPER_CLIENT_LOG: on })).debugLog, true, on);
  }
  for (const off of ["false", "0", "no", "yes", "on"]) {
    assert.equal((await load({ LOG_SCRAPER_CLIENT_INPUT: off })).logInput, false, off);
  }
});

Deno.test("numeric environment variables must be whole numbers in range; the error names the variable", async () => {
  const cases: [string, string, string][] = [
    ["RTCV_SCRAPER_CLIENT_TIMEOUT_MS", "abc", "timeout_ms"],
    ["RTCV_SCRAPER_CLIENT_TIMEOUT_MS", "0", "timeout_ms"],
    ["RTCV_SCRAPER_CLIENT_TIMEOUT_MS", "-5", "timeout_ms"],
    ["RTCV_SCRAPER_CLIENT_TIMEOUT_MS", "1.5", "timeout_ms"],
    ["RTCV_SCRAPER_CLIENT_TIMEOUT_MS", "1e3", "timeout_ms"],
    ["RTCV_SCRAPER_CLIENT_TIMEOUT_MS", "99999999999999999999", "timeout_ms"],
    ["RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT", "65536", "health_check_port"],
    ["RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT", "http", "health_check_port"],
    ["RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES", "0", "max_line_bytes"],
    ["RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES", "16MiB", "max_line_bytes"],
    ["RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS", "0", "outbox_retry_ms"],
    ["RTCV_SCRAPER_CLIENT_DRAIN_MS", "soon", "drain_ms"],
    ["RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS", "-5", "clock_offset_ms"],
  ];
  for (const [name, value, field] of cases) {
    const err = await loadError({ [name]: value });
    assert.equal(err.source, name);
    assert.equal(err.field, field);
    assert.match(err.message, new RegExp(`^${name}: `));
    assert.ok(err.message.includes(JSON.stringify(value)), err.message);
  }
  assert.equal((await load({ RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT: "0" })).healthCheckPort, 0);
  assert.equal((await load({ RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT: "65535" })).healthCheckPort, 65535);
  assert.equal((await load({ RTCV_SCRAPER_CLIENT_TIMEOUT_MS: " 250 " })).timeoutMs, 250);
});

Deno.test("a missing file is an error naming the file", async () => {
  const err = await loadError({ RTCV_SCRAPER_CLIENT_ENV_FILE: "/etc/missing.jsonc" });
  assert.equal(err.source, "RTCV_SCRAPER_CLIENT_ENV_FILE /etc/missing.jsonc");
  assert.equal(err.field, "");
  assert.equal(
    err.message,
    "RTCV_SCRAPER_CLIENT_ENV_FILE /etc/missing.jsonc: cannot read the file: it does not exist",
  );
});

Deno.test("an unreadable file (real file system) is an error naming the file", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    await assert.rejects(
      () => loadConfig(new Map([["RTCV_SCRAPER_CLIENT_ENV_FILE", dir]])),
      (err) =>
        err instanceof ConfigError &&
        err.message.startsWith(`RTCV_SCRAPER_CLIENT_ENV_FILE ${dir}: cannot read the file: `),
    );
  } finally {
    Deno.removeSync(dir);
  }
});

Deno.test("a syntax error says line:column and never quotes the text", async () => {
  const text = `{
  "primary_server": {
    "server_location": "https://rtcv.example.com",
    "api_key": "${SECRET}" "api_key_id": "x"
  }
}`;
  const err = await loadError({ RTCV_SCRAPER_CLIENT_ENV_FILE: "/etc/x.jsonc" }, { "/etc/x.jsonc": text });
  assert.equal(err.source, "RTCV_SCRAPER_CLIENT_ENV_FILE /etc/x.jsonc");
  assert.equal(
    err.message,
    "RTCV_SCRAPER_CLIENT_ENV_FILE /etc/x.jsonc: cannot parse JSONC at 4:39: expected ',' between entries",
  );
  assertNoSecret(err);
});

Deno.test("an unterminated string is a syntax error without its content", async () => {
  const err = await loadError({ RTCV_SCRAPER_CLIENT_ENV: `{"primary_server": {"api_key": "${SECRET}` });
  assert.equal(err.source, "RTCV_SCRAPER_CLIENT_ENV");
  assert.match(err.message, /^RTCV_SCRAPER_CLIENT_ENV: cannot parse JSONC at 1:32: unterminated string/);
  assertNoSecret(err);
});

Deno.test("the document must be an object", async () => {
  for (
    const [text, kind] of [["[1, 2]", "an array"], ["42", "an integer"], ['"text"', "a string"], [
      "null",
      "null",
    ]]
  ) {
    const err = await loadError({ RTCV_SCRAPER_CLIENT_ENV: text });
    assert.equal(err.message, `RTCV_SCRAPER_CLIENT_ENV: must be a JSON object, not ${kind}`);
  }
});

Deno.test("field errors name the source and the field path, and never the value", async () => {
  const file = "/etc/x.jsonc";
  const cases: [unknown, string, string][] = [
    [
      { primary_server: server("ftp://rtcv.example.com") },
      "primary_server.server_location",
      "must start with http:// or https://",
    ],
    [
      { primary_server: { ...server("https://a"), api_key: 12345 } },
      "primary_server.api_key",
      "must be a string",
    ],
    [
      { primary_server: { ...server("https://a"), api_key: "" } },
      "primary_server.api_key",
      "must not be empty",
    ],
    [
      { primary_server: { server_location: "https://a", api_key: SECRET } },
      "primary_server.api_key_id",
      "is missing",
    ],
    [
      {
        primary_server: server("https://a"),
        alternative_servers: [server("https://b"), { ...server("https://c"), api_key: ["x"] }],
      },
      "alternative_servers[1].api_key",
      "must be a string, not an array",
    ],
    [{ alternative_servers: [server("https://b")] }, "alternative_servers", "needs primary_server"],
    [{ mock_mode: "yes" }, "mock_mode", "must be true or false, not a string"],
    [{ mock_users: [{ username: "a", password: 1 }] }, "mock_users[0].password", "must be a string"],
    [{ mock_secrets: ["x"] }, "mock_secrets", "must be an object, not an array"],
    [{ ingest: { base_url: "https://i", token: "" } }, "ingest.token", "must not be empty"],
    [
      { ingest: { base_url: "ingest.example.com", token: TOKEN } },
      "ingest.base_url",
      "must start with http://",
    ],
    [{ timeout_ms: 1.5 }, "timeout_ms", "must be an integer"],
    [{ timeout_ms: 0 }, "timeout_ms", "must be a positive integer"],
    [{ timeout_ms: "20000" }, "timeout_ms", "must be a number, not a string"],
    [{ health_check_port: 70000 }, "health_check_port", "must be at most 65535"],
    [{ health_check_port: -1 }, "health_check_port", "must be at least 0"],
    [{ kv: "" }, "kv", "must not be empty"],
    [{ max_line_bytes: 0 }, "max_line_bytes", "must be a positive integer"],
    [{ debug_log: 1 }, "debug_log", "must be true or false"],
  ];
  for (const [doc, field, problem] of cases) {
    const err = await loadError({ RTCV_SCRAPER_CLIENT_ENV_FILE: file }, { [file]: JSON.stringify(doc) });
    assert.equal(err.source, `RTCV_SCRAPER_CLIENT_ENV_FILE ${file}`, err.message);
    assert.equal(err.field, field, err.message);
    assert.ok(
      err.message.startsWith(`RTCV_SCRAPER_CLIENT_ENV_FILE ${file}: ${field} ${problem}`),
      `${JSON.stringify(doc)} → ${err.message}`,
    );
    assertNoSecret(err);
    assert.ok(!err.message.includes("ftp://rtcv"), err.message);
  }
});

Deno.test("the same field error from RTCV_SCRAPER_CLIENT_ENV names that variable", async () => {
  const err = await loadError({
    RTCV_SCRAPER_CLIENT_ENV: JSON.stringify({ primary_server: server("rtcv.example.com") }),
  });
  assert.equal(
    err.message,
    "RTCV_SCRAPER_CLIENT_ENV: primary_server.server_location must start with http:// or https://",
  );
});

Deno.test("several problems: the first is reported and the others counted", async () => {
  const err = await loadError({ RTCV_SCRAPER_CLIENT_ENV: JSON.stringify({ mock_mode: 1, debug_log: 2 }) });
  assert.match(
    err.message,
    /^RTCV_SCRAPER_CLIENT_ENV: mock_mode must be true or false, not an integer \(and 1 more/,
  );
});

Deno.test("ConfigError is an Error with its name set", async () => {
  const err = await loadError({ RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "x" });
  assert.ok(err instanceof Error);
  assert.equal(err.name, "ConfigError");
});

Deno.test("one lookup order: RTCV_SCRAPER_CLIENT_ENV, else _ENV_FILE, else env.json, else env.jsonc; configSource names it", async () => {
  const files = {
    "env.json": '{"timeout_ms": 1}',
    "env.jsonc": '{"timeout_ms": 2, // c\n}',
    "/x.jsonc": '{"timeout_ms": 3}',
  };
  const fromText = await load({
    RTCV_SCRAPER_CLIENT_ENV: '{"timeout_ms": 4}',
    RTCV_SCRAPER_CLIENT_ENV_FILE: "/x.jsonc",
  }, files);
  assert.deepEqual([fromText.timeoutMs, fromText.configSource], [4, "RTCV_SCRAPER_CLIENT_ENV"]);
  const fromFile = await load({ RTCV_SCRAPER_CLIENT_ENV_FILE: "/x.jsonc" }, files);
  assert.deepEqual([fromFile.timeoutMs, fromFile.configSource], [3, "RTCV_SCRAPER_CLIENT_ENV_FILE /x.jsonc"]);
  const fromJson = await load({}, files);
  assert.deepEqual([fromJson.timeoutMs, fromJson.configSource], [1, "env.json"]);
  const fromJsonc = await load({}, { "env.jsonc": files["env.jsonc"] });
  assert.deepEqual([fromJsonc.timeoutMs, fromJsonc.configSource], [2, "env.jsonc"]);
  const none = await load({});
  assert.equal(none.configSource, null);
  const bad = await loadError({}, { "env.json": '{"timeout_ms": "x"}' });
  assert.match(bad.message, /^env\.json: timeout_ms must be/);
});

Deno.test("RTCV_SCRAPER_CLIENT_ADDRESS is host:port", async () => {
  assert.deepEqual((await load({ RTCV_SCRAPER_CLIENT_ADDRESS: "127.0.0.1:4555" })).wrapperAddress, {
    hostname: "127.0.0.1",
    port: 4555,
  });
  assert.equal((await load({})).wrapperAddress, null);
  for (const bad of ["4555", "localhost:", "host:99999"]) {
    assert.match(
      (await loadError({ RTCV_SCRAPER_CLIENT_ADDRESS: bad })).message,
      /^RTCV_SCRAPER_CLIENT_ADDRESS: must be host:port/,
    );
  }
});

Deno.test("login-users key pair: the environment wins over the document; one key without the other is an error", async () => {
  const doc = JSON.stringify({ public_key: "doc-public", private_key: "doc-private" });
  const both = {
    RTCV_SCRAPER_CLIENT_PUBLIC_KEY: "env-public",
    RTCV_SCRAPER_CLIENT_PRIVATE_KEY: "env-private",
  };
  assert.deepEqual((await load({ RTCV_SCRAPER_CLIENT_ENV: doc, ...both })).keyPair, {
    publicKey: "env-public",
    privateKey: "env-private",
    source: "RTCV_SCRAPER_CLIENT_PUBLIC_KEY / RTCV_SCRAPER_CLIENT_PRIVATE_KEY",
  });
  await assert.rejects(
    load({ RTCV_SCRAPER_CLIENT_PUBLIC_KEY: "env-public" }),
    (err: unknown) =>
      err instanceof ConfigError &&
      /RTCV_SCRAPER_CLIENT_PRIVATE_KEY: must be set with RTCV_SCRAPER_CLIENT_PUBLIC_KEY/.test(err.message),
  );
  await assert.rejects(
    load({ RTCV_SCRAPER_CLIENT_PRIVATE_KEY: "env-private-secret" }),
    (err: unknown) => err instanceof ConfigError && !err.message.includes("env-private-secret"),
  );
  await assert.rejects(
    load({ RTCV_SCRAPER_CLIENT_ENV: JSON.stringify({ private_key: "doc-private-secret" }) }),
    (err: unknown) =>
      err instanceof ConfigError && /public_key/.test(err.message) &&
      !err.message.includes("doc-private-secret"),
  );
});
