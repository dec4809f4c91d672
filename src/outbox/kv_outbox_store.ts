/**
 * The {@link OutboxStore} on Deno.Kv. Layout (every key under `"outbox"`):
 *
 * | key | value |
 * |---|---|
 * | `["outbox","entry",channel,id]` | the entry's fields, its owner and lease end (no payload) |
 * | `["outbox","part",channel,id,i]` | payload bytes, at most 60,000 a value (kept for dead letters) |
 * | `["outbox","key",channel,key]` | the id of the entry waiting under a once-per-channel key |
 * | `["outbox","dead",inverted time,channel,id]` | a dead letter (lists newest first) |
 * | `["outbox","count",channel,"pending"\|"dead"\|"delivered"]` | `Deno.KvU64` item counters |
 * | `["outbox","error",channel]` | the channel's last failure |
 *
 * A lease's token is the entry's versionstamp (with the row facts an ack needs: parts, items, index key), so
 * an ack is one checked atomic operation without a read; other conditional calls read the row and check
 * its versionstamp in the same atomic operation.
 * Puts and acks go through the shared {@link CommitBatcher} (pipelined lines share commits; a keyed put is
 * a checked write there, with the writes that must land with it, such as a matched CV's cache entry); leases
 * and the other conditional calls are checked atomic operations of their own.
 *
 * @module
 */

import type { CommitBatcher } from "../cache/commit_batcher.ts";
import { getManyChunked } from "../cache/kv_reads.ts";
import type {
  ChannelCounts,
  DeadLetterRecord,
  Lease,
  LeasedEntry,
  NewOutboxEntry,
  OutboxEntry,
  OutboxRoute,
  OutboxStore,
  Reschedule,
} from "./outbox_store.ts";
import { hexDigest } from "../crypto/hex_digest.ts";

const ROOT = "outbox";
const PART_BYTES = 60_000;
/** Entries per checked atomic operation (Deno.Kv takes at most 100 checks in one). */
const PER_ATOMIC = 40;
const MAX_KEY_CHARS = 400;
/** Payloads above this are committed in parts before their entry (one atomic operation takes 800 KiB). */
const LARGE_PAYLOAD_BYTES = 400_000;
const U64 = 1n << 64n;

interface Row {
  k: string | null;
  /** The key as stored in the index (a digest for a long one). */
  x: string | null;
  r: OutboxRoute;
  l: string;
  n: number;
  c: number;
  t: number;
  a: number;
  f: string | null;
  fc: number;
  e: string | null;
  o: string;
  u: number;
  p: number;
}

interface DeadRow {
  r: OutboxRoute;
  l: string;
  n: number;
  reason: string;
  at: number;
}

const entryKey = (channel: string, id: string): Deno.KvKey => [ROOT, "entry", channel, id];
const partKey = (
  channel: string,
  id: string,
  index: number,
): Deno.KvKey => [ROOT, "part", channel, id, index];
const countKey = (channel: string, name: string): Deno.KvKey => [ROOT, "count", channel, name];
const errorKey = (channel: string): Deno.KvKey => [ROOT, "error", channel];
/** An entry an earlier version left, to move in with {@link KvOutboxStore.adopt}. */
export interface Adoption {
  readonly entry: NewOutboxEntry;
  readonly createdAt: number;
  readonly dead: { reason: string; at: number } | null;
  readonly guard: { checks: Deno.AtomicCheck[]; mutations: Deno.KvMutation[] };
  /**
   * The id whose payload parts {@link KvOutboxStore.writeAdoptedParts} wrote already (a payload too big for
   * one atomic operation): the entry takes it and only its row is written. Else a new id, parts included.
   */
  readonly id?: string;
}

/** Payload parts written per atomic operation by {@link KvOutboxStore.writeAdoptedParts} (480 KB). */
const PARTS_PER_ATOMIC = 8;

