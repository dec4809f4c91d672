import { ClientError } from "../errors.ts";

/** Where the reference cache and the outboxes live when `RTCV_SCRAPER_CLIENT_KV` is not set. */
export const DEFAULT_KV_FILE = "rtcv_scraper_client.kv";

/** How long to keep retrying a store that another process holds locked. */
const LOCK_WAIT_MS = 2000;

/** The store could not be opened; the message says which store and what to do. */
export class StoreError extends ClientError {
  override name = "StoreError";
}

/** What {@link openKvStore} reports while opening: warnings go to stderr in the program. */
export interface OpenKvOptions {
  /** Called with a warning a person should read (a corrupt store moved aside). */
  warn?: (message: string) => void;
}

/**
 * Opens the Deno.Kv store at `location`: a file path, `:memory:`, or a KV Connect URL.
 *
 * A file that is not a readable database is moved aside (`<file>.corrupt-<time>`) with a warning, and a
 * fresh store is used, so a damaged cache never stops the scraper. A store locked by another process is
 * retried for {@link LOCK_WAIT_MS} (on top of SQLite's own busy timeout of about 5 s per try), then
 * reported as a {@link StoreError}.
 */
export async function openKvStore(location: string, options: OpenKvOptions = {}): Promise<Deno.Kv> {
  if (location === ":memory:" || /^https?:\/\//i.test(location)) {
    try {
      return await Deno.openKv(location);
    } catch (error) {
      throw new StoreError(`cannot open the store at ${describeLocation(location)}: ${reasonOf(error)}`);
    }
  }
  const slash = location.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(location.slice(0, slash), { recursive: true }).catch(() => {});
  const lockDeadline = Date.now() + LOCK_WAIT_MS;
  let movedAside = false;
  for (let attempt = 0;; attempt++) {
    try {
      const kv = await Deno.openKv(location);
      await kv.get(["__probe__"]); // a damaged file can open and fail on first read
      return kv;
    } catch (error) {
      const reason = reasonOf(error);
      if (/locked|busy/i.test(reason) && Date.now() < lockDeadline) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 400)));
        continue;
      }
      if (/locked|busy/i.test(reason)) {
        throw new StoreError(
          `the store ${location} is locked by another process (${reason}); ` +
            "stop that process or set RTCV_SCRAPER_CLIENT_KV to another file",
        );
      }
      if (!movedAside && /malformed|not a database|corrupt|file is encrypted/i.test(reason)) {
        const aside = `${location}.corrupt-${Date.now()}`;
        await moveAside(location, aside);
        options.warn?.(
          `the store ${location} could not be read (${reason}); moved it to ${aside} and started a new one`,
        );
        movedAside = true;
        continue;
      }
      throw new StoreError(`cannot open the store ${location}: ${reason}`);
    }
  }
}

async function moveAside(location: string, aside: string): Promise<void> {
  await Deno.rename(location, aside);
  for (const suffix of ["-wal", "-shm"]) {
    await Deno.rename(location + suffix, aside + suffix).catch(() => {});
  }
}

function describeLocation(location: string): string {
  if (location === ":memory:") return "(in memory)";
  try {
    return new URL(location).origin; // a KV Connect URL: never print a path with a token in it
  } catch {
    return location;
  }
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
