/**
 * A fake job-data ingest server for tests, on `Deno.serve` at 127.0.0.1 and a free port.
 *
 * It checks the `token` header (401 otherwise), records every accepted batch of
 * `POST /api/v1/universal/data/batch-store-async`, answers `GET /api/v1/keyword/available` and
 * `GET /api/v1/token/tokens`, and has switches to fail the next requests, to be slow, and to refuse
 * batches. Switches are plain mutable properties, read on every request.
 *
 * @example
 * ```ts ignore
 * const ingest = await startFakeIngest({ token: "t0ken-for-tests" });
 * ingest.failNext(2, 503);                             // the next two requests get 503
 * ingest.refuse = (batch) => batch.items.some((item) => item.bad === true) ? 400 : null;
 * // ... point the client at ingest.url ...
 * ingest.items("job", "boss");                         // every item received, in order
 * await ingest.close();
 * ```
 *
 * @module
 */

/** One accepted batch, in arrival order. */
export interface FakeBatch {
  /** The body's `data_type`. */
  readonly dataType: string;
  /** The body's `platform`. */
  readonly platform: string;
  /** The body's `data_list`. */
  readonly items: Record<string, unknown>[];
  /** Arrival time, `Date.now()`. */
  readonly at: number;
}

/** One request, in arrival order (also refused ones). */
export interface FakeIngestRequest {
  /** HTTP method. */
  readonly method: string;
  /** Path and query as sent. */
  readonly path: string;
  /** The `token` header, or null. */
  readonly token: string | null;
  /** The `content-type` header, or null. */
  readonly contentType: string | null;
  /** The status answered. */
  status: number;
}

/** Options of {@linkcode startFakeIngest}. */
export interface FakeIngestOptions {
  /** The token the fake accepts; default {@linkcode FAKE_INGEST_TOKEN}. */
  readonly token?: string;
  /** Delay before answering each request; default 0. */
  readonly latencyMs?: number;
}

/** The token the fake accepts by default. Long and unusual, so a grep for it in output is meaningful. */
export const FAKE_INGEST_TOKEN = "fake-ingest-token-5ecr3t-0123456789abcdef";

/** A running fake; see the module documentation. */
export interface FakeIngest {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The accepted token. */
  token: string;
  /** Accepted batches, in arrival order. */
  readonly batches: FakeBatch[];
  /** Every request, in arrival order. */
  readonly requests: FakeIngestRequest[];
  /** Delay before each answer, ms. */
  latencyMs: number;
  /** Decides a status to refuse a batch with (e.g. 400), or null to accept it. */
  refuse: ((batch: FakeBatch) => number | null) | null;
  /** What `GET /api/v1/keyword/available` answers; gets the `platform` query value or null. */
  keyword: (platform: string | null) => unknown;
  /** What `GET /api/v1/token/tokens` answers. */
  tokens: unknown;
  /** Called with each accepted batch, after it is recorded (e.g. to fail the requests after it). */
  onBatch: ((batch: FakeBatch) => void) | null;
  /** The next `count` requests answer `status` with `{"msg": message}` (`Retry-After` when given). */
  failNext(count: number, status: number, message?: string, retryAfter?: string): void;
  /** Forgets the failures queued by {@linkcode FakeIngest.failNext}. */
  clearFailures(): void;
  /** Every item received for a stream, in arrival order. */
  items(dataType: string, platform: string): Record<string, unknown>[];
  /** Stops the server. */
  close(): Promise<void>;
}

/** Starts a fake ingest server; close it with {@linkcode FakeIngest.close}. */
export function startFakeIngest(options: FakeIngestOptions = {}): FakeIngest {
  /** Requests waiting out `latencyMs`; `close` ends their waits so it need not wait for them. */
  const delays = new Set<() => void>();
  const failures: { remaining: number; status: number; message: string; retryAfter?: string }[] = [];
  const fake: FakeIngest = {
    url: "",
    token: options.token ?? FAKE_INGEST_TOKEN,
    batches: [],
    requests: [],
    latencyMs: options.latencyMs ?? 0,
    refuse: null,
    onBatch: null,
    keyword: (platform) => ({ code: 200, msg: "OK", data: { keyword: "java", platform } }),
    tokens: { code: 200, msg: "OK", data: [{ id: 1, token: "mpt-1" }] },
    failNext(count, status, message = "temporarily unavailable", retryAfter) {
      failures.push({ remaining: count, status, message, retryAfter });
    },
    clearFailures() {
      failures.length = 0;
    },
    items(dataType, platform) {
      return fake.batches.filter((batch) => batch.dataType === dataType && batch.platform === platform)
        .flatMap((batch) => batch.items);
    },
    close: () => {
      for (const done of [...delays]) done();
      return server.shutdown();
    },
  };

  const handle = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const record: FakeIngestRequest = {
      method: request.method,
      path: url.pathname + url.search,
      token: request.headers.get("token"),
      contentType: request.headers.get("content-type"),
      status: 0,
    };
    fake.requests.push(record);
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      return Response.json(body, { status, headers });
    };
    const text = await request.text();
    if (fake.latencyMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, fake.latencyMs);
        delays.add(done);
        function done() {
          clearTimeout(timer);
          delays.delete(done);
          resolve();
        }
      });
    }
    const failure = failures.find((entry) => entry.remaining > 0);
    if (failure) {
      failure.remaining--;
      return answer(
        failure.status,
        { code: failure.status, msg: failure.message },
        failure.retryAfter ? { "retry-after": failure.retryAfter } : {},
      );
    }
    if (record.token !== fake.token) return answer(401, { code: 401, msg: "invalid token" });
    if (request.method === "POST" && url.pathname === "/api/v1/universal/data/batch-store-async") {
      let body: { data_list?: unknown; data_type?: unknown; platform?: unknown };
      try {
        body = JSON.parse(text);
      } catch {
        return answer(422, { detail: [{ loc: ["body"], msg: "invalid JSON" }] });
      }
      if (
        !Array.isArray(body.data_list) || typeof body.data_type !== "string" ||
        typeof body.platform !== "string"
      ) {
        return answer(422, {
          detail: [{ loc: ["body"], msg: "data_list, data_type and platform are required" }],
        });
      }
      const batch: FakeBatch = {
        dataType: body.data_type,
        platform: body.platform,
        items: body.data_list,
        at: Date.now(),
      };
      const refused = fake.refuse?.(batch) ?? null;
      if (refused !== null) return answer(refused, { code: refused, msg: "data_list holds an invalid item" });
      fake.batches.push(batch);
      fake.onBatch?.(batch);
      return answer(200, { code: 200, msg: "OK", data: { count: batch.items.length } });
    }
    if (request.method === "GET" && url.pathname === "/api/v1/keyword/available") {
      return answer(200, fake.keyword(url.searchParams.get("platform")));
    }
    if (request.method === "GET" && url.pathname === "/api/v1/token/tokens") return answer(200, fake.tokens);
    return answer(404, { detail: "Not Found" });
  };

  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, handle);
  (fake as { url: string }).url = `http://127.0.0.1:${server.addr.port}`;
  return fake;
}

/** A URL where nothing listens (a port that was free a moment ago): requests to it are refused. */
export function unreachableIngestUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return `http://127.0.0.1:${port}`;
}