/** Dead letters list newest first: the time inverted, fixed width. */
const deadKey = (at: number, channel: string, id: string): Deno.KvKey => [
  ROOT,
  "dead",
  (8_640_000_000_000_000 - at).toString().padStart(16, "0"),
  channel,
  id,
];

function add(channel: string, name: string, items: number): Deno.KvMutation {
  const value = BigInt(items) >= 0n ? BigInt(items) : U64 + BigInt(items); // sum wraps: adds a negative
  return { type: "sum", key: countKey(channel, name), value: new Deno.KvU64(value) };
}

/** The counter moves of `items` no longer pending: delivered or dead. */
function settled(channel: string, name: "delivered" | "dead", items: number): Deno.KvMutation[] {
  return [add(channel, "pending", -items), add(channel, name, items)];
}

/** Sortable ids: time, a sequence within the millisecond, and a random part (unique across processes). */
function idMaker(): () => string {
  let last = 0;
  let sequence = 0;
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(36).padStart(7, "0");
  return () => {
    const now = Date.now();
    sequence = now === last ? sequence + 1 : 0;
    last = now;
    return `${now.toString(36).padStart(9, "0")}${sequence.toString(36).padStart(4, "0")}-${random}`;
  };
}

/** The outbox's storage on a Deno.Kv store shared with the reference cache. */
export class KvOutboxStore implements OutboxStore {
  readonly #kv: Deno.Kv;
  readonly #batcher: CommitBatcher;
  readonly #newId = idMaker();

  /** Works on `kv`; unkeyed puts are committed through `batcher`. */
  constructor(kv: Deno.Kv, batcher: CommitBatcher) {
    this.#kv = kv;
    this.#batcher = batcher;
  }

