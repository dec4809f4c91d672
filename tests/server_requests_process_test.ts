/**
 * Requests from RT-CV (PROTOCOL.md section 9), as a scraper meets them: the client keeps a websocket to every
 * server, `next_server_request` hands over what any server sent (ids unique across servers), `server_response`
 * answers the server that asked, and none of it holds up or fails the other commands.
 */

import assert from "node:assert/strict";
import { startFakeRtcv } from "./fake_rtcv.ts";
import { acceptWebSockets } from "./fake_rtcv_socket.ts";
import { parseAnswer } from "./helpers/spawn_client.ts";
import { credentialsLine, error, liveDir, ok, sendCv, startLiveClient, timed } from "./live_helpers.ts";
import { rtcvAuthHeader } from "./fake_rtcv.ts";

Deno.test("a websocket to every server; requests from each come with unique ids and are answered to the server that asked", async () => {
  await using primary = await startFakeRtcv();
  await using mirror = await startFakeRtcv();
  await using primarySockets = acceptWebSockets(primary);
  await using mirrorSockets = acceptWebSockets(mirror);
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  await primarySockets.waitForOpen(1);
  await mirrorSockets.waitForOpen(1);
  const key = primary.keys[0];
  assert.equal(primarySockets.upgrades[0].authorization, await rtcvAuthHeader(key.apiKeyId, key.apiKey));
  assert.equal(mirrorSockets.upgrades[0].authorization, await rtcvAuthHeader(key.apiKeyId, key.apiKey));

  // Nobody waits yet: the requests are kept, in arrival order (one socket's order is kept; two sockets race).
  mirrorSockets.push({ type: "login", id: 7, data: { site: "a" } });
  mirrorSockets.push({ type: "login", id: 8, data: { site: "c" } });
  primarySockets.push({ type: "login", id: 7, data: { site: "b" } });
  const got: unknown[] = [];
  for (let i = 0; i < 3; i++) {
    got.push(await ok(client, { type: "next_server_request", content: { timeout_ms: 5000 } }));
  }
  const fromMirror: unknown[] = got.filter((request) => (request as { id: string }).id.startsWith("1-"));
  assert.deepEqual(fromMirror, [
    { type: "login", id: "1-7", data: { site: "a" } },
    { type: "login", id: "1-8", data: { site: "c" } },
  ]);
  const fromPrimary: unknown[] = got.filter((request) => (request as { id: string }).id.startsWith("0-"));
  assert.deepEqual(fromPrimary, [
    { type: "login", id: "0-7", data: { site: "b" } },
  ]);

  await ok(client, { type: "server_response", content: { id: "1-7", type: "login", data: { done: true } } });
  await mirrorSockets.waitForReceived(1);
  assert.deepEqual(mirrorSockets.received, [{ type: "login", id: 7, data: { done: true } }]);
  assert.deepEqual(primarySockets.received, [], "the answer goes to the server that asked only");
  // Without a type, the answer carries the request's type.
  await ok(client, { type: "server_response", content: { id: "0-7", data: "x" } });
  await primarySockets.waitForReceived(1);
  assert.deepEqual(primarySockets.received, [{ type: "login", id: 7, data: "x" }]);

  assert.match(
    await error(client, { type: "server_response", content: { id: "0-7", data: "again" } }),
    /^server_response: no server request has the id "0-7"/,
  );
  assert.match(
    await error(client, { type: "server_response", content: { id: "9-1" } }),
    /^server_response: no server request has the id "9-1"/,
  );
  assert.match(
    await error(client, { type: "server_response", content: { data: 1 } }),
    /^server_response: content\.id is missing/,
  );
  assert.match(
    await error(client, { type: "next_server_request", content: { timeout_ms: -1 } }),
    /^next_server_request: content\.timeout_ms must be 0 or more/,
  );
  const { status } = await client.finish();
  assert.equal(status.code, 0);
});

Deno.test("next_server_request waits for a request pushed later, answers null at its timeout, and never holds up commands with ids", async () => {
  await using primary = await startFakeRtcv({ hasMatches: true });
  await using sockets = acceptWebSockets(primary);
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary));
  await sockets.waitForOpen(1);

  const { answer, ms } = await timed(client, { type: "next_server_request", content: { timeout_ms: 300 } });
  assert.deepEqual(answer, { type: "ok", content: null });
  assert.ok(ms >= 250, `answered null after ${ms} ms, before the timeout`);

  await client.send({ type: "next_server_request", content: { timeout_ms: 10_000 } });
  // The wait is registered once the line is read; a ping behind it shows the line was read.
  sockets.push({ type: "question", id: "q1", data: [1, 2] });
  assert.deepEqual(parseAnswer(await client.readLine()), {
    type: "ok",
    content: { type: "question", id: "0-q1", data: [1, 2] },
  });

  // The socket being down (refused upgrades, reconnecting) does not touch the other commands.
  sockets.accepting = false;
  sockets.dropAll();
  await sockets.waitFor(() => sockets.openCount === 0, "the socket closed");
  assert.deepEqual(await ok(client, sendCv("ws-down-1")), true);
  await sockets.waitFor(() => sockets.upgrades.length >= 2, "a reconnect attempt");
  assert.deepEqual(await ok(client, sendCv("ws-down-2")), true);
  sockets.accepting = true;
  await sockets.waitForOpen(1, 15_000);
  sockets.push({ type: "after", id: 2, data: null });
  assert.deepEqual(
    await ok(client, { type: "next_server_request", content: { timeout_ms: 5000 } }),
    { type: "after", id: "0-2", data: null },
  );
  const { status } = await client.finish();
  assert.equal(status.code, 0);
});

Deno.test("end of input and SIGTERM end a wait without timeout: it answers null and the client exits 0", async () => {
  await using primary = await startFakeRtcv();
  await using sockets = acceptWebSockets(primary);
  await using dir = await liveDir();
  for (const how of ["end of input", "SIGTERM"] as const) {
    await using client = await startLiveClient(dir);
    await ok(client, credentialsLine(primary));
    await client.send({ type: "next_server_request" });
    // A ping sent after it is answered only after it (lines without ids keep their order): wait for the
    // socket instead, then stop.
    await sockets.waitForOpen(1);
    if (how === "SIGTERM") client.kill("SIGTERM");
    const { status, rest } = await client.finish();
    assert.equal(status.code, 0, how);
    assert.deepEqual(rest, ['{"type":"ok","content":null}'], how);
    await sockets.waitFor(() => sockets.openCount === 0, "the client closed its socket");
  }
});

Deno.test("mock mode and no credentials: next_server_request answers null at its timeout, server_response an unknown id", async () => {
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  assert.deepEqual(
    await ok(client, { type: "next_server_request", content: { timeout_ms: 10 } }),
    null,
  );
  await ok(client, { type: "set_mock" });
  assert.deepEqual(await ok(client, { type: "next_server_request", content: { timeout_ms: 10 } }), null);
  assert.match(
    await error(client, { type: "server_response", content: { id: "0-1", data: 1 } }),
    /no server request has the id/,
  );
  const { status } = await client.finish();
  assert.equal(status.code, 0);
});
