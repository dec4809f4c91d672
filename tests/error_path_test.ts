/**
 * One error path: services throw their own typed errors (subclasses of `ClientError`, `src/errors.ts`), and
 * the registry is the one place that answers them; anything else is a bug ("failed unexpectedly", stderr).
 * Live mode takes what it needs of the core (the cache and store openers), and its failures are a
 * `ConnectError`, which the program's start-up check catches.
 */
import assert from "node:assert/strict";
import { LazyStore } from "../src/cache/lazy_store.ts";
import { StoreError } from "../src/cache/kv_store.ts";
import { ReferenceCache } from "../src/cache/reference_cache.ts";
import { ClientCore } from "../src/client_core.ts";
import { type Clock, systemClock } from "../src/clock.ts";
import { CommandRegistry, defineBareCommand } from "../src/commands/registry.ts";
import { INGEST_COMMAND_TYPES } from "../src/app.ts";
import { ClientError } from "../src/errors.ts";
import { installIngest } from "../src/ingest/install_ingest.ts";
import { KvOutboxStore } from "../src/outbox/kv_outbox_store.ts";
import { Outbox } from "../src/outbox/outbox.ts";
import { DEFAULT_RETRY_SETTINGS } from "../src/outbox/retry_rules.ts";
import { defaultRequestPolicy } from "../src/http/request_policy.ts";
import { errorAnswer } from "../src/protocol/answers.ts";
import { readCommandLine } from "../src/protocol/command_line.ts";
import { RtcvApiError } from "../src/rtcv/api_client.ts";
import { ConnectError } from "../src/rtcv/connect_error.ts";
import { connectLive, type LiveDeps, type LiveOptions } from "../src/rtcv/connect_live.ts";
import { KeyPairError } from "../src/rtcv/login_users.ts";
import { NoSessionError, Session } from "../src/session/session.ts";
import { DEFAULT_FAKE_KEY, startFakeRtcv } from "./fake_rtcv.ts";
import { runSession, tempDir } from "./helpers/spawn_client.ts";
import { liveDir, newKeyPair } from "./live_helpers.ts";

const line = (text: string) => readCommandLine({ kind: "text", text });

/** A service's own error, as any service would declare it. */
class ExampleServiceError extends ClientError {
  override name = "ExampleServiceError";
}

Deno.test("the registry answers a service's ClientError with its message and reports nothing; any other error is a bug", async () => {
  const reported: string[] = [];
  const registry = new CommandRegistry((type, error) =>
    reported.push(`${type}: ${(error as Error).message}`)
  );
  registry.registerAll({
    typed: defineBareCommand(() => {
      throw new ExampleServiceError("the example server said no");
    }),
    typed_later: defineBareCommand(() => Promise.reject(new ExampleServiceError("it said no later"))),
    bug: defineBareCommand(() => {
      throw new TypeError("x is undefined");
    }),
  });
  const answers = await Promise.all(
    ["typed", "typed_later", "bug"].map((type) => registry.dispatch(line(`{"type":"${type}"}`))),
  );
  assert.deepEqual(answers, [
    errorAnswer("typed: the example server said no"),
    errorAnswer("typed_later: it said no later"),
    errorAnswer("bug: failed unexpectedly: x is undefined"),
  ]);
  assert.deepEqual(reported, ["bug: x is undefined"], "only the bug goes to stderr");
});

Deno.test("the session's and the store's errors are typed and answered with their words, not as bugs", async () => {
  assert.throws(() => new Session(() => Promise.reject(new Error("unused"))).backend, (error: unknown) => {
    assert.ok(error instanceof NoSessionError && error instanceof ClientError);
    assert.equal(
      error.message,
      "no RT-CV server is set: call set_credentials first (or set_mock to try things out without a server)",
    );
    return true;
  });
  // A directory is no store: opening it fails with a StoreError, reported to the scraper.
  await using dir = await tempDir("rtcv_error_path_");
  const warnings: string[] = [];
  const core = new ClientCore({
    kvLocation: dir.path,
    clock: systemClock(),
    warn: (message) => warnings.push(message),
  });
  try {
    const sent = await core.registry.dispatch(line('{"type":"send_cv","content":{"referenceNumber":"r"}}'));
    assert.deepEqual(
      sent,
      errorAnswer(
        "send_cv: no RT-CV server is set: call set_credentials first (or set_mock to try things out without a server)",
      ),
    );
    const asked = await core.registry.dispatch(line('{"type":"has_cached_reference","content":"r"}'));
    assert.equal(asked.type, "error");
    assert.match(
      String(asked.content),
      new RegExp(`^has_cached_reference: cannot open the store ${dir.path}: `),
    );
    assert.deepEqual(warnings, [], "not reported as an unexpected error");
  } finally {
    await core.close();
  }
});

