/** mod.ts: server requests and CV documents, through `ScraperClient` against a fake RT-CV with websockets. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ScraperClient } from "../mod.ts";
import { startFakeRtcv } from "./fake_rtcv.ts";
import { acceptWebSockets } from "./fake_rtcv_socket.ts";
import { liveDir } from "./live_helpers.ts";

Deno.test("ScraperClient: nextServerRequest, serverResponse and sendCvDocument", async () => {
  await using rtcv = await startFakeRtcv({ hasMatches: true });
  await using sockets = acceptWebSockets(rtcv);
  await using dir = await liveDir();
  await using client = await ScraperClient.spawn({ cwd: dir.path, env: { RTCV_SCRAPER_CLIENT_KV: dir.kv } });
  await client.setCredentials(rtcv.credentials());
  await sockets.waitForOpen(1);
  sockets.push({ type: "ask", id: "a", data: 1 });
  const request = await client.nextServerRequest({ timeoutMs: 5000 });
  assert.deepEqual(request, { type: "ask", id: "0-a", data: 1 });
  await client.serverResponse({ id: request!.id, data: 2 });
  await sockets.waitForReceived(1);
  assert.deepEqual(sockets.received, [{ type: "ask", id: "a", data: 2 }]);

  const file = join(dir.path, "cv.pdf");
  await Deno.writeTextFile(file, "%PDF-1.4");
  assert.equal(await client.sendCvDocument({ cv: { referenceNumber: "m-doc" }, file }), true);
  assert.equal(await client.sendCvDocument({ cv: { referenceNumber: "m-doc" }, file }), false);
  assert.equal(rtcv.receivedDocuments.length, 1);
  await assert.rejects(() => client.serverResponse({ id: "0-zzz" }), /no server request has the id/);
  assert.equal((await client.close()).code, 0);
});
