/**
 * A one-time move, when the outbox opens a Deno.Kv store, of what earlier versions (before the one outbox)
 * left waiting there into the one outbox, so an upgrade loses no CV and no job item:
 *
 * | old key | value | becomes |
 * |---|---|---|
 * | `["cv_outbox",server,id]` | the CV's JSON text, or `{parts}` with `["cv_outbox_part",server,id,i]` texts | an entry of `server` keyed by the reference number |
 * | `["cv_dead",server,id]` | the same (`cv_dead_part`) | a dead letter of `server` |
 * | `["ingest","out",run,dataType,platform,line,chunk]` | `{n, b}`, or `{n, parts, bytes}` with `["ingest","out_part",…,i]` bytes | an entry of the stream |
 * | `["ingest","dead",run,dataType,platform,line,chunk,id]` | the same plus `{status, error, at}` (`dead_part`) | a dead letter of the stream |
 *
 * Each old entry moves in one checked atomic operation together with the removal of its old rows (see
 * {@link KvOutboxStore.adopt}): a crash, or another process migrating the same store at the same moment,
 * neither loses nor duplicates one. An entry too big for one atomic operation (over 300 KB, or many part
 * rows) moves in steps, each safe to stop after:
 * 1. its new payload parts are written under an id derived from its old key, in checked operations that
 *    fail once the old row is gone (so two processes, or a run after a crash, write the same parts, and
 *    nothing once it moved);
 * 2. one small checked operation writes the new entry's row and replaces the old row by a marker
 *    `["legacy_moved",...old key]` → `{prefix, parts}` (a second process's check fails: moved once);
 * 3. the old part rows are deleted, then the marker. A later start finishes what a marker names.
 *
 * Rows of an ingest run whose old claim (`["ingest","run",run]`) is still
 * held by a living process of the earlier version are left to it (a later start moves what it leaves).
 * With nothing old in the store the check costs one `list` of limit 1 per old prefix, and one for markers.
 *
 * @module
 */

import { getManyChunked } from "../cache/kv_reads.ts";
import { isDataType, isPlatform, streamName } from "../ingest/streams.ts";
import { hexDigest } from "../crypto/hex_digest.ts";
import { cvCopies } from "./cv_channel.ts";
import { type Adoption, joinParts, type KvOutboxStore, retryLocked } from "./kv_outbox_store.ts";
import type { NewOutboxEntry } from "./outbox_store.ts";

const encoder = new TextEncoder();
/** Old entries moved per atomic operation (two checks each; Deno.Kv takes 100). */
const BATCH_ENTRIES = 40;
/** Payload bytes moved per atomic operation (Deno.Kv takes about 800 KB); a bigger entry moves in steps. */
const BATCH_BYTES = 300_000;
/** Old part rows above this make an entry move in steps too (Deno.Kv takes 1000 mutations an operation). */
const BATCH_PARTS = 100;
/** Old part rows deleted per atomic operation once their entry moved in steps. */
const DELETES_PER_ATOMIC = 200;
/** Where a move in steps marks an old entry whose part rows are still to delete (see the module doc). */
const MOVED = "legacy_moved";
const decoder = new TextDecoder();

/** One old entry read back: its rows (to check and delete) and its payload. */
interface OldEntry {
  readonly head: Deno.KvEntry<unknown>;
  readonly partKeys: Deno.KvKey[];
  /** The payload, or null when a part is missing (an earlier crash in the middle of a write). */
  readonly payload: Uint8Array | null;
}

/** What {@link migrateLegacyOutbox} moved. */
export interface MigrationCounts {
  /** Entries now waiting in the one outbox (after joining copies of one reference). */
  readonly moved: number;
  /** Dead letters moved. */
  readonly dead: number;
  /** Old entries that could not move now (the store refused): they stay, the next start tries again. */
  readonly left: number;
}