/** Live mode's options for a test: short timeouts, no retries worth waiting for. */
function liveOptions(overrides: Partial<LiveOptions> = {}): LiveOptions {
  return {
    policy: { ...defaultRequestPolicy(2000), maxRetries: 0 },
    log: () => {},
    ...overrides,
  };
}

/** An outbox over `store` with the default settings. */
function memoryOutbox(store: LazyStore, clock: Clock): Promise<Outbox> {
  return store.open().then(({ kv, batcher }) =>
    new Outbox({
      store: new KvOutboxStore(kv, batcher),
      clock,
      retry: DEFAULT_RETRY_SETTINGS,
      leaseMs: 30_000,
      maxInFlight: 8,
    })
  );
}

/** The cache and outbox openers live mode takes, over one in-memory store. */
function memoryDeps(): LiveDeps & { close(): Promise<void>; references: Promise<ReferenceCache> } {
  const store = new LazyStore(":memory:");
  const clock = systemClock();
  const references = store.open().then(({ kv, batcher }) => new ReferenceCache(kv, clock, { batcher }));
  const outbox = memoryOutbox(store, clock);
  return {
    references,
    openReferenceCache: () => references,
    openOutbox: () => outbox,
    close: async () => {
      await (await outbox).close(0);
      await store.close();
    },
  };
}

Deno.test("connectLive takes the cache and outbox openers it is given (no ClientCore): the warm-up fills that cache", async () => {
  await using rtcv = await startFakeRtcv({ scannedReferenceNrs: ["warm-1", "warm-2"] });
  const deps = memoryDeps();
  try {
    const backend = await connectLive([{ ...rtcv.credentials(), primary: true }], deps, liveOptions());
    try {
      assert.equal(backend.references, await deps.references);
      assert.ok(await backend.references.has("warm-1"));
      assert.ok(await backend.references.has("warm-2"));
    } finally {
      await backend.close({ drainMs: 0 });
    }
  } finally {
    await deps.close();
  }
});

Deno.test("every failure of connectLive is a ConnectError in today's words: server checks, key pair, store", async () => {
  await using rtcv = await startFakeRtcv();
  const primary = { ...rtcv.credentials(), primary: true };
  const deps = memoryDeps();
  try {
    const refused = connectLive([{ ...primary, apiKey: "not-the-key-123" }], deps, liveOptions());
    await assert.rejects(refused, (error: unknown) => {
      assert.ok(error instanceof ConnectError && error instanceof ClientError);
      assert.match(error.message, new RegExp(`^primary key check failed: ${rtcv.origin} answered 401`));
      assert.ok(!error.message.includes("not-the-key-123"));
      return true;
    });
    const pair = newKeyPair();
    const broken = connectLive(
      [primary],
      deps,
      liveOptions({
        keyPair: { publicKey: "bm90IDMyIGJ5dGVz", privateKey: pair.private_key, source: "the test" },
      }),
    );
    await assert.rejects(broken, (error: unknown) => {
      assert.ok(error instanceof ConnectError && error.cause instanceof KeyPairError);
      assert.equal(error.message, "the public key (the test) must be base64 of 32 bytes");
      assert.ok(!error.message.includes(pair.private_key));
      return true;
    });
    const noStore = connectLive([primary], {
      ...deps,
      openReferenceCache: () => Promise.reject(new StoreError("cannot open the store /x: it is locked")),
    }, liveOptions());
    await assert.rejects(noStore, (error: unknown) => {
      assert.ok(error instanceof ConnectError && error.cause instanceof StoreError);
      assert.equal(error.message, "cannot open the store /x: it is locked");
      return true;
    });
  } finally {
    await deps.close();
  }
});