  async put(
    entries: readonly NewOutboxEntry[],
    owner: string,
    until: number,
    now: number,
    alsoCommit?: unknown,
  ): Promise<LeasedEntry[]> {
    const extra = Array.isArray(alsoCommit) ? alsoCommit as Deno.KvMutation[] : [];
    if (entries.some((entry) => entry.key !== null)) {
      // Keyed puts are checked (the key must still be free, or hold the copy read): in chunks that fit one
      // atomic operation, `extra` with the last one, so it never lands before an entry.
      const leased: LeasedEntry[] = [];
      for (let start = 0; start < entries.length; start += PER_ATOMIC) {
        const chunk = entries.slice(start, start + PER_ATOMIC);
        const last = start + PER_ATOMIC >= entries.length;
        leased.push(...await this.#putChecked(chunk, owner, until, now, last ? extra : []));
      }
      return leased;
    }
    const made = entries.map((entry) => ({
      entry,
      id: this.#newId(),
      row: newRow(entry, owner, until, now),
    }));
    const token = await this.#batcher.writeStamped([
      ...made.flatMap(({ entry, id, row }) => putMutations(entry, id, row, false, null, null)),
      ...extra, // last: when a write is too big for one commit, these land after the entries
    ]);
    return made.map(({ entry, id, row }) =>
      leasedOf(entry.channel, id, row, tokenOf(token, row), entry.payload)
    );
  }

  /**
   * Puts entries (keyed or not) and `extra` in one checked atomic operation, through the group commit: each
   * keyed one first as a new key without reading (the common case); when a key is taken, the rows are read
   * and the operation is built again to replace the waiting copies.
   */
  async #putChecked(
    entries: readonly NewOutboxEntry[],
    owner: string,
    until: number,
    now: number,
    extra: readonly Deno.KvMutation[],
  ): Promise<LeasedEntry[]> {
    // Payloads too big for the operation (a large CV list or document): their parts are committed first
    // under a new id, then the checked operation switches the key to it and removes the old entry. A crash
    // in between leaves unreferenced parts, never a half-written entry.
    const total = entries.reduce((sum, entry) => sum + entry.payload.byteLength, 0);
    const largeFrom = total > LARGE_PAYLOAD_BYTES ? LARGE_PAYLOAD_BYTES / entries.length : Infinity;
    const puts = await Promise.all(entries.map(async (entry) => {
      const stored = entry.key === null ? null : await storedKey(entry.key);
      // The row keeps the key as stored: a long one (a CV list's text) would not fit in a 64 KiB value.
      const row = { ...newRow(entry, owner, until, now), k: stored, x: stored };
      const index = stored === null
        ? null
        : { key: [ROOT, "key", entry.channel, stored], value: null, versionstamp: null } as Deno.KvEntryMaybe<
          string
        >;
      const large = entry.payload.byteLength > largeFrom;
      return { entry, row, index, large, newId: this.#newId(), old: null as Deno.KvEntryMaybe<Row> | null };
    }));
    const parts = puts.filter((put) => put.large)
      .flatMap((put) => partMutations(put.entry.channel, put.newId, put.row, put.entry.payload));
    if (parts.length > 0) await this.#batcher.write(parts);
    for (;;) {
      const checks: Deno.AtomicCheck[] = [];
      const mutations: Deno.KvMutation[] = [];
      const ids = puts.map(({ entry, row, index, large, newId, old }) => {
        const waitingId = typeof index?.value === "string" ? index.value : null;
        const id = large ? newId : waitingId ?? newId;
        if (index !== null) checks.push(index);
        if (old !== null) checks.push(old);
        const waiting = old?.value ? { id: waitingId!, row: old.value } : null;
        mutations.push(...putMutations(entry, id, row, large, index?.key ?? null, waiting));
        return id;
      });
      mutations.push(...extra);
      const versionstamp = await retryLocked(() => this.#batcher.writeChecked(checks, mutations));
      if (versionstamp !== null) {
        return puts.map(({ entry, row }, at) =>
          leasedOf(entry.channel, ids[at], row, tokenOf(versionstamp, row), entry.payload)
        );
      }
      // A key was taken meanwhile: read the keys and the copies waiting under them, and build it again.
      const keyed = puts.filter((put) => put.index !== null);
      const indexes = await getManyChunked<string>(this.#kv, keyed.map((put) => put.index!.key));
      keyed.forEach((put, at) => put.index = indexes[at]);
      const waiting = keyed.filter((put) => typeof put.index!.value === "string");
      const rows = await getManyChunked<Row>(
        this.#kv,
        waiting.map((put) => entryKey(put.entry.channel, put.index!.value as string)),
      );
      for (const put of keyed) put.old = null;
      waiting.forEach((put, at) => put.old = rows[at]);
    }
  }

  /**
   * Moves entries an earlier version left into the outbox, free for whoever serves their channels, in one
   * checked atomic operation with each one's `guard` (the checks and deletions of its old rows): they land
   * with their removal or not at all. `createdAt` keeps an entry's age; `now` decides whether a lease
   * lapsed; `dead` makes it a dead letter. One keyed entry replaces a copy waiting under its key only when
   * that copy is older and free, else the old entry is just removed (a newer copy waits, or one is being
   * sent); several keyed entries at once need their keys free. An item with an `id` has its parts written
   * already: only its row is written (and, when it is not needed, its parts removed). False when a check
   * failed (moved meanwhile, or a key taken: move them one by one).
   */
  async adopt(items: readonly Adoption[], now: number): Promise<boolean> {
    const atomic = this.#kv.atomic();
    for (const { entry, createdAt, dead, guard, id: written } of items) {
      const id = written ?? this.#newId();
      const row = newRow(entry, "", 0, createdAt);
      atomic.check(...guard.checks).mutate(...guard.mutations);
      if (dead !== null) {
        const letter: DeadRow = { r: row.r, l: row.l, n: row.n, reason: dead.reason, at: dead.at };
        if (written === undefined) atomic.mutate(...partMutations(entry.channel, id, row, entry.payload));
        atomic.set(deadKey(dead.at, entry.channel, id), letter).set(errorKey(entry.channel), dead.reason);
        atomic.mutate(add(entry.channel, "dead", entry.count));
        continue;
      }
      if (entry.key === null) {
        atomic.mutate(...putMutations(entry, id, row, written !== undefined, null, null));
        continue;
      }
      const stored = await storedKey(entry.key);
      const indexKey: Deno.KvKey = [ROOT, "key", entry.channel, stored];
      // Several at once: as new keys, without reading (a key taken fails the whole operation).
      const index: Deno.KvEntryMaybe<string> = items.length === 1
        ? await this.#kv.get<string>(indexKey)
        : { key: indexKey, value: null, versionstamp: null };
      const old = typeof index.value === "string"
        ? await this.#kv.get<Row>(entryKey(entry.channel, index.value))
        : null;
      atomic.check(index);
      const waiting = old?.value ? { id: index.value as string, row: old.value } : null;
      if (waiting !== null) atomic.check(old!);
      if (
        waiting !== null && !(waiting.row.c <= createdAt && (waiting.row.o === "" || waiting.row.u <= now))
      ) {
        // A newer copy waits, or one is being sent: the old entry just goes (and the parts written for it).
        for (let i = 0; written !== undefined && i < row.p; i++) atomic.delete(partKey(entry.channel, id, i));
        continue;
      }
      // Over the waiting copy in place; or, its parts written before, it takes the key (the waiting one goes).
      const target = written ?? waiting?.id ?? id;
      const next = { ...row, k: stored, x: stored };
      atomic.mutate(...putMutations(entry, target, next, written !== undefined, indexKey, waiting));
    }
    return (await retryLocked(() => atomic.commit())).ok;
  }

  /**
   * Writes the payload parts of an entry to adopt under `id`, a few parts per atomic operation, each one
   * checked with `checks` (the old rows unchanged), so nothing is written once the old entry has moved
   * (another process moved it, or it was delivered since). Writing the same payload under the same id again
   * (a second process, a run after a crash) changes nothing. False when a check failed.
   */
  async writeAdoptedParts(
    entry: NewOutboxEntry,
    id: string,
    checks: readonly Deno.AtomicCheck[],
  ): Promise<boolean> {
    const parts = partMutations(entry.channel, id, newRow(entry, "", 0, 0), entry.payload);
    for (let start = 0; start < parts.length; start += PARTS_PER_ATOMIC) {
      const atomic = this.#kv.atomic().check(...checks).mutate(
        ...parts.slice(start, start + PARTS_PER_ATOMIC),
      );
      if (!(await retryLocked(() => atomic.commit())).ok) return false;
    }
    return true;
  }

  async take(
    channel: string,
    options: { owner: string; now: number; until: number; limit: number; skip: ReadonlySet<string> },
  ): Promise<{ taken: LeasedEntry[]; nextCheckAt: number | null }> {
    const { owner, now, until, limit, skip } = options;
    const chosen: Deno.KvEntry<Row>[] = [];
    let nextCheckAt: number | null = null;
    const later = (at: number) => nextCheckAt = nextCheckAt === null ? at : Math.min(nextCheckAt, at);
    for await (const row of this.#kv.list<Row>({ prefix: [ROOT, "entry", channel] })) {
      const id = String(row.key[3]);
      if (skip.has(id)) continue;
      const value = row.value;
      const free = value.o === "" || value.u <= now;
      if (!free) later(value.u);
      else if (value.t > now) later(value.t);
      else if (chosen.length < Math.min(limit, PER_ATOMIC)) chosen.push(row);
      else later(now);
    }
    if (chosen.length === 0) return { taken: [], nextCheckAt };
    const atomic = this.#kv.atomic();
    for (const row of chosen) atomic.check(row).set(row.key, { ...row.value, o: owner, u: until });
    const result = await retryLocked(() => atomic.commit());
    if (!result.ok) return { taken: [], nextCheckAt: now }; // another process took some: look again
    const taken = await Promise.all(chosen.map(async (row) => {
      const id = String(row.key[3]);
      const value = { ...row.value, o: owner, u: until };
      const token = tokenOf(result.versionstamp, value);
      const keys = Array.from({ length: value.p }, (_, index) => partKey(channel, id, index));
      const parts = await getManyChunked<Uint8Array>(this.#kv, keys);
      return leasedOf(
        channel,
        id,
        value,
        token,
        joinParts(parts.map((part) => part.value ?? new Uint8Array())),
      );
    }));
    return { taken, nextCheckAt };
  }

  async renew(leases: readonly Lease[], owner: string, until: number): Promise<(Lease | null)[]> {
    const renewed = new Map<Lease, Lease>();
    await this.#conditional(leases, owner, (atomic, lease, row) => {
      atomic.set(entryKey(lease.channel, lease.id), { ...row, u: until });
      return (versionstamp) => renewed.set(lease, { ...lease, token: tokenOf(versionstamp, row) });
    });
    return leases.map((lease) => renewed.get(lease) ?? null);
  }

  async ack(leases: readonly Lease[], owner: string): Promise<void> {
    // Without a read: the token carries what the removal needs, the check guards it. Through the batcher:
    // acks share commits with the puts and acks of the same turn.
    const writes: Promise<void>[] = [];
    for (let start = 0; start < leases.length; start += PER_ATOMIC) {
      const group = leases.slice(start, start + PER_ATOMIC);
      const checks: Deno.AtomicCheck[] = [];
      const mutations: Deno.KvMutation[] = [];
      const items = new Map<string, number>();
      for (const lease of group) {
        const facts = factsOf(lease.token);
        checks.push({ key: entryKey(lease.channel, lease.id), versionstamp: facts.versionstamp });
        mutations.push(...removeMutations(lease, facts));
        items.set(lease.channel, (items.get(lease.channel) ?? 0) + facts.n);
      }
      for (const [channel, count] of items) mutations.push(...settled(channel, "delivered", count));
      writes.push(
        retryLocked(() => this.#batcher.writeChecked(checks, mutations)).then((done) =>
          done !== null ? undefined : this.#conditional(group, owner, (atomic, lease, row) => {
            atomic.mutate(...removeMutations(lease, row), ...settled(lease.channel, "delivered", row.n));
          }) // some were replaced or taken over: ack those still held
        ),
      );
    }
    await Promise.all(writes);
  }

  async reschedule(lease: Lease, owner: string, change: Reschedule): Promise<void> {
    await this.#conditional([lease], owner, (atomic, _, row) => {
      const next: Row = {
        ...row,
        t: change.nextAt,
        a: change.attempts,
        f: change.refusal,
        fc: change.refusals,
        e: change.lastError,
        o: "",
        u: 0,
      };
      atomic.set(entryKey(lease.channel, lease.id), next).set(errorKey(lease.channel), change.lastError);
    });
  }

  async bury(lease: Lease, owner: string, reason: string, at: number): Promise<void> {
    await this.#conditional([lease], owner, (atomic, _, row) => {
      const dead: DeadRow = { r: row.r, l: row.l, n: row.n, reason, at };
      atomic.mutate(...removeMutations(lease, row, true), ...settled(lease.channel, "dead", row.n));
      atomic.set(deadKey(at, lease.channel, lease.id), dead).set(errorKey(lease.channel), reason);
    });
  }

  async release(leases: readonly Lease[], owner: string): Promise<void> {
    await this.#conditional(leases, owner, (atomic, lease, row) => {
      atomic.set(entryKey(lease.channel, lease.id), { ...row, o: "", u: 0 });
    });
  }

  /**
   * Applies `change` to each entry whose token is still the lease's (and that `owner` still holds), in
   * checked atomic operations; others were replaced by a newer copy or taken over and are left alone.
   */
  async #conditional(
    leases: readonly Lease[],
    owner: string,
    change: (atomic: Deno.AtomicOperation, lease: Lease, row: Row) => ((versionstamp: string) => void) | void,
  ): Promise<void> {
    for (let start = 0; start < leases.length; start += PER_ATOMIC) {
      const group = leases.slice(start, start + PER_ATOMIC);
      for (let attempt = 0; attempt < 5; attempt++) {
        const rows = await getManyChunked<Row>(
          this.#kv,
          group.map((lease) => entryKey(lease.channel, lease.id)),
        );
        const atomic = this.#kv.atomic();
        const done: ((versionstamp: string) => void)[] = [];
        let writes = 0;
        group.forEach((lease, index) => {
          const row = rows[index];
          if (row.value === null) return; // gone: delivered or buried by whoever took it over
          // Replaced or taken over: left alone.
          if (row.versionstamp !== factsOf(lease.token).versionstamp || row.value.o !== owner) return;
          atomic.check(row);
          const after = change(atomic, lease, row.value);
          if (after) done.push(after);
          writes++;
        });
        if (writes === 0) break;
        const result = await retryLocked(() => atomic.commit());
        if (!result.ok) continue; // changed between the read and the commit: read again
        for (const after of done) after(result.versionstamp);
        break;
      }
    }
  }

  async status(): Promise<Map<string, ChannelCounts>> {
    const counts = new Map<string, { pending: number; dead: number; delivered: number }>();
    for await (const row of this.#kv.list<Deno.KvU64>({ prefix: [ROOT, "count"] })) {
      const channel = String(row.key[2]);
      const name = String(row.key[3]) as "pending" | "dead" | "delivered";
      const entry = counts.get(channel) ?? { pending: 0, dead: 0, delivered: 0 };
      entry[name] = row.value instanceof Deno.KvU64 ? Number(BigInt.asIntN(64, row.value.value)) : 0;
      counts.set(channel, entry);
    }
    const status = new Map<string, ChannelCounts>();
    await Promise.all([...counts].map(async ([channel, entry]) => {
      let oldestAt: number | null = null;
      let lastError: string | null = null;
      if (entry.pending > 0) {
        for await (const row of this.#kv.list<Row>({ prefix: [ROOT, "entry", channel] }, { limit: 1 })) {
          oldestAt = row.value.c;
        }
      }
      if (entry.pending > 0 || entry.dead > 0) {
        const error = await this.#kv.get<string>(errorKey(channel));
        lastError = typeof error.value === "string" ? error.value : null;
      }
      status.set(channel, { ...entry, oldestAt, lastError });
    }));
    return status;
  }

  async deadLetters(limit: number): Promise<DeadLetterRecord[]> {
    const letters: DeadLetterRecord[] = [];
    for await (const row of this.#kv.list<DeadRow>({ prefix: [ROOT, "dead"] }, { limit })) {
      const { r, l, n, reason, at } = row.value;
      letters.push({ channel: String(row.key[3]), route: r, label: l, count: n, reason, at });
    }
    return letters;
  }
}