/** Moves every old entry into `store` (see the module doc); `now` is the clock's time. */
export async function migrateLegacyOutbox(
  kv: Deno.Kv,
  store: KvOutboxStore,
  now: number,
): Promise<MigrationCounts> {
  const counts = { moved: 0, dead: 0, left: 0 };
  const count = (item: Adoption) => item.dead ? counts.dead++ : counts.moved++;
  // Moves in steps an earlier run left half done (their entries have moved): their old part rows go.
  for await (const marker of kv.list<unknown>({ prefix: [MOVED] })) await finishMove(kv, marker);
  /** Moves one entry; false when another process moved it, or it could not move now. */
  const adoptOne = async (item: Adoption): Promise<boolean> => {
    const head = item.guard.checks[0];
    for (let attempt = 0; attempt < 5; attempt++) {
      if (await store.adopt([item], now).catch(() => false)) {
        count(item);
        return true;
      }
      // A check failed: the old row moved (another process took it), or the copy waiting under its key
      // changed meanwhile (then try again).
      if ((await kv.get(head.key)).versionstamp !== head.versionstamp) return false;
    }
    counts.left++; // the store refuses it (an error): it stays where it is, for the next start
    return false;
  };
  // Entries move in batches (one atomic operation each); a batch that fails moves one by one.
  let batch: Adoption[] = [];
  let bytes = 0;
  const flush = async () => {
    const items = batch;
    batch = [];
    bytes = 0;
    if (items.length === 0) return;
    if (items.length > 1 && await store.adopt(items, now).catch(() => false)) return items.forEach(count);
    for (const item of items) await adoptOne(item);
  };
  // One too big for an atomic operation moves in steps (see the module doc).
  const moveInSteps = async (
    entry: NewOutboxEntry,
    old: OldEntry,
    createdAt: number,
    dead: DeadInfo | null,
  ) => {
    const id = await adoptedId(old.head.key, createdAt);
    const marker = {
      key: [MOVED, ...old.head.key],
      value: { prefix: old.partKeys[0].slice(0, -1), parts: old.partKeys.length },
    };
    const replace: Deno.KvMutation[] = [{ type: "delete", key: old.head.key }, { type: "set", ...marker }];
    let moved = false;
    try {
      if (!await store.writeAdoptedParts(entry, id, [old.head])) return; // moved by another process
      moved = await adoptOne({
        entry,
        createdAt,
        dead,
        guard: { checks: [old.head], mutations: replace },
        id,
      });
    } catch {
      counts.left++; // the next start writes the same parts again and moves it
      return;
    }
    // A marker an error leaves is finished by the next start.
    if (moved) await finishMove(kv, marker).catch(() => {});
  };
  const move = async (entry: NewOutboxEntry, old: OldEntry, createdAt: number, dead: DeadInfo | null) => {
    const big = entry.payload.byteLength > BATCH_BYTES || old.partKeys.length > BATCH_PARTS;
    // A key twice in one batch would pass both checks: the batch ends before it.
    const sameKey = entry.key !== null && dead === null &&
      batch.some((item) =>
        item.entry.key === entry.key && item.entry.channel === entry.channel && !item.dead
      );
    if (big || sameKey || batch.length >= BATCH_ENTRIES || bytes + entry.payload.byteLength > BATCH_BYTES) {
      await flush();
    }
    if (big) return await moveInSteps(entry, old, createdAt, dead);
    const guard = {
      checks: [old.head],
      mutations: [old.head.key, ...old.partKeys].map((key): Deno.KvMutation => ({ type: "delete", key })),
    };
    batch.push({ entry, createdAt, dead, guard });
    bytes += entry.payload.byteLength;
  };

  for (const [prefix, isDead] of [["cv_outbox", false], ["cv_dead", true]] as const) {
    for await (const old of oldEntries(kv, [prefix], (key, i) => [`${prefix}_part`, ...key.slice(1), i])) {
      const [, channel, id] = old.head.key;
      if (typeof channel !== "string" || typeof id !== "string") continue;
      const createdAt = timeOf(Number(id.slice(0, 15)), now);
      const entry = cvEntry(channel, old.payload);
      const reason = old.payload === null
        ? "an earlier version left this copy incomplete (a part is missing)"
        : "refused by the server before the upgrade (the earlier version kept no reason)";
      await move(entry, old, createdAt, isDead || old.payload === null ? { reason, at: createdAt } : null);
    }
  }

  const liveRuns = await liveIngestRuns(kv, now);
  for (const [kind, isDead] of [["out", false], ["dead", true]] as const) {
    const partKey = (
      key: Deno.KvKey,
      i: number,
    ): Deno.KvKey => ["ingest", `${kind}_part`, ...key.slice(2), i];
    for await (const old of oldEntries(kv, ["ingest", kind], partKey)) {
      const [, , run, dataType, platform] = old.head.key;
      const value = old.head.value as { n?: unknown; status?: unknown; error?: unknown; at?: unknown };
      if (typeof run !== "string" || liveRuns.has(run) || !isDataType(dataType) || !isPlatform(platform)) {
        continue;
      }
      const entry: NewOutboxEntry = {
        channel: `ingest/${streamName({ dataType, platform })}`,
        key: null,
        route: "ingest",
        label: dataType,
        count: typeof value.n === "number" && value.n > 0 ? value.n : 1,
        payload: old.payload ?? new Uint8Array(),
      };
      const createdAt = timeOf(parseInt(run.slice(0, 10), 36), now);
      let dead: DeadInfo | null = null;
      if (old.payload === null) {
        dead = {
          reason: "an earlier version left these items incomplete (a part is missing)",
          at: createdAt,
        };
      } else if (isDead) {
        const reason = typeof value.error === "string" && value.error !== ""
          ? value.error
          : `refused (status ${value.status})`;
        dead = { reason, at: timeOf(Number(value.at), now) };
      }
      await move(entry, old, createdAt, dead);
    }
  }
  await flush();
  await dropClaims(kv, liveRuns);
  return counts;
}

/** Why and when an old entry is a dead letter. */
type DeadInfo = NonNullable<Adoption["dead"]>;