Deno.test("RT-CV failures carry the server's role in their own message: primary <origin> answered ...", () => {
  const error = new RtcvApiError("https://rtcv.example.com", "answered 400: bad cv", {
    status: 400,
    serverMessage: "bad cv",
  });
  const primary = error.withRole("primary");
  assert.ok(primary instanceof ClientError);
  assert.equal(primary.message, "primary https://rtcv.example.com answered 400: bad cv");
  assert.equal(primary.role, "primary");
  assert.equal(primary.status, 400);
  assert.equal(primary.serverMessage, "bad cv");
  assert.equal(primary.detail, "answered 400: bad cv");
});

Deno.test("start-up: a configured key pair that does not work, or a store that cannot be opened, exits 1 naming it", async () => {
  await using rtcv = await startFakeRtcv({ variant: "newest" });
  await using dir = await liveDir();
  const a = newKeyPair();
  const b = newKeyPair();
  const config = JSON.stringify({ primary_server: rtcv.wireCredentials() });
  const badPair = await runSession([{ type: "ping" }], {
    RTCV_SCRAPER_CLIENT_ENV: config,
    RTCV_SCRAPER_CLIENT_KV: dir.kv,
    RTCV_SCRAPER_CLIENT_PUBLIC_KEY: a.public_key,
    RTCV_SCRAPER_CLIENT_PRIVATE_KEY: b.private_key,
  }, { cwd: dir.path });
  assert.equal(badPair.code, 1, badPair.stderr);
  assert.equal(badPair.stdout, "", "nothing on stdout, not even the ready line");
  assert.match(
    badPair.stderr,
    /the configured servers failed their start-up checks: the key pair \(RTCV_SCRAPER_CLIENT_PUBLIC_KEY \/ RTCV_SCRAPER_CLIENT_PRIVATE_KEY\) does not work/,
  );
  assert.ok(!badPair.stderr.includes(b.private_key));
  assert.doesNotMatch(badPair.stderr, /internal error|unexpected/);

  const noStore = await runSession([{ type: "ping" }], {
    RTCV_SCRAPER_CLIENT_ENV: config,
    RTCV_SCRAPER_CLIENT_KV: dir.path, // a directory
  }, { cwd: dir.path });
  assert.equal(noStore.code, 1, noStore.stderr);
  assert.equal(noStore.stdout, "");
  assert.match(
    noStore.stderr,
    new RegExp(`the configured servers failed their start-up checks: cannot open the store ${dir.path}: `),
  );
  assert.ok(!noStore.stderr.includes(DEFAULT_FAKE_KEY.apiKey));
});

Deno.test("installIngest takes the store, outbox and clock and returns its command group; the program registers it", async () => {
  const store = new LazyStore(":memory:");
  const clock = systemClock();
  const outbox = memoryOutbox(store, clock);
  const installed = installIngest({ openStore: () => store.open(), openOutbox: () => outbox, clock }, {
    timeoutMs: 1000,
    ingest: null,
    warn: () => {},
  });
  try {
    assert.deepEqual(Object.keys(installed.commands).sort(), [...INGEST_COMMAND_TYPES].sort());
    const reported: unknown[] = [];
    const registry = new CommandRegistry((_, error) => reported.push(error)).registerAll(installed.commands);
    const answers = await Promise.all([
      registry.dispatch(line('{"type":"next_keyword"}')),
      registry.dispatch(line('{"type":"set_ingest","content":{"base_url":"http://x","token":"a\\nb"}}')),
    ]);
    assert.deepEqual(answers, [
      errorAnswer(
        'next_keyword: no ingest server is set: call set_ingest first (or configure "ingest" in the config)',
      ),
      errorAnswer(
        "set_ingest: token must be printable ASCII without line breaks or leading or trailing spaces",
      ),
    ]);
    assert.deepEqual(reported, [], "typed errors, not bugs");
  } finally {
    await installed.close();
    await (await outbox).close(0);
    await store.close();
  }
});