function newRow(entry: NewOutboxEntry, owner: string, until: number, now: number): Row {
  return {
    k: entry.key,
    x: null,
    r: entry.route,
    l: entry.label,
    n: entry.count,
    c: now,
    t: now,
    a: 0,
    f: null,
    fc: 0,
    e: null,
    o: owner,
    u: until,
    p: Math.max(1, Math.ceil(entry.payload.byteLength / PART_BYTES)),
  };
}

/** The writes of a payload's parts. */
function partMutations(channel: string, id: string, row: Row, payload: Uint8Array): Deno.KvMutation[] {
  const mutations: Deno.KvMutation[] = [];
  for (let index = 0; index < row.p; index++) {
    const piece = row.p === 1 ? payload : payload.slice(index * PART_BYTES, (index + 1) * PART_BYTES);
    mutations.push({ type: "set", key: partKey(channel, id, index), value: piece });
  }
  return mutations;
}

/** The payload parts, then the entry (so an entry never exists without its parts), less stale parts. */
function entryMutations(channel: string, id: string, row: Row, payload: Uint8Array, oldParts: number) {
  const mutations = partMutations(channel, id, row, payload);
  for (let index = row.p; index < oldParts; index++) {
    mutations.push({ type: "delete", key: partKey(channel, id, index) });
  }
  mutations.push({ type: "set", key: entryKey(channel, id), value: row });
  return mutations;
}

