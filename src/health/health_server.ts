import { PROMETHEUS_CONTENT_TYPE } from "./prometheus_text.ts";

/** Pending and dead outbox items by target, e.g. `{"mirrors": {"https://m.example": {pending: 1, dead: 0}}}`. */
export interface OutboxDetail {
  readonly mirrors: Record<string, { pending: number; dead: number }>;
  readonly ingest: Record<string, { pending: number; dead: number }>;
}

/**
 * What the client is doing now, as the health check reports it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { HealthStatus } from "./health_server.ts";
 * const status: HealthStatus = {
 *   mode: "live",
 *   servers: ["https://rtcv.example.com"],
 *   outbox: 0,
 *   failing: "primary https://rtcv.example.com: 3 sends failed in a row",
 * };
 * assert.ok(status.failing); // GET / answers 503 while it is set
 * ```
 */
export interface HealthStatus {
  /** `none` before credentials or mock mode are set, `mock`, or `live`. */
  readonly mode: "none" | "mock" | "live";
  /** Origins of the servers in use (primary first); never keys. */
  readonly servers: readonly string[];
  /** Items waiting in the durable outbox (CV copies and job data). */
  readonly outbox: number;
  /** Pending and dead per server origin (`mirrors`) and ingest stream (`ingest`), when known. */
  readonly outbox_detail?: OutboxDetail;
  /**
   * Set while the primary server has been failing: a short reason without secrets (e.g.
   * `primary https://rtcv.example.com: 3 sends failed in a row`). `GET /` answers 503 while it is set.
   */
  readonly failing?: string | null;
}

/**
 * What the health server reads the metrics from; `ClientMetrics` fits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { HealthMetrics } from "./health_server.ts";
 * const metrics: HealthMetrics = { render: () => "", uptimeSeconds: () => 0 };
 * assert.equal(metrics.uptimeSeconds(), 0);
 * ```
 */
export interface HealthMetrics {
  /** The Prometheus text page. */
  render(): string | Promise<string>;
  /** Seconds since the client started. */
  uptimeSeconds(): number;
}

/**
 * Where the health server listens and what it reports.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientMetrics } from "./client_metrics.ts";
 * import type { HealthServerOptions } from "./health_server.ts";
 * const options: HealthServerOptions = {
 *   port: 9090,
 *   metrics: new ClientMetrics(),
 *   status: () => ({ mode: "none", servers: [], outbox: 0 }),
 * };
 * assert.equal(options.host, undefined); // 127.0.0.1
 * ```
 */
export interface HealthServerOptions {
  /** Interface to bind; default `127.0.0.1` (`RTCV_SCRAPER_CLIENT_HEALTH_CHECK_HOST`). */
  readonly host?: string;
  /** Port to bind (`RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT`); 0 picks a free one. */
  readonly port: number;
  /** Read at every `GET /`; a throw answers 503. */
  readonly status: () => HealthStatus | Promise<HealthStatus>;
  /** Read at every `GET /metrics`. */
  readonly metrics: HealthMetrics;
}

/**
 * A running health server.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientMetrics } from "./client_metrics.ts";
 * import { type HealthServer, startHealthServer } from "./health_server.ts";
 * const server: HealthServer = await startHealthServer({
 *   port: 0,
 *   metrics: new ClientMetrics(),
 *   status: () => ({ mode: "none", servers: [], outbox: 0 }),
 * });
 * assert.ok(server.port > 0); // the free port it chose
 * await server.close();
 * ```
 */
export interface HealthServer {
  /** The interface it listens on. */
  readonly host: string;
  /** The port it listens on (the chosen one when 0 was asked for). */
  readonly port: number;
  /** Stops listening and waits for requests in flight. */
  close(): Promise<void>;
}

/**
 * The body of `GET /`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { HealthBody } from "./health_server.ts";
 * const body: HealthBody = { status: "ok", mode: "mock", servers: [], outbox: 0, uptime_seconds: 12.5 };
 * assert.equal(body.reason, undefined); // only while failing
 * ```
 */
