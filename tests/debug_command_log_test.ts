/**
 * The debug log (`ENABLE_SCRAPER_CLIENT_LOG`) of the real client names, for each command, its type, its
 * reference number and, for a failure, the reason the error answer gives; never a secret.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startFakeRtcv } from "./fake_rtcv.ts";
import { credentialsLine, liveDir, ok, sendCv, startLiveClient } from "./live_helpers.ts";

Deno.test("a failed send_cv's debug line names the command, the reference number and the server's reason", async () => {
  await using rtcv = await startFakeRtcv();
  await using dir = await liveDir();
  {
    await using client = await startLiveClient(dir, { ENABLE_SCRAPER_CLIENT_LOG: "true" });
    await ok(client, credentialsLine(rtcv));
    rtcv.failNext(1, 500, { error: "invalid phone number" }, { route: "/api/v1/scraper/scanCV" });
    const answer = await client.request(sendCv("dbg-1"));
    assert.equal(answer.type, "error");
    await ok(client, { type: "set_cached_reference", content: "dbg 2" });
    await client.send('{"type":"send_cv","content":{"referenceNumber":""}}');
    await client.readLine();
    assert.equal((await client.finish()).status.code, 0);
    const log = await Deno.readTextFile(join(dir.path, "scraper_client.log"));
    const lines = log.trimEnd().split("\n").map((line) => line.slice(line.indexOf(" ") + 1));
    assert.ok(
      lines.includes(`send_cv ref=dbg-1 -> error: ${answer.content}`),
      `the failure's line with its reason:\n${log}`,
    );
    assert.match(String(answer.content), /^send_cv: primary .*500.*invalid phone number/);
    assert.ok(lines.includes('set_cached_reference ref="dbg 2" -> ok'), log);
    assert.ok(lines.some((line) => /^send_cv -> error: send_cv: .*referenceNumber/.test(line)), log);
    assert.ok(lines.includes("set_credentials -> ok"), log);
    assert.ok(!log.includes(rtcv.credentials().apiKey), "no api key in the debug log");
  }
});