/**
 * The writes of a put of `row` as entry `id` (its parts too unless `written` before), counted pending: over
 * `waiting` (the copy under the key at `indexKey`) in place when it has the same id, else replacing it.
 */
function putMutations(
  entry: NewOutboxEntry,
  id: string,
  row: Row,
  written: boolean,
  indexKey: Deno.KvKey | null,
  waiting: { id: string; row: Row } | null,
): Deno.KvMutation[] {
  const { channel } = entry;
  const pending = add(channel, "pending", entry.count - (waiting?.row.n ?? 0));
  if (waiting?.id === id) return [...entryMutations(channel, id, row, entry.payload, waiting.row.p), pending];
  const mutations = waiting === null
    ? []
    : removeMutations({ channel, id: waiting.id, token: "" }, { ...waiting.row, x: null });
  if (written) mutations.push({ type: "set", key: entryKey(channel, id), value: row });
  else mutations.push(...entryMutations(channel, id, row, entry.payload, 0));
  if (indexKey !== null) mutations.push({ type: "set", key: indexKey, value: id });
  mutations.push(pending); // last: a plain write too big for one commit lands in order
  return mutations;
}

function removeMutations(lease: Lease, row: Pick<Row, "p" | "x">, keepParts = false): Deno.KvMutation[] {
  const mutations: Deno.KvMutation[] = [{ type: "delete", key: entryKey(lease.channel, lease.id) }];
  if (!keepParts) {
    for (let index = 0; index < row.p; index++) {
      mutations.push({ type: "delete", key: partKey(lease.channel, lease.id, index) });
    }
  }
  if (row.x !== null) mutations.push({ type: "delete", key: [ROOT, "key", lease.channel, row.x] });
  return mutations;
}

