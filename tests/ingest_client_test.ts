import assert from "node:assert/strict";
import {
  checkIngestServer,
  IngestApiError,
  IngestClient,
  IngestServerError,
} from "../src/ingest/ingest_client.ts";
import { batchBody, packRows, splitItems } from "../src/ingest/item_rows.ts";
import { CommitBatcher } from "../src/cache/commit_batcher.ts";
import type { RequestPolicy } from "../src/http/request_policy.ts";
import { FAKE_INGEST_TOKEN, startFakeIngest, unreachableIngestUrl } from "./fake_ingest.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function policy(overrides: Partial<RequestPolicy> = {}): RequestPolicy {
  return {
    timeoutMs: 2000,
    maxRetries: 3,
    baseDelayMs: 250,
    maxRetryAfterMs: 10_000,
    random: () => 0.5,
    sleep: () => Promise.resolve(),
    ...overrides,
  };
}

async function rejection(promise: Promise<unknown>): Promise<IngestApiError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof IngestApiError, `expected an IngestApiError, got ${error}`);
    assert.ok(!error.message.includes(FAKE_INGEST_TOKEN), `the token leaked: ${error.message}`);
    return error;
  }
  assert.fail("expected the request to fail");
}

Deno.test("a batch is POSTed with the token header and a JSON body", async () => {
  const server = startFakeIngest();
  try {
    const client = IngestClient.create({ baseUrl: server.url + "/", token: FAKE_INGEST_TOKEN }, policy());
    const body = batchBody({ dataType: "company", platform: "qcwy" }, [encoder.encode('{"a":1},{"b":"二"}')]);
    await client.storeBatch(body);
    assert.equal(server.requests.length, 1);
    assert.equal(server.requests[0].path, "/api/v1/universal/data/batch-store-async");
    assert.equal(server.requests[0].token, FAKE_INGEST_TOKEN);
    assert.equal(server.requests[0].contentType, "application/json");
    assert.deepEqual(server.batches[0].items, [{ a: 1 }, { b: "二" }]);
    assert.equal(server.batches[0].dataType, "company");
    assert.equal(server.batches[0].platform, "qcwy");
    assert.deepEqual(Object.keys(JSON.parse(decoder.decode(body))), ["data_list", "data_type", "platform"]);
  } finally {
    await server.close();
  }
});

Deno.test("GETs pass the server's JSON through; a base path prefix is kept", async () => {
  const server = startFakeIngest();
  try {
    const client = IngestClient.create({ baseUrl: server.url, token: FAKE_INGEST_TOKEN }, policy());
    assert.deepEqual(await client.nextKeyword("zhilian"), {
      code: 200,
      msg: "OK",
      data: { keyword: "java", platform: "zhilian" },
    });
    assert.equal(server.requests[0].path, "/api/v1/keyword/available?platform=zhilian");
    await client.nextKeyword();
    assert.equal(server.requests[1].path, "/api/v1/keyword/available");
    assert.deepEqual(await client.getTokens(), server.tokens);
    const prefixed = IngestClient.create(
      { baseUrl: server.url + "/prefix/", token: FAKE_INGEST_TOKEN },
      policy(),
    );
    const error = await rejection(prefixed.getTokens());
    assert.equal(server.requests.at(-1)!.path, "/prefix/api/v1/token/tokens");
    assert.equal(error.status, 404);
    assert.equal(error.failure, "config");
  } finally {
    await server.close();
  }
});

Deno.test("errors name the origin and the server's message, never the token", async () => {
  const server = startFakeIngest();
  try {
    const client = IngestClient.create({ baseUrl: server.url, token: FAKE_INGEST_TOKEN }, policy());
    server.failNext(1, 400, `bad token ${FAKE_INGEST_TOKEN} in request`);
    let error = await rejection(client.getTokens());
    assert.equal(error.message, `ingest server ${server.url} answered 400: bad token [redacted] in request`);
    assert.equal(error.failure, "rejected");

    const wrong = IngestClient.create({ baseUrl: server.url, token: "not-the-token" }, policy());
    error = await rejection(wrong.getTokens());
    assert.equal(error.message, `ingest server ${server.url} answered 401: invalid token`);
    assert.equal(error.failure, "config");

    server.failNext(4, 503, "busy");
    error = await rejection(client.getTokens());
    assert.equal(error.message, `ingest server ${server.url} answered 503: busy (4 attempts)`);
    assert.equal(error.failure, "transient");

    const gone = IngestClient.create({ baseUrl: unreachableIngestUrl(), token: FAKE_INGEST_TOKEN }, policy());
    error = await rejection(gone.getTokens());
    assert.match(
      error.message,
      /^ingest server http:\/\/127\.0\.0\.1:\d+ could not be reached: .+ \(4 attempts\)$/,
    );
    assert.equal(error.status, null);
  } finally {
    await server.close();
  }
});