export interface HealthBody {
  /** `ok` (200) or `failing` (503). */
  status: "ok" | "failing";
  /** Why it is failing; only when `status` is `failing`. */
  reason?: string;
  /** See {@linkcode HealthStatus.mode}. */
  mode: HealthStatus["mode"];
  /** See {@linkcode HealthStatus.servers}. */
  servers: string[];
  /** See {@linkcode HealthStatus.outbox}. */
  outbox: number;
  /** See {@linkcode HealthStatus.outbox_detail}. */
  outbox_detail?: OutboxDetail;
  /** Seconds since the client started. */
  uptime_seconds: number;
}

/**
 * The default interface: the health check is for the machine itself unless configured otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_HEALTH_HOST } from "./health_server.ts";
 * assert.equal(DEFAULT_HEALTH_HOST, "127.0.0.1");
 * ```
 */
export const DEFAULT_HEALTH_HOST = "127.0.0.1";

/**
 * Starts the health check server of `RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT`:
 *
 * - `GET /` → 200 `{"status":"ok","mode":...,"servers":[...],"outbox":n,"uptime_seconds":s}`, or 503 with
 *   `"status":"failing"` and a `reason` while the primary server has been failing (or the status callback
 *   throws);
 * - `GET /metrics` → the Prometheus text page (`text/plain; version=0.0.4`);
 * - `HEAD` like `GET` without a body; other methods 405; other paths 404.
 *
 * It writes nothing to stdout (stdout carries protocol lines only): `Deno.serve`'s "Listening on" line is
 * silenced and errors become 500 answers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientMetrics } from "./client_metrics.ts";
 * import { startHealthServer } from "./health_server.ts";
 * const metrics = new ClientMetrics();
 * const server = await startHealthServer({
 *   port: 0,
 *   metrics,
 *   status: () => ({ mode: "mock", servers: [], outbox: 0 }),
 * });
 * const answer = await fetch(`http://127.0.0.1:${server.port}/`);
 * const body = await answer.json();
 * assert.deepEqual({ ...body, uptime_seconds: 0 }, { status: "ok", mode: "mock", servers: [], outbox: 0, uptime_seconds: 0 });
 * await server.close();
 * ```
 */
export function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const host = options.host ?? DEFAULT_HEALTH_HOST;
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname: host,
        port: options.port,
        onListen: (addr) => {
          resolve({
            host,
            port: addr.port,
            close: async () => {
              await server.shutdown();
            },
          });
        },
        onError: () => textResponse(500, "internal error\n"),
      }, (request) => handle(request, options));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      reject(
        new Error(`Cannot start the health server on ${host}:${options.port}: ${reason}`, { cause: error }),
      );
    }
  });
}

async function handle(request: Request, options: HealthServerOptions): Promise<Response> {
  const { pathname } = new URL(request.url);
  if (pathname !== "/" && pathname !== "/metrics") return textResponse(404, "not found: try / or /metrics\n");
  if (request.method !== "GET" && request.method !== "HEAD") {
    return textResponse(405, "method not allowed: use GET\n", { allow: "GET, HEAD" });
  }
  const response = pathname === "/" ? await statusResponse(options) : await metricsResponse(options);
  return request.method === "HEAD" ? new Response(null, response) : response;
}

async function statusResponse(options: HealthServerOptions): Promise<Response> {
  const uptime = Math.round(options.metrics.uptimeSeconds() * 1000) / 1000;
  let body: HealthBody;
  try {
    const status = await options.status();
    body = {
      status: status.failing ? "failing" : "ok",
      ...(status.failing ? { reason: status.failing } : {}),
      mode: status.mode,
      servers: [...status.servers],
      outbox: status.outbox,
      ...(status.outbox_detail ? { outbox_detail: status.outbox_detail } : {}),
      uptime_seconds: uptime,
    };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    body = {
      status: "failing",
      reason: `the status could not be read: ${reason}`,
      mode: "none",
      servers: [],
      outbox: 0,
      uptime_seconds: uptime,
    };
  }
  return new Response(JSON.stringify(body) + "\n", {
    status: body.status === "ok" ? 200 : 503,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

async function metricsResponse(options: HealthServerOptions): Promise<Response> {
  const text = await options.metrics.render();
  return new Response(text, {
    status: 200,
    headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" },
  });
}

function textResponse(status: number, text: string, headers: Record<string, string> = {}): Response {
  return new Response(text, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers },
  });
}
