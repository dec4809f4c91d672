/**
 * Test helpers of the outbox guarantee tests: a mirror whose scanCV answers are scripted per reference
 * number and attempt (in front of a fake RT-CV that answers everything else), and `outbox_status` polling.
 *
 * @module
 */

import type { FakeRtcv } from "../fake_rtcv.ts";
import type { ClientProcess } from "./spawn_client.ts";
import { ok, SCAN_CV } from "../live_helpers.ts";

/** What the script answers for one scanCV attempt: a status and JSON body, a dropped connection, a hang. */
export type ScriptedAnswer =
  | { readonly status: number; readonly body?: unknown; readonly headers?: Record<string, string> }
  | { readonly reset: true }
  | { readonly hangMs: number };

/** One scanCV request the scripted mirror received. */
export interface ScriptedAttempt {
  readonly reference: string;
  /** `Date.now()` at arrival. */
  readonly at: number;
}

/** A mirror in front of a fake RT-CV; see {@link scriptedMirror}. */
export interface ScriptedMirror extends AsyncDisposable {
  /** Its location (`http://127.0.0.1:<port>`). */
  readonly url: string;
  /** The origin `outbox_status` and `dead_letters` show. */
  readonly origin: string;
  /** Every scanCV request, in arrival order (also the scripted ones). */
  readonly attempts: ScriptedAttempt[];
  /** The scanCV requests for `reference`. */
  attemptsOf(reference: string): ScriptedAttempt[];
  /** Its credentials (the backing fake's key, this location), as `set_credentials` takes them. */
  credentials(): { server_location: string; api_key_id: string; api_key: string; primary: false };
}

/**
 * Starts a mirror that answers scanCV requests as `script(reference, attempt)` says (attempt counts from 1
 * per reference), or, where the script returns null, passes the request to `backing` (which then counts
 * the CV as received). Every other request (the checks of `set_credentials`) goes to `backing` as it is.
 */
export function scriptedMirror(
  backing: FakeRtcv,
  script: (reference: string, attempt: number) => ScriptedAnswer | null,
): ScriptedMirror {
  const attempts: ScriptedAttempt[] = [];
  const hangs = new Set<() => void>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    // A dropped connection (a `reset` answer) lands here: nothing to log.
    onError: () => new Response(null, { status: 500 }),
  }, async (request) => {
    const url = new URL(request.url);
    const body = request.method === "POST" ? await request.text() : undefined;
    if (url.pathname === SCAN_CV && body !== undefined) {
      const reference = String(JSON.parse(body)?.cv?.referenceNumber);
      attempts.push({ reference, at: Date.now() });
      const answer = script(reference, attempts.filter((attempt) => attempt.reference === reference).length);
      if (answer !== null && "reset" in answer) {
        return new Response(
          new ReadableStream({
            pull(controller) {
              controller.error(new Error("scripted mirror dropped the connection"));
            },
          }),
          { status: 200, headers: { "content-type": "application/json" } },
        );
      }
      if (answer !== null && "hangMs" in answer) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, answer.hangMs);
          hangs.add(done);
          function done() {
            clearTimeout(timer);
            hangs.delete(done);
            resolve();
          }
        });
        return Response.json({ error: "scripted mirror hung" }, { status: 503 });
      }
      if (answer !== null) {
        return Response.json(answer.body ?? { error: `scripted ${answer.status}` }, {
          status: answer.status,
          headers: answer.headers,
        });
      }
    }
    const answer = await fetch(backing.url + url.pathname + url.search, {
      method: request.method,
      headers: request.headers,
      body,
    });
    return new Response(await answer.arrayBuffer(), { status: answer.status, headers: answer.headers });
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    origin: url,
    attempts,
    attemptsOf: (reference) => attempts.filter((attempt) => attempt.reference === reference),
    credentials: () => ({ ...backing.wireCredentials(), server_location: url, primary: false }),
    [Symbol.asyncDispose]: async () => {
      for (const done of [...hangs]) done();
      await server.shutdown();
    },
  };
}

/** One server's or stream's line of `outbox_status`. */
export interface StatusLine {
  pending: number;
  dead: number;
  oldest_age_s: number | null;
  last_error: string | null;
}

/** The content of `outbox_status`. */
export interface OutboxStatusContent {
  mirrors: Record<string, StatusLine>;
  ingest: StatusLine & { streams: Record<string, StatusLine> };
}

/** Asks `outbox_status`. */
export async function outboxStatus(client: ClientProcess): Promise<OutboxStatusContent> {
  return await ok(client, { type: "outbox_status" }) as OutboxStatusContent;
}

/**
 * Polls `outbox_status` until `done` holds for it (the positive signal before counting); fails with the
 * last status after `timeoutMs`.
 */
export async function waitForStatus(
  client: ClientProcess,
  done: (status: OutboxStatusContent) => boolean,
  timeoutMs = 15_000,
): Promise<OutboxStatusContent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await outboxStatus(client);
    if (done(status)) return status;
    if (Date.now() > deadline) {
      throw new Error(`outbox_status did not reach the state waited for: ${JSON.stringify(status)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
}

/** Pending items for `origin` in a status (0 when the server is not listed). */
export function pendingOf(status: OutboxStatusContent, origin: string): number {
  return status.mirrors[origin]?.pending ?? 0;
}