Deno.test("429, 5xx and timeouts are retried; other 4xx are not", async () => {
  const server = startFakeIngest();
  try {
    const client = IngestClient.create({ baseUrl: server.url, token: FAKE_INGEST_TOKEN }, policy());
    server.failNext(1, 429, "slow down", "1");
    server.failNext(1, 500, "oops");
    server.failNext(1, 502, "bad gateway");
    assert.deepEqual(await client.getTokens(), server.tokens);
    assert.deepEqual(server.requests.map((request) => request.status), [429, 500, 502, 200]);

    server.failNext(1, 422, "data_list must not be empty");
    const error = await rejection(client.getTokens());
    assert.equal(error.status, 422);
    assert.equal(server.requests.length, 5);

    server.latencyMs = 1000;
    const slow = IngestClient.create(
      { baseUrl: server.url, token: FAKE_INGEST_TOKEN },
      policy({ timeoutMs: 30, maxRetries: 1 }),
    );
    const timeout = await rejection(slow.getTokens());
    assert.equal(timeout.message, `ingest server ${server.url} did not answer within 30 ms (2 attempts)`);
    assert.equal(timeout.failure, "transient");
  } finally {
    await server.close();
  }
});

Deno.test("a FastAPI validation error body is summarized", async () => {
  const server = startFakeIngest();
  try {
    const client = IngestClient.create({ baseUrl: server.url, token: FAKE_INGEST_TOKEN }, policy());
    const error = await rejection(client.storeBatch(encoder.encode("{}")));
    assert.equal(
      error.message,
      `ingest server ${server.url} answered 422: body: data_list, data_type and platform are required`,
    );
  } finally {
    await server.close();
  }
});

Deno.test("bad addresses and tokens are refused with the field named, the token never shown", () => {
  const cases: [string, string, RegExp][] = [
    ["ftp://x", "t0k", /^base_url must start with http:\/\/ or https:\/\//],
    ["not a url", "t0k", /^base_url is not a URL/],
    ["http://user:pw@x", "t0k", /^base_url of http:\/\/x must not contain a user name/],
    ["http://x/?a=1", "t0k", /^base_url of http:\/\/x must not have a query/],
    ["http://x", "", /^token must be a non-empty string/],
    ["http://x", "bad\ntoken-secret", /^token must be printable ASCII/],
    ["http://x", " padded-secret", /^token must be printable ASCII/],
  ];
  for (const [baseUrl, token, expected] of cases) {
    assert.throws(() => checkIngestServer({ baseUrl, token }), (error: Error) => {
      assert.ok(error instanceof IngestServerError);
      assert.match(error.message, expected);
      assert.ok(token === "" || !error.message.includes(token.trim()));
      return true;
    });
  }
  const client = IngestClient.create({ baseUrl: "http://x", token: FAKE_INGEST_TOKEN }, policy());
  for (const shown of [String(client), JSON.stringify(client), Deno.inspect(client)]) {
    assert.ok(!shown.includes(FAKE_INGEST_TOKEN), shown);
  }
});

Deno.test("rows: packed by item count and size, split at item boundaries", () => {
  const texts = Array.from({ length: 250 }, (_, i) => JSON.stringify({ id: i, s: 'a,b}]"' }));
  const rows = packRows(texts, 100);
  assert.deepEqual(rows.map((row) => row.count), [100, 100, 50]);
  assert.deepEqual(
    JSON.parse(`[${decoder.decode(rows[2].data)}]`).map((item: { id: number }) => item.id)[0],
    200,
  );

  // Chinese text is 3 bytes per character in UTF-8: rows split before 63,000 bytes.
  const wide = Array.from({ length: 100 }, (_, i) => JSON.stringify({ id: i, text: "职".repeat(400) }));
  const wideRows = packRows(wide, 100);
  assert.ok(wideRows.length > 1);
  assert.equal(wideRows.reduce((sum, row) => sum + row.count, 0), 100);
  for (const row of wideRows) assert.ok(row.data.byteLength <= 63_000);

  const big = packRows([JSON.stringify({ text: "x".repeat(200_000) })], 100);
  assert.equal(big.length, 1);
  assert.ok(big[0].data.byteLength > 200_000);

  const [head, tail] = splitItems(rows[0].data, 30)!;
  assert.equal(JSON.parse(`[${decoder.decode(head)}]`).length, 30);
  assert.equal(JSON.parse(`[${decoder.decode(tail)}]`).length, 70);
  assert.equal(splitItems(rows[2].data, 50), null);
});

Deno.test("the sized batcher commits many 60 KB rows queued at once (the count-only batcher cannot)", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const batcher = new CommitBatcher(kv);
    const writes = Array.from(
      { length: 60 },
      (_, i) => batcher.write([{ type: "set", key: ["row", i], value: { n: 1, b: new Uint8Array(60_000) } }]),
    );
    await Promise.all(writes);
    const huge = Array.from({ length: 40 }, (_, i): Deno.KvMutation => ({
      type: "set",
      key: ["huge", i],
      value: new Uint8Array(60_000),
    }));
    await batcher.write(huge); // more than one atomic operation holds: committed in chunks
    let count = 0;
    for await (const _ of kv.list({ prefix: [] })) count++;
    assert.equal(count, 100);
    await batcher.drained();
  } finally {
    kv.close();
  }
});
