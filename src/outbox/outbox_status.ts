/**
 * What `outbox_status`, `dead_letters`, the health JSON and `/metrics` show of the outbox: counts per server
 * (by origin) and per ingest stream, from the store's counters (every entry in the store, whoever holds
 * its lease), never a key or token.
 *
 * @module
 */

import type { ChannelCounts, OutboxStore } from "./outbox_store.ts";

/** One server's or stream's line in `outbox_status`. */
export interface TargetStatus {
  pending: number;
  dead: number;
  /** Age of the oldest waiting entry in seconds, or null. */
  oldest_age_s: number | null;
  last_error: string | null;
}

/** The content of `outbox_status`. */
export interface OutboxStatus {
  readonly mirrors: Record<string, TargetStatus>;
  readonly ingest: TargetStatus & { streams: Record<string, TargetStatus> };
}

/** One row for metrics: `kind` cv or ingest, `target` the origin or the stream. */
export interface OutboxCount {
  readonly kind: "cv" | "ingest";
  readonly target: string;
  readonly pending: number;
  readonly dead: number;
}

const INGEST = "ingest/";

/** The origin a CV channel (a server location) is shown as. */
function originOf(channel: string): string {
  try {
    return new URL(channel).origin;
  } catch {
    return channel;
  }
}

/** Reads every channel's counts; `now` (clock time) gives the ages. */
export async function readOutboxStatus(store: OutboxStore, now: number): Promise<OutboxStatus> {
  const mirrors: Record<string, TargetStatus> = {};
  const ingest = { ...empty(), streams: {} as Record<string, TargetStatus> };
  for (const [channel, counts] of await store.status()) {
    if (counts.pending === 0 && counts.dead === 0) continue;
    const line = statusOf(counts, now);
    if (channel.startsWith(INGEST)) {
      ingest.streams[channel.slice(INGEST.length)] = line;
      merge(ingest, line);
    } else {
      merge(mirrors[originOf(channel)] ??= empty(), line);
    }
  }
  return { mirrors, ingest };
}

/** Pending and dead per server and stream, for metrics and the health JSON. */
export async function readOutboxCounts(store: OutboxStore): Promise<OutboxCount[]> {
  const rows: OutboxCount[] = [];
  for (const [channel, { pending, dead }] of await store.status()) {
    rows.push(
      channel.startsWith(INGEST)
        ? { kind: "ingest", target: channel.slice(INGEST.length), pending, dead }
        : { kind: "cv", target: originOf(channel), pending, dead },
    );
  }
  return rows;
}

/** `dead_letters`: newest first, at most `limit`; `at` in ISO 8601. */
export async function readDeadLetters(store: OutboxStore, limit: number): Promise<Record<string, unknown>[]> {
  return (await store.deadLetters(limit)).map((letter) => {
    const at = new Date(letter.at).toISOString();
    if (letter.channel.startsWith(INGEST)) {
      const [, platform] = letter.channel.slice(INGEST.length).split("/");
      return {
        server: "ingest",
        data_type: letter.label,
        platform,
        items: letter.count,
        reason: letter.reason,
        at,
      };
    }
    return {
      server: originOf(letter.channel),
      route: letter.route,
      reference_number: letter.label,
      reason: letter.reason,
      at,
    };
  });
}

function empty(): TargetStatus {
  return { pending: 0, dead: 0, oldest_age_s: null, last_error: null };
}

function statusOf(counts: ChannelCounts, now: number): TargetStatus {
  return {
    pending: counts.pending,
    dead: counts.dead,
    oldest_age_s: counts.oldestAt === null ? null : Math.max(0, Math.round((now - counts.oldestAt) / 1000)),
    last_error: counts.lastError,
  };
}

function merge(into: TargetStatus, line: TargetStatus): void {
  into.pending += line.pending;
  into.dead += line.dead;
  if (line.oldest_age_s !== null) into.oldest_age_s = Math.max(into.oldest_age_s ?? 0, line.oldest_age_s);
  into.last_error ??= line.last_error;
}
