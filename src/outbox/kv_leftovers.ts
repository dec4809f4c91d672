/**
 * What a Deno.Kv file holds for delivery while the client runs on Redis (`RTCV_SCRAPER_CLIENT_KV=redis://`):
 * the outbox's pending entries and what an earlier version left there. A process on Redis neither reads
 * nor delivers them, so the program says so at start, with the way to deliver them.
 *
 * @module
 */

import { CommitBatcher } from "../cache/commit_batcher.ts";
import { countLegacyOutbox } from "./kv_legacy_migration.ts";
import { KvOutboxStore } from "./kv_outbox_store.ts";
import { readOutboxCounts } from "./outbox_status.ts";

/**
 * The line for a person about what waits in the Kv file at `path` (which must exist: opening creates it),
 * or null when nothing waits there.
 */
export async function kvLeftoversWarning(path: string): Promise<string | null> {
  const kv = await Deno.openKv(path);
  let cvs: number;
  let items: number;
  try {
    ({ cvs, items } = await countLegacyOutbox(kv));
    for (const row of await readOutboxCounts(new KvOutboxStore(kv, new CommitBatcher(kv)))) {
      if (row.kind === "cv") cvs += row.pending;
      else items += row.pending;
    }
  } finally {
    kv.close();
  }
  if (cvs + items === 0) return null;
  return `${path} holds ${cvs} CV copies and ${items} job items waiting for delivery from before the switch ` +
    "to Redis, which a client on Redis does not deliver. To deliver them, run the client once with " +
    `RTCV_SCRAPER_CLIENT_KV=${path} and your servers (set_credentials, set_ingest) until outbox_status ` +
    "shows nothing pending";
}
