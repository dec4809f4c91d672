/**
 * The storage the outbox needs, as an interface: one implementation on Deno.Kv
 * (`kv_outbox_store.ts`), another on Redis. Everything here is plain data (no store types), every method is
 * async, and each method's doc says what an implementation must guarantee when several processes share one
 * store.
 *
 * Vocabulary:
 * - a **channel** is where entries go: a server's location (`https://mirror.example`) or an ingest stream
 *   (`ingest/job/boss`). Entries of a channel are listed oldest first (by id).
 * - an **entry** is one delivery: its payload (bytes, any size: split into parts of at most 60,000 bytes
 *   where the store limits values), its route, how many items it holds, and its schedule and attempts.
 * - a **lease** says which process delivers an entry until when. `token` changes on every write of the
 *   entry, so a process holding an old token knows the entry was changed (a newer copy) or taken over.
 *
 * @module
 */

/** The request an entry becomes: the RT-CV route of a CV copy, or a batch of job data. */
export type OutboxRoute = "scanCV" | "allCVs" | "scanCVDocument" | "ingest";

/** An entry to add. */
export interface NewOutboxEntry {
  /** Where it goes (a server location or an ingest stream; never a key or token). */
  readonly channel: string;
  /**
   * Once-per-channel key (e.g. the reference number for `scanCV`, a digest of the list for `allCVs`), or
   * null. A put of a key that is still waiting in the channel replaces that entry's payload.
   */
  readonly key: string | null;
  /** Which request the payload becomes. */
  readonly route: OutboxRoute;
  /** What a person sees in `dead_letters`: the reference number, or the ingest `data_type`. */
  readonly label: string;
  /** Items the payload holds (1 for a CV; the job items of an ingest row). Counters count these. */
  readonly count: number;
  /** The bytes to deliver (JSON text, or a document's metadata and bytes: the adapter's encoding). */
  readonly payload: Uint8Array;
}

/** An entry as stored, without its payload. */
export interface OutboxEntry extends Omit<NewOutboxEntry, "payload"> {
  /** Unique, sortable by creation time; kept when a put replaces the payload. */
  readonly id: string;
  /** When this copy was put, ms since the epoch (the age limit counts from here). */
  readonly createdAt: number;
  /** Not to be sent before this time (backoff), ms since the epoch. */
  readonly nextAt: number;
  /** Requests made for this copy so far. */
  readonly attempts: number;
  /** The last counted refusal (`answered 500: ...`), or null. */
  readonly refusal: string | null;
  /** How many times in a row that same refusal came. */
  readonly refusals: number;
  /** The last failure of any kind, for `outbox_status`. */
  readonly lastError: string | null;
}

/** A process's hold on an entry. */
export interface Lease {
  readonly channel: string;
  readonly id: string;
  /** Opaque; changes whenever the entry is written. */
  readonly token: string;
}

/** An entry held by this process, with its payload. */
export interface LeasedEntry {
  readonly entry: OutboxEntry;
  readonly lease: Lease;
  readonly payload: Uint8Array;
}

/** What a failed attempt changes (written by {@link OutboxStore.reschedule}). */
export interface Reschedule {
  readonly nextAt: number;
  readonly attempts: number;
  readonly refusal: string | null;
  readonly refusals: number;
  readonly lastError: string;
}

/** The counts of one channel, kept as entries change (never by scanning). */
export interface ChannelCounts {
  /** Items waiting (whoever leases them). */
  readonly pending: number;
  /** Items kept as dead letters. */
  readonly dead: number;
  /** Items delivered over the life of the store. */
  readonly delivered: number;
  /** `createdAt` of the oldest waiting entry, or null. */
  readonly oldestAt: number | null;
  /** The channel's last failure, or null (cleared when nothing waits). */
  readonly lastError: string | null;
}

/** A dead letter as listed. */
export interface DeadLetterRecord {
  readonly channel: string;
  readonly route: OutboxRoute;
  readonly label: string;
  readonly count: number;
  /** The last refusal, e.g. `answered 500: parsing time ...`. */
  readonly reason: string;
  /** When it became a dead letter, ms since the epoch. */
  readonly at: number;
}

/**
 * The outbox's storage operations. Guarantees every implementation keeps, also across processes:
 * - **Atomic.** Each call's changes (entry, payload parts, key index, counters) land together or not at all.
 * - **Counters follow the entries**: `pending` changes exactly when an entry appears, is delivered or dies.
 * - **A lease is taken once.** Two processes calling {@link take} at the same time never both get an entry.
 * - **Conditional on the token.** {@link renew}, {@link ack}, {@link reschedule}, {@link bury},
 *   {@link release} act only on an entry whose token is still the lease's and whose owner is the caller;
 *   otherwise the entry was replaced by a newer copy (which its putter holds and sends) or taken over, and
 *   the call leaves it alone.
 */
export interface OutboxStore {
  /**
   * Adds entries, leased to `owner` until `until` (the putting process sends them at once). An entry with a
   * `key` that is already waiting in its channel replaces it: same id, new payload, attempts and schedule
   * reset, `createdAt = now`, leased to `owner`, pending counted once. Resolves once durable.
   *
   * `alsoCommit`: writes of this store's own kind (for Deno.Kv an array of `Deno.KvMutation`, for Redis a
   * {@link import("../store/redis/redis_commit.ts").RedisCommit}: the ingest dedupe marks, a matched CV's
   * cache entry) that must land with the entries, in the same atomic step where they fit in one, never
   * before them.
   */
  put(
    entries: readonly NewOutboxEntry[],
    owner: string,
    until: number,
    now: number,
    alsoCommit?: unknown,
  ): Promise<LeasedEntry[]>;
  /**
   * Leases up to `limit` entries of `channel` that are due (`nextAt <= now`) and free (no owner, or the
   * lease lapsed: `until <= now`), oldest first, skipping ids in `skip`, to `owner` until `until`.
   * `nextCheckAt` is when the next entry not taken becomes due or free (null: none).
   */
  take(
    channel: string,
    options: { owner: string; now: number; until: number; limit: number; skip: ReadonlySet<string> },
  ): Promise<{ taken: LeasedEntry[]; nextCheckAt: number | null }>;
  /**
   * Extends leases still held (token unchanged, owner the caller) to `until`. Answers one element per lease,
   * in order: the renewed lease (new token), or null where the lease was lost.
   */
  renew(leases: readonly Lease[], owner: string, until: number): Promise<(Lease | null)[]>;
  /** Removes delivered entries and counts them delivered. */
  ack(leases: readonly Lease[], owner: string): Promise<void>;
  /** Records a failed attempt and frees the entry (any process may take it once due). */
  reschedule(lease: Lease, owner: string, change: Reschedule): Promise<void>;
  /** Moves an entry to the dead letters with `reason` at `at`; counts it dead. */
  bury(lease: Lease, owner: string, reason: string, at: number): Promise<void>;
  /** Frees leases still held (clean exit, a channel no longer served). */
  release(leases: readonly Lease[], owner: string): Promise<void>;
  /** The counts of every channel with entries or dead letters in the store. */
  status(): Promise<Map<string, ChannelCounts>>;
  /** Dead letters, newest first, at most `limit`. */
  deadLetters(limit: number): Promise<DeadLetterRecord[]>;
}