/** The entry of an old CV copy: keyed by its reference number (an unreadable one: a dead letter). */
function cvEntry(channel: string, payload: Uint8Array | null): NewOutboxEntry {
  const text = payload === null ? "" : decoder.decode(payload);
  try {
    const cv = JSON.parse(text);
    if (cv !== null && typeof cv === "object" && "referenceNumber" in cv) return cvCopies([channel], cv)[0];
  } catch {
    // not JSON: kept as it is, as a dead letter
  }
  return {
    channel,
    key: null,
    route: "scanCV",
    label: "(unreadable)",
    count: 1,
    payload: encoder.encode(text),
  };
}

/**
 * The old entries under `prefix` with their payloads (heads are rows with a `parts` count or the value
 * itself), oldest first. Probes with one `list` of limit 1 first.
 */
async function* oldEntries(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  partKey: (key: Deno.KvKey, index: number) => Deno.KvKey,
): AsyncGenerator<OldEntry> {
  const probe = await Array.fromAsync(kv.list({ prefix }, { limit: 1 }));
  if (probe.length === 0) return;
  for await (const head of kv.list<unknown>({ prefix })) {
    const value = head.value;
    const inline = typeof value === "string"
      ? encoder.encode(value)
      : value instanceof Uint8Array
      ? value
      : isRecord(value) && value.b instanceof Uint8Array
      ? value.b
      : null;
    const parts = isRecord(value) && typeof value.parts === "number" ? Math.max(0, value.parts) : 0;
    const partKeys = Array.from({ length: parts }, (_, index) => partKey(head.key, index));
    if (inline !== null || parts === 0) {
      yield { head, partKeys, payload: inline };
      continue;
    }
    const pieces = (await getManyChunked(kv, partKeys)).map((row) =>
      typeof row.value === "string" ? encoder.encode(row.value) : row.value
    );
    yield {
      head,
      partKeys,
      payload: pieces.every((piece) => piece instanceof Uint8Array)
        ? joinParts(pieces as Uint8Array[])
        : null,
    };
  }
}

/** Deletes the old part rows a marker of a move in steps names, then the marker (idempotent). */
async function finishMove(kv: Deno.Kv, marker: { key: Deno.KvKey; value: unknown }): Promise<void> {
  const value = marker.value;
  if (isRecord(value) && Array.isArray(value.prefix) && typeof value.parts === "number") {
    for (let start = 0; start < value.parts; start += DELETES_PER_ATOMIC) {
      const atomic = kv.atomic();
      for (let index = start; index < Math.min(value.parts, start + DELETES_PER_ATOMIC); index++) {
        atomic.delete([...value.prefix, index]);
      }
      await retryLocked(() => atomic.commit());
    }
  }
  await retryLocked(() => kv.delete(marker.key));
}

/** What the earlier version left waiting in `kv` (not yet moved): CV copies and job items. */
export async function countLegacyOutbox(kv: Deno.Kv): Promise<{ cvs: number; items: number }> {
  let cvs = 0;
  let items = 0;
  for await (const _ of kv.list({ prefix: ["cv_outbox"] })) cvs++;
  for await (const row of kv.list<unknown>({ prefix: ["ingest", "out"] })) {
    items += isRecord(row.value) && typeof row.value.n === "number" && row.value.n > 0 ? row.value.n : 1;
  }
  return { cvs, items };
}

/** Old ingest runs whose claim a living process of the earlier version holds. */
async function liveIngestRuns(kv: Deno.Kv, now: number): Promise<Set<string>> {
  const live = new Set<string>();
  for await (const claim of kv.list<unknown>({ prefix: ["ingest", "run"] })) {
    const value = claim.value;
    if (isRecord(value) && value.owner !== "" && typeof value.until === "number" && value.until > now) {
      live.add(String(claim.key[2]));
    }
  }
  return live;
}

/** Removes the old claims of runs no process of the earlier version holds (their rows have moved). */
async function dropClaims(kv: Deno.Kv, live: ReadonlySet<string>): Promise<void> {
  for await (const claim of kv.list({ prefix: ["ingest", "run"] })) {
    // Other processes migrating at once lock the file for a moment (seen: "database is locked").
    if (!live.has(String(claim.key[2]))) {
      await retryLocked(() => kv.atomic().check(claim).delete(claim.key).commit());
    }
  }
}

/**
 * The id of an entry adopted in steps (see {@link KvOutboxStore.writeAdoptedParts}): the same for every
 * process and every run, derived from the old row's key; sorted by the entry's creation time.
 */
async function adoptedId(oldKey: Deno.KvKey, createdAt: number): Promise<string> {
  const digest = await hexDigest("SHA-256", oldKey.map(String).join("\u0000"));
  return `${Math.max(0, createdAt).toString(36).padStart(9, "0")}0000-${digest.slice(0, 16)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object";
}

function timeOf(value: number, fallback: number): number {
  return Number.isFinite(value) && value > 0 ? value : fallback;
}