/** A lease token: the versionstamp, then the parts, items and index key of the row it was written with. */
function tokenOf(versionstamp: string, row: Row): string {
  return `${versionstamp}/${row.p}/${row.n}/${row.x ?? ""}`;
}

function factsOf(token: string): { versionstamp: string; p: number; n: number; x: string | null } {
  const [versionstamp, p, n] = token.split("/", 3);
  const x = token.slice(versionstamp.length + p.length + n.length + 3);
  return { versionstamp, p: Number(p), n: Number(n), x: x === "" ? null : x };
}

function leasedOf(channel: string, id: string, row: Row, token: string, payload: Uint8Array): LeasedEntry {
  const entry: OutboxEntry = {
    id,
    channel,
    key: row.k,
    route: row.r,
    label: row.l,
    count: row.n,
    createdAt: row.c,
    nextAt: row.t,
    attempts: row.a,
    refusal: row.f,
    refusals: row.fc,
    lastError: row.e,
  };
  return { entry, lease: { channel, id, token }, payload };
}

/**
 * Runs a commit again while SQLite says the file is locked by another connection (processes sharing one
 * store file), for up to about two seconds.
 */
export async function retryLocked<T>(commit: () => Promise<T>): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await commit();
    } catch (error) {
      if (attempt >= 40 || !/locked|busy/i.test(error instanceof Error ? error.message : String(error))) {
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 45));
    }
  }
}

/** Payload parts as one array (a single part as it is). */
export function joinParts(pieces: readonly Uint8Array[]): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const joined = new Uint8Array(pieces.reduce((sum, piece) => sum + piece.byteLength, 0));
  let at = 0;
  for (const piece of pieces) {
    joined.set(piece, at);
    at += piece.byteLength;
  }
  return joined;
}

/** A key as stored: itself (at once), or a digest when it is too long for a Deno.Kv key. */
function storedKey(key: string): string | Promise<string> {
  if (key.length <= MAX_KEY_CHARS) return key;
  return hexDigest("SHA-256", key).then((hex) => "sha256:" + hex);
}
