import assert from "node:assert/strict";
import { type Cv, ScraperClient, ScraperClientError } from "../mod.ts";

/** Runs `fn` with a client of the real program (main.ts) in a temporary working directory. */
async function withClient(
  fn: (client: ScraperClient, dir: string) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_module_test_" });
  const client = await ScraperClient.spawn({ cwd: dir, env: { RTCV_SCRAPER_CLIENT_KV: ":memory:", ...env } });
  try {
    await fn(client, dir);
  } finally {
    await client.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A stand-in for the client, run with `deno eval`: it writes the ready line, then for every input line
 * appends it to RECORD (when set) and answers according to MODE.
 */
const FAKE_CLIENT = `
const mode = Deno.env.get("MODE") ?? "ok";
const record = Deno.env.get("RECORD");
const out = (text) => Deno.stdout.writeSync(new TextEncoder().encode(text));
if (mode === "no-ready") { out("hello\\n"); }
else if (mode === "exit-before-ready") { Deno.exit(2); }
else { out('{"type":"ready","content":"waiting for credentials"}\\n'); }
let buffered = "";
let seen = 0;
const held = [];
for await (const chunk of Deno.stdin.readable) {
  buffered += new TextDecoder().decode(chunk);
  let end;
  while ((end = buffered.indexOf("\\n")) !== -1) {
    const line = buffered.slice(0, end);
    buffered = buffered.slice(end + 1);
    seen++;
    if (record) Deno.writeTextFileSync(record, line + "\\n", { append: true });
    if (mode === "exit-after-one") Deno.exit(3);
    if (mode === "garbage" && seen === 2) { out("this is not json\\n"); continue; }
    if (mode === "odd-answer") { out('{"type":"maybe"}\\n'); continue; }
    const { id, content } = JSON.parse(line);
    // echo: the content back, without the id, in input order (a client without answer ids)
    if (mode === "echo") { out(JSON.stringify({ type: "ok", content }) + "\\n"); continue; }
    // reverse: every three lines answered last first, each with its id (a client with answer ids)
    if (mode === "reverse") {
      held.push({ type: "ok", content, id });
      if (held.length === 3) for (const answer of held.splice(0).reverse()) out(JSON.stringify(answer) + "\\n");
      continue;
    }
    if (mode === "unknown-id") { out(JSON.stringify({ type: "ok", id: 999999 }) + "\\n"); continue; }
    out('{"type":"ok"}\\n');
  }
}
`;

function fakeCommand(): string[] {
  return [Deno.execPath(), "eval", "--no-check", FAKE_CLIENT];
}

Deno.test("ScraperClient drives a mock session of the real client", async () => {
  await withClient(async (client) => {
    await client.ping();
    await client.setMock({
      secrets: {
        api: { token: "abc" },
        user: { username: "foo", password: "bar" },
        users: [{ username: "foo", password: "bar" }, { username: "baz", password: "qux" }],
      },
    });
    assert.equal(await client.hasCachedReference("job-1"), false);
    assert.equal(await client.sendCv({ referenceNumber: "job-1", presentation: "Hello" }), true);
    assert.equal(await client.sendCv({ referenceNumber: "job-1" }), false, "a cached CV is not sent again");
    assert.equal(await client.hasCachedReference("job-1"), true);
    // The seed document's alias is accepted by the client too.
    assert.equal(await client.sendCv({ reference_number: "job-2" } as unknown as Cv), true);
    assert.equal(await client.hasCachedReference("job-2"), true);
    await client.setCachedReference("long-1");
    await client.setShortCachedReference("short-1");
    assert.equal(await client.hasCachedReference("long-1"), true);
    assert.equal(await client.hasCachedReference("short-1"), true);
    assert.equal(await client.command("get_cached_reference", "short-1"), true);
    assert.deepEqual(await client.getSecret({ key: "api", encryptionKey: "x" }), { token: "abc" });
    assert.equal(await client.getSecret({ key: "missing", encryptionKey: "x" }), null);
    assert.deepEqual(await client.getUserSecret({ encryptionKey: "x" }), {
      username: "foo",
      password: "bar",
    });
    assert.deepEqual(await client.getUsersSecret({ encryptionKey: "x" }), [
      { username: "foo", password: "bar" },
      { username: "baz", password: "qux" },
    ]);
    assert.deepEqual(
      await client.getUserSecret({ key: "users", encryptionKey: "x" }).catch((e) => e.kind),
      "answer",
    );
  });
});

Deno.test("concurrent calls get their own answers, in order, errors included", async () => {
  await withClient(async (client) => {
    await client.setMock({ secrets: { api: { token: "abc" } } });
    const results = await Promise.allSettled([
      client.sendCv({ referenceNumber: "a" }),
      client.sendCv({ referenceNumber: "a" }),
      client.hasCachedReference("a"),
      client.sendCv({ presentation: "no reference" } as unknown as Cv),
      client.ping(),
      client.getSecret({ key: "api", encryptionKey: "k" }),
      client.setCachedReference(""),
      client.hasCachedReference("b"),
      client.command("launch_rockets"),
      client.sendCv({ referenceNumber: "b" }),
    ]);
    const shown = results.map((r) =>
      r.status === "fulfilled" ? { ok: r.value } : { error: (r.reason as ScraperClientError).command }
    );
    assert.deepEqual(shown, [
      { ok: true },
      { ok: false },
      { ok: true },
      { error: "send_cv" },
      { ok: undefined },
      { ok: { token: "abc" } },
      { error: "set_cached_reference" },
      { ok: false },
      { error: "launch_rockets" },
      { ok: true },
    ]);

    // Many calls in flight at once (past the queue's compaction point) still match up.
    const many = await Promise.all(
      Array.from(
        { length: 3000 },
        (_, i) =>
          i % 3 === 0
            ? client.sendCv({ referenceNumber: `many-${i}` })
            : i % 3 === 1
            ? client.hasCachedReference(`many-${i - 1}`)
            : client.ping().then(() => "pong"),
      ),
    );
    many.forEach((value, i) => assert.equal(value, i % 3 === 2 ? "pong" : true, `call ${i}`));
  });
});

Deno.test("an error answer rejects with ScraperClientError carrying the client's message", async () => {
  await withClient(async (client) => {
    const early = await client.sendCv({ referenceNumber: "x" }).catch((error) => error);
    assert.ok(early instanceof ScraperClientError);
    assert.equal(early.name, "ScraperClientError");
    assert.equal(early.kind, "answer");
    assert.equal(early.command, "send_cv");
    assert.match(early.message, /^send_cv: .*call set_credentials first/);

    await client.setMock({ secrets: { user: "not a login" } });
    await assert.rejects(
      client.getUserSecret({ encryptionKey: "x" }),
      (error) => error instanceof ScraperClientError && /^get_user_secret: /.test(error.message),
    );
    await assert.rejects(
      client.sendCv({ referenceNumber: "" }),
      (error) =>
        error instanceof ScraperClientError && error.kind === "answer" && error.command === "send_cv",
    );
    await assert.rejects(client.command("nope"), /unknown command type "nope"/);
    await assert.rejects(
      client.command("ping", { big: 10n }),
      (error) => error instanceof TypeError && /cannot be encoded as JSON/.test(error.message),
    );
    await client.ping(); // still in step after all that
  });
});

Deno.test("close() lets pending calls finish, resolves with exit code 0, and later calls reject", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_module_test_" });
  try {
    const client = await ScraperClient.spawn({ cwd: dir, env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
    assert.ok(client.pid > 0);
    await client.setMock();
    const inFlight = [client.sendCv({ referenceNumber: "c" }), client.hasCachedReference("c")];
    const closing = client.close();
    assert.equal(client.close(), closing, "close() twice gives the same promise");
    const status = await closing;
    assert.equal(status.code, 0);
    assert.equal(status.success, true);
    assert.deepEqual(await Promise.all(inFlight), [true, true]);
    await assert.rejects(
      client.ping(),
      (error) => error instanceof ScraperClientError && error.kind === "closed" && error.command === "ping",
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "a mock session with :memory: leaves no files");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM through kill() ends the client cleanly and await using closes it", async () => {
  const client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
  await client.ping();
  client.kill();
  const status = await client.close();
  assert.equal(status.code, 0);

  let disposed: ScraperClient | null = null;
  {
    await using scoped = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
    await scoped.ping();
    disposed = scoped;
  }
  await assert.rejects(
    disposed.ping(),
    (error) => error instanceof ScraperClientError && error.kind === "closed",
  );
});

Deno.test("setCredentials and the secret calls put snake_case on the wire", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_module_test_" });
  const record = `${dir}/lines.jsonl`;
  try {
    const client = await ScraperClient.spawn({ command: fakeCommand(), env: { RECORD: record } });
    await client.setCredentials({ serverLocation: "https://a.example", apiKeyId: "id", apiKey: "key" });
    await client.setCredentials([
      { serverLocation: "https://a.example", apiKeyId: "id1", apiKey: "k1", primary: true },
      { serverLocation: "https://b.example", apiKeyId: "id2", apiKey: "k2", primary: false },
    ]);
    await client.setMock();
    await client.setMock({ secrets: { a: 1 } });
    await client.getSecret({ key: "a/b c", encryptionKey: "e" });
    await client.getUserSecret({ encryptionKey: "e" });
    await client.getUsersSecret({ key: "logins", encryptionKey: "e" });
    await client.setCachedReference("r1");
    await client.setShortCachedReference("r2");
    await client.getLoginUsers();
    await client.sendCvsList([{ referenceNumber: "l1" }, { referenceNumber: "l2" }]);
    await client.sendCvDocument({ cv: { referenceNumber: "d1" }, file: "cv.pdf" }).catch(() => {});
    await client.sendCvDocument({ cv: { referenceNumber: "d2" }, fileBase64: "JVBERg==", contentType: "x/y" })
      .catch(() => {});
    await client.ping();
    assert.equal((await client.close()).code, 0);
    const lines = (await Deno.readTextFile(record)).trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(lines.map((line) => line.id), lines.map((_, i) => i + 1), "every call sends its own id");
    for (const line of lines) delete line.id;
    assert.deepEqual(lines, [
      {
        type: "set_credentials",
        content: { server_location: "https://a.example", api_key_id: "id", api_key: "key" },
      },
      {
        type: "set_credentials",
        content: [
          { server_location: "https://a.example", api_key_id: "id1", api_key: "k1", primary: true },
          { server_location: "https://b.example", api_key_id: "id2", api_key: "k2", primary: false },
        ],
      },
      { type: "set_mock", content: {} },
      { type: "set_mock", content: { secrets: { a: 1 } } },
      { type: "get_secret", content: { key: "a/b c", encryption_key: "e" } },
      { type: "get_user_secret", content: { encryption_key: "e" } },
      { type: "get_users_secret", content: { key: "logins", encryption_key: "e" } },
      { type: "set_cached_reference", content: "r1" },
      { type: "set_short_cached_reference", content: "r2" },
      { type: "get_login_users" },
      { type: "send_cvs_list", content: [{ referenceNumber: "l1" }, { referenceNumber: "l2" }] },
      { type: "send_cv_document", content: { cv: { referenceNumber: "d1" }, file: "cv.pdf" } },
      {
        type: "send_cv_document",
        content: { cv: { referenceNumber: "d2" }, file_base64: "JVBERg==", content_type: "x/y" },
      },
      { type: "ping" },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("when the process dies, pending calls reject with its exit code", async () => {
  const client = await ScraperClient.spawn({ command: fakeCommand(), env: { MODE: "exit-after-one" } });
  const results = await Promise.allSettled([client.ping(), client.hasCachedReference("x")]);
  for (const [result, type] of [[results[0], "ping"], [results[1], "has_cached_reference"]] as const) {
    assert.equal(result.status, "rejected");
    const error = (result as PromiseRejectedResult).reason;
    assert.ok(error instanceof ScraperClientError);
    assert.equal(error.kind, "exited");
    assert.equal(error.exitCode, 3);
    assert.equal(error.command, type);
    assert.equal(error.message, `the client exited with code 3 before answering ${type}`);
  }
  await assert.rejects(
    client.ping(),
    (error) => error instanceof ScraperClientError && error.kind === "exited",
  );
  assert.equal((await client.close()).code, 3);
});

Deno.test("spawn rejects when the client cannot start or exits before its ready line", async () => {
  await assert.rejects(
    ScraperClient.spawn({ command: ["/nonexistent/rtcv_scraper_client"] }),
    (error) =>
      error instanceof ScraperClientError && error.kind === "spawn" &&
      error.message.startsWith("Cannot start the client /nonexistent/rtcv_scraper_client"),
  );
  await assert.rejects(ScraperClient.spawn({ command: [] }), TypeError);
  await assert.rejects(
    ScraperClient.spawn({ command: fakeCommand(), env: { MODE: "exit-before-ready" } }),
    (error) =>
      error instanceof ScraperClientError && error.kind === "spawn" && error.exitCode === 2 &&
      /exited with code 2 before it was ready/.test(error.message),
  );
  // The real client: an invalid configuration stops it before the ready line with exit code 2.
  await assert.rejects(
    ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "soon" }, stderr: "null" }),
    (error) => error instanceof ScraperClientError && error.kind === "spawn" && error.exitCode === 2,
  );
  await assert.rejects(
    ScraperClient.spawn({ command: fakeCommand(), env: { MODE: "no-ready" } }),
    (error) =>
      error instanceof ScraperClientError && error.kind === "spawn" &&
      /not the ready line/.test(error.message),
  );
});

Deno.test("a line that is not a protocol answer breaks the client and rejects what waits", async () => {
  const garbage = await ScraperClient.spawn({ command: fakeCommand(), env: { MODE: "garbage" } });
  const results = await Promise.allSettled([garbage.ping(), garbage.ping(), garbage.ping()]);
  assert.equal(results[0].status, "fulfilled");
  for (const result of results.slice(1)) {
    assert.equal(result.status, "rejected");
    const error = (result as PromiseRejectedResult).reason;
    assert.ok(error instanceof ScraperClientError && error.kind === "protocol", String(error));
    assert.ok(!error.message.includes("this is not json"), "the bad line is not quoted");
  }
  await assert.rejects(
    garbage.ping(),
    (error) => error instanceof ScraperClientError && error.kind === "protocol",
  );
  await garbage.close();

  const odd = await ScraperClient.spawn({ command: fakeCommand(), env: { MODE: "odd-answer" } });
  await assert.rejects(
    odd.ping(),
    (error) =>
      error instanceof ScraperClientError && error.kind === "protocol" && /type "maybe"/.test(error.message),
  );
  await odd.close();
});

Deno.test("answers are matched by id when they carry one, out of order", async () => {
  await using client = await ScraperClient.spawn({ command: fakeCommand(), env: { MODE: "reverse" } });
  const answers = await Promise.all(["a", "b", "c", "d", "e", "f"].map((x) => client.command("echo", x)));
  assert.deepEqual(answers, ["a", "b", "c", "d", "e", "f"]);
});

Deno.test("answers without an id are matched in order (a client without answer ids)", async () => {
  await using client = await ScraperClient.spawn({ command: fakeCommand(), env: { MODE: "echo" } });
  const answers = await Promise.all(["a", "b", "c"].map((x) => client.command("echo", x)));
  assert.deepEqual(answers, ["a", "b", "c"]);
  assert.deepEqual(await client.sendCvsList([{ referenceNumber: "x" }]), [{ referenceNumber: "x" }]);
});

Deno.test("an answer with an id no call was sent with breaks the client", async () => {
  const client = await ScraperClient.spawn({ command: fakeCommand(), env: { MODE: "unknown-id" } });
  await assert.rejects(
    client.ping(),
    (error) =>
      error instanceof ScraperClientError && error.kind === "protocol" &&
      /an id no command/.test(error.message),
  );
  await client.close();
});

Deno.test("with the real client, a slow sendCv does not hold up a hasCachedReference issued after it", async () => {
  const { startFakeRtcv } = await import("./fake_rtcv.ts");
  await using rtcv = await startFakeRtcv();
  await withClient(async (client) => {
    const { server_location, api_key_id, api_key } = rtcv.wireCredentials();
    await client.setCredentials({ serverLocation: server_location, apiKeyId: api_key_id, apiKey: api_key });
    rtcv.delayRoutes.set("/api/v1/scraper/scanCV", 1_500);
    let sent = false;
    const sending = client.sendCv({ referenceNumber: "module-slow" }).then((matched) => {
      sent = true;
      return matched;
    });
    assert.equal(await client.hasCachedReference("module-other"), false);
    assert.equal(sent, false, "hasCachedReference was answered while sendCv still waited for RT-CV");
    assert.equal(await sending, false);
  });
});
