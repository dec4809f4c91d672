/**
 * Scenario 7: a flood of 1,000 pipelined `has_cached_reference` lines of 1 MiB each (1,000 MiB) behind a
 * `set_credentials` that waits on a hung server, at the default settings: the peak RSS of the client.
 * Reading must pause once 8 MiB of lines wait (PROTOCOL.md section 13).
 *
 * @module
 */

import { check, formatNumber, measured, type Row, skipped } from "../report.ts";
import type { Scenario } from "../scenario.ts";
import { count, sleep, spawnReady, timeExit } from "./common.ts";
import { loadFake } from "./send_cv.ts";

/** Scenario 7: peak RSS under a 1,000 MiB flood of 1 MiB lines. */
export const floodScenario: Scenario = {
  id: "flood_rss",
  alias: "7",
  title: "peak RSS under 1,000 pipelined 1 MiB lines while set_credentials waits on a hung server",
  peer: false,
  timeoutMs: 180_000,
  async run(context) {
    const metric = "peak RSS (VmHWM) over the flood";
    const fake = await loadFake(context);
    if (typeof fake === "string") return [skipped("flood_rss", metric, fake, "MiB", 250)];
    const server = await fake.startFakeRtcv({});
    const { client } = await spawnReady(context, { env: { RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "2000" } });
    try {
      server.hang = true;
      await client.write(
        JSON.stringify({ type: "set_credentials", content: server.wireCredentials() }) + "\n",
      );
      const lines = count(context, 1000, 200);
      // Lookups of 1 MiB reference numbers: each line's content is held until set_credentials is done.
      const encoder = new TextEncoder();
      const pad = "x".repeat(1024 * 1024 - 64);
      let written = 0;
      const writing = (async () => {
        for (let i = 0; i < lines; i++) {
          await client.write(encoder.encode(`{"type":"has_cached_reference","content":"${i}-${pad}"}\n`));
          written++;
        }
      })();
      writing.catch(() => {});
      await sleep(1500);
      const writtenWhileHung = written;
      const pausedRss = client.memory().rssMiB;
      server.hang = false; // the hung attempt times out, the retry succeeds, the lines flow
      const first = await client.readLine();
      let pongs = 0;
      for (let i = 0; i < lines; i++) {
        if (await client.readLine() === '{"type":"ok","content":false}') pongs++;
      }
      await writing;
      const memory = client.memory();
      const rows: Row[] = [
        measured(
          "flood_rss",
          metric,
          memory.peakMiB,
          "MiB",
          250,
          `${lines} MiB sent; RSS ${
            formatNumber(pausedRss)
          } MiB while the server hung, when ${writtenWhileHung} MiB had got through`,
        ),
        check(
          "flood_rss",
          "answers",
          first === '{"type":"ok"}' && pongs === lines,
          `set_credentials: ${first.slice(0, 80)}; ${pongs} of ${lines} lookups answered false`,
        ),
      ];
      return rows;
    } finally {
      await timeExit(client).catch(() => {});
      await server.close();
    }
  },
};
