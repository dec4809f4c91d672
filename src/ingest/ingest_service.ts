/**
 * The job-data ingestion sink as one service: the configured server, the durable outbox, the 72-hour
 * dedupe index and the background deliverer, behind the operations the commands need.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import { CommandError } from "../commands/command_error.ts";
import { type RequestPolicy, withDeadline } from "../http/request_policy.ts";
import { DedupeIndex, itemId } from "./dedupe_index.ts";
import { type IngestCounts, IngestDeliverer, type Slot } from "./deliverer.ts";
import { IngestApiError, IngestClient, type IngestServer } from "./ingest_client.ts";
import { IngestOutbox, newRunId, type OutboxRow, packRows, partsFor } from "./ingest_outbox.ts";
import type { CommitBatcher } from "../cache/commit_batcher.ts";
import type { OpenedStore } from "../cache/lazy_store.ts";
import type { DataType, Platform, StreamId } from "./streams.ts";

/** The knobs of the sink; tests shorten the waits. */
export interface IngestTuning {
  /** Most items per request to the ingest server. Default 100. */
  readonly batchItems: number;
  /** Most bytes of item text per request (a single bigger row still goes alone). Default 8 MiB. */
  readonly batchBytes: number;
  /** How long a batch that is not full waits for more items. Default 50 ms. */
  readonly lingerMs: number;
  /** First wait after a failed delivery; doubles per failure in a row. Default 500 ms. */
  readonly backoffBaseMs: number;
  /** Longest wait between delivery attempts. Default 30 s. */
  readonly backoffMaxMs: number;
  /** How long `flush_data` waits at most, unless its content says `timeout_ms`. Default: the request timeout. */
  readonly flushTimeoutMs: number;
  /** How long {@link IngestService.close} delivers before leaving the rest for the next start. Default 5 s. */
  readonly drainMs: number;
  /** How long a run's claim lasts without renewal (a crashed process's rows wait this long). Default 2 min. */
  readonly claimTtlMs: number;
  /** How often claims are renewed and abandoned runs looked for. Default 30 s. */
  readonly rescanMs: number;
  /** Most bytes of item text kept in memory; the rest is read back from the store. Default 64 MiB. */
  readonly heldBytes: number;
  /** Jitter source for the backoff, in [0, 1). */
  readonly random: () => number;
}

/** Builds the default tuning for a request timeout. */
export function defaultIngestTuning(timeoutMs: number): IngestTuning {
  return {
    batchItems: 100,
    batchBytes: 8 * 1024 * 1024,
    lingerMs: 50,
    backoffBaseMs: 500,
    backoffMaxMs: 30_000,
    flushTimeoutMs: timeoutMs,
    drainMs: 5000,
    claimTtlMs: 120_000,
    rescanMs: 30_000,
    heldBytes: 64 * 1024 * 1024,
    random: Math.random,
  };
}

/** What an {@link IngestService} is built from. */
export interface IngestServiceOptions {
  /** Opens the shared store and its writer (the client's `core.store.open()`); called on first use. */
  readonly openStore: () => Promise<OpenedStore>;
  /** Decides what has expired in the dedupe index. */
  readonly clock: Clock;
  /** Timeout and retries of `next_keyword` / `get_tokens`; deliveries use its timeout (and their own backoff). */
  readonly policy: RequestPolicy;
  /** A warning for a person (stderr). */
  readonly warn: (message: string) => void;
  /** A debug log line. */
  readonly log?: (message: string) => void;
  /** Overrides of {@link defaultIngestTuning}. */
  readonly tuning?: Partial<IngestTuning>;
}

/** One `store_data` line, validated. */
export interface StoreRequest {
  /** `job` or `company`. */
  readonly dataType: DataType;
  /** `boss`, `qcwy` or `zhilian`. */
  readonly platform: Platform;
  /** The items, JSON objects. */
  readonly items: readonly Record<string, unknown>[];
  /** A field whose value identifies an item; items whose id was stored in the last 72 h are skipped. */
  readonly dedupeKey?: string;
}

/** What `store_data` answers. */
export interface StoreResult {
  /** Items written to the outbox. */
  readonly queued: number;
  /** Items skipped as duplicates. */
  readonly skipped: number;
}

/** `ingest_status` / `flush_data` content: the counts, and the last delivery error while items wait. */
export interface IngestStatus extends IngestCounts {
  /** Why items are still pending (the last failed delivery), when they are. */
  readonly last_error?: string;
}

/** A `store_data` line between its arrival and its commit. */
interface PendingLine {
  readonly stream: StreamId;
  readonly line: number;
  /** Items in the line. */
  readonly total: number;
  /** With a dedupe key: the item texts until the decision, and the items' ids. */
  texts: string[] | null;
  readonly ids: (string | null)[] | null;
  /** Without a dedupe key: the rows, packed on arrival. */
  readonly packed: { count: number; data: Uint8Array }[] | null;
}

interface Started {
  readonly kv: Deno.Kv;
  readonly outbox: IngestOutbox;
  readonly writer: CommitBatcher;
  readonly dedupe: DedupeIndex;
}

const NOT_CONFIGURED = 'no ingest server is set: call set_ingest first (or configure "ingest" in the config)';

/**
 * The ingestion sink. Items are committed to the outbox in the shared store before `store_data` answers
 * and delivered in the background to the server configured at the time of delivery; what is left at
 * exit is delivered after the next start, once an ingest server is configured again. The token is held
 * in memory only.
 *
 * Processes sharing a store each deliver their own rows; rows of a process that is gone (its claim was
 * released at exit, or lapsed after {@link IngestTuning.claimTtlMs}) are taken over by the next process
 * that looks.
 */
export class IngestService {
  readonly #options: IngestServiceOptions;
  readonly #tuning: IngestTuning;
  readonly #deliverer: IngestDeliverer;
  readonly #runId: string;
  readonly #log: (message: string) => void;
  #client: IngestClient | null = null;
  #nextLine = 0;
  #started: Promise<Started> | null = null;
  /** `store_data` lines not yet committed, and `flush_data` waits not yet over. */
  readonly #stores = new Set<Promise<unknown>>();
  readonly #flushes = new Set<Promise<unknown>>();
  readonly #adopted = new Set<string>();
  /** Whether this run's own claim may be in the store (set when its first write is sent). */
  #ownClaimWritten = false;
  /** Until when this run's own claim holds, as last committed (0: not yet). */
  #ownClaimUntil = 0;
  #rescanning: Promise<void> | null = null;
  #tick: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /** Creates the service; nothing is opened or sent until it is used. */
  constructor(options: IngestServiceOptions) {
    this.#options = options;
    this.#tuning = { ...defaultIngestTuning(options.policy.timeoutMs), ...options.tuning };
    this.#log = options.log ?? (() => {});
    this.#runId = newRunId(Date.now());
    this.#deliverer = new IngestDeliverer({
      batchItems: Math.max(1, Math.floor(this.#tuning.batchItems)),
      batchBytes: this.#tuning.batchBytes,
      lingerMs: this.#tuning.lingerMs,
      backoffBaseMs: this.#tuning.backoffBaseMs,
      backoffMaxMs: this.#tuning.backoffMaxMs,
      random: this.#tuning.random,
      policy: options.policy,
      heldBytes: this.#tuning.heldBytes,
      warn: options.warn,
      log: this.#log,
    });
  }

  /** The origin of the configured ingest server, or null. */
  get origin(): string | null {
    return this.#client?.origin ?? null;
  }

  /**
   * Sets the ingest server (replacing an earlier one) at once, and starts delivering to it. Rejects with a
   * `TypeError` naming the field when the address or token is malformed (nothing changes then), with a
   * {@link CommandError} when the store cannot be opened.
   */
  async configure(server: IngestServer): Promise<void> {
    if (this.#closed) throw new CommandError("the ingest sink is closed");
    // Synchronous up to the first await: commands after this call see the new server.
    const client = IngestClient.create(server, this.#options.policy);
    this.#client = client;
    this.#deliverer.setClient(client);
    this.#log(`ingest: delivering to ${client.origin}`);
    await this.#start();
  }

  /**
   * Opens the store, reads the counters and takes over rows that no live process delivers. Called by
   * every operation; only the first call does the work.
   */
  #start(): Promise<Started> {
    if (this.#closed) return Promise.reject(new CommandError("the ingest sink is closed"));
    if (this.#started === null) {
      this.#started = this.#open();
      this.#started.catch(() => {
        this.#started = null; // let a later command try again
      });
    }
    return this.#started;
  }

  async #open(): Promise<Started> {
    let kv: Deno.Kv;
    let writer: CommitBatcher;
    try {
      ({ kv, batcher: writer } = await this.#options.openStore());
    } catch (error) {
      throw new CommandError(`cannot open the store for the ingest outbox: ${describe(error)}`);
    }
    const outbox = new IngestOutbox(kv);
    const started: Started = { kv, outbox, writer, dedupe: new DedupeIndex(kv, this.#options.clock) };
    this.#deliverer.attach(outbox, writer, await outbox.readCounters());
    await this.#rescan(started);
    this.#tick = setInterval(() => this.#onTick(started), this.#tuning.rescanMs);
    return started;
  }

  /** Queues a line's items in the outbox; resolves once they are committed. */
  store(request: StoreRequest): Promise<StoreResult> {
    if (this.#closed) return Promise.reject(new CommandError("the ingest sink is closed"));
    if (this.#client === null) return Promise.reject(new CommandError(NOT_CONFIGURED));
    // The place in the stream is taken now, in input order, before anything is awaited.
    const line = this.#nextLine++;
    const slot = this.#deliverer.reserve(request, this.#runId, line);
    // The items are encoded at once, so their parsed form is not kept alive while the line commits;
    // without a dedupe key they are packed into rows (compact UTF-8) at once too.
    const { items, dedupeKey } = request;
    const stream: StreamId = { dataType: request.dataType, platform: request.platform };
    const texts = items.map((item) => JSON.stringify(item));
    const pending: PendingLine = dedupeKey === undefined
      ? { stream, line, total: texts.length, texts: null, ids: null, packed: this.#pack(texts) }
      : {
        stream,
        line,
        total: texts.length,
        texts,
        ids: items.map((item) => itemId(item, dedupeKey)),
        packed: null,
      };
    return track(this.#stores, this.#store(slot, pending, dedupeKey));
  }

  #pack(texts: string[]): { count: number; data: Uint8Array }[] {
    return packRows(texts, this.#tuning.batchItems);
  }

  async #store(slot: Slot, pending: PendingLine, dedupeKey: string | undefined): Promise<StoreResult> {
    const { stream, line } = pending;
    let settle: ((committed: boolean) => void) | null = null;
    try {
      const { outbox, writer, dedupe } = await this.#start();
      let marks: Deno.KvMutation[] = [];
      let packed = pending.packed;
      if (packed === null) {
        const decision = await dedupe.decide(stream, dedupeKey!, pending.ids!);
        settle = decision.settle;
        marks = decision.marks;
        packed = this.#pack(pending.texts!.filter((_, index) => decision.accepted[index]));
        pending.texts = null;
      }
      const rows: OutboxRow[] = packed.map(({ count, data }, chunk) => ({
        key: { run: this.#runId, dataType: stream.dataType, platform: stream.platform, line, chunk },
        count,
        parts: partsFor(data.byteLength),
        bytes: data.byteLength,
        data,
      }));
      const queued = rows.reduce((sum, row) => sum + row.count, 0);
      const mutations: Deno.KvMutation[] = [];
      // The claim goes first, so rows never exist without it. The tick renews it; a line writes it only
      // when no committed claim has more than half its lifetime left (not on every line: a hot path).
      let claimUntil = 0;
      if (rows.length > 0 && Date.now() > this.#ownClaimUntil - this.#tuning.claimTtlMs / 2) {
        claimUntil = Date.now() + this.#tuning.claimTtlMs;
        mutations.push(outbox.claimMutation(this.#runId, { owner: this.#runId, until: claimUntil }));
        this.#ownClaimWritten = true;
      }
      for (const row of rows) mutations.push(...outbox.rowMutations(row.key, row.data!, row.count));
      mutations.push(...marks); // last: an id is never marked without its item (if the write is split)
      this.#deliverer.fill(slot, rows);
      await writer.write(mutations);
      this.#ownClaimUntil = Math.max(this.#ownClaimUntil, claimUntil);
      settle?.(true);
      this.#deliverer.ready(slot);
      return { queued, skipped: pending.total - queued };
    } catch (error) {
      settle?.(false);
      this.#deliverer.cancel(slot);
      if (error instanceof CommandError) throw error;
      throw new CommandError(`could not write the items to the store: ${describe(error)}`);
    }
  }

  /**
   * Waits until everything queued so far is delivered or dead-lettered, at most `timeoutMs` (default
   * {@link IngestTuning.flushTimeoutMs}), and answers the counts.
   */
  flush(timeoutMs: number = this.#tuning.flushTimeoutMs): Promise<IngestStatus> {
    if (this.#client === null) return Promise.reject(new CommandError(NOT_CONFIGURED));
    return track(this.#flushes, this.#waitDelivered(Date.now() + timeoutMs));
  }

  /** Like {@link flush}, but without a server set it answers at once (used at exit). */
  async #drain(timeoutMs: number): Promise<IngestStatus> {
    if (this.#started === null) return { delivered: 0, pending: 0, dead: 0 };
    if (this.#client === null) return this.status();
    return await this.#waitDelivered(Date.now() + timeoutMs);
  }

  async #waitDelivered(deadline: number): Promise<IngestStatus> {
    const started = await this.#start();
    await withDeadline(Promise.allSettled([...this.#stores]), deadline);
    if (Date.now() < deadline) await withDeadline(this.#rescan(started), deadline);
    await this.#deliverer.flush(deadline);
    return this.#status();
  }

  /**
   * The counts once the `store_data` and `flush_data` commands before this call are done (it does not
   * wait for delivery itself). Opens the store on first use, to read the persisted counters.
   */
  async status(): Promise<IngestStatus> {
    await this.#start();
    await Promise.allSettled([...this.#stores, ...this.#flushes]);
    return this.#status();
  }

  #status(): IngestStatus {
    const counts = this.#deliverer.counts;
    const lastError = this.#deliverer.lastError;
    return lastError === null ? counts : { ...counts, last_error: lastError };
  }

  /** `GET /api/v1/keyword/available`: the server's JSON. */
  nextKeyword(platform?: string): Promise<unknown> {
    return this.#call((client) => client.nextKeyword(platform));
  }

  /** `GET /api/v1/token/tokens`: the server's JSON. */
  getTokens(): Promise<unknown> {
    return this.#call((client) => client.getTokens());
  }

  async #call(request: (client: IngestClient) => Promise<unknown>): Promise<unknown> {
    const client = this.#client;
    if (client === null) throw new CommandError(NOT_CONFIGURED);
    try {
      return await request(client);
    } catch (error) {
      if (error instanceof IngestApiError) throw new CommandError(error.message);
      throw error;
    }
  }

  /**
   * Delivers for at most `drainMs` (default {@link IngestTuning.drainMs}), then stops: what is left stays
   * in the store for the next start. Releases this process's claims so the next start takes the rows at
   * once. The store itself is not closed (it is shared).
   */
  async close(drainMs: number = this.#tuning.drainMs): Promise<void> {
    if (this.#closed) return;
    const starting = this.#started;
    if (starting === null) {
      this.#closed = true;
      return;
    }
    const started = await starting.catch(() => null);
    if (started === null) {
      this.#closed = true;
      return;
    }
    if (drainMs > 0) await this.#drain(drainMs);
    else await Promise.allSettled([...this.#stores]);
    this.#closed = true;
    clearInterval(this.#tick);
    await this.#rescanning?.catch(() => {});
    await this.#deliverer.stop();
    await started.writer.drained();
    const runs = [...this.#adopted];
    if (this.#ownClaimWritten) runs.push(this.#runId);
    await Promise.all(runs.map(async (run) => {
      try {
        if (this.#deliverer.hasRun(run)) await started.outbox.setClaim(run, { owner: "", until: 0 });
        else await started.outbox.dropClaim(run);
      } catch (error) {
        this.#options.warn(`ingest: could not release the outbox rows of run ${run}: ${describe(error)}`);
      }
    }));
  }

  /** Renews claims, lets go of finished adopted runs, and looks for abandoned ones. */
  #onTick(started: Started): void {
    if (this.#closed) return;
    const until = Date.now() + this.#tuning.claimTtlMs;
    const renewals: Promise<void>[] = [];
    if (this.#ownClaimWritten) {
      renewals.push(
        started.outbox.setClaim(this.#runId, { owner: this.#runId, until }).then(() => {
          this.#ownClaimUntil = Math.max(this.#ownClaimUntil, until);
        }),
      );
    }
    for (const run of this.#adopted) {
      if (this.#deliverer.hasRun(run)) {
        renewals.push(started.outbox.setClaim(run, { owner: this.#runId, until }));
      } else {
        this.#adopted.delete(run);
        renewals.push(started.outbox.dropClaim(run));
      }
    }
    Promise.all(renewals)
      .then(() => this.#rescan(started))
      .catch((error) => this.#options.warn(`ingest: could not renew the outbox claims: ${describe(error)}`));
  }

  /** Takes over runs whose claim was released or lapsed, and hands their rows to the deliverer. */
  #rescan(started: Started): Promise<void> {
    if (this.#rescanning === null) {
      this.#rescanning = this.#adoptAbandoned(started).finally(() => this.#rescanning = null);
    }
    return this.#rescanning;
  }

  async #adoptAbandoned(started: Started): Promise<void> {
    const { outbox } = started;
    for (const { run, claim, entry } of await outbox.listClaims()) {
      if (this.#closed) return;
      if (run === this.#runId || this.#adopted.has(run)) continue;
      const now = Date.now();
      if (claim.owner !== "" && claim.until > now) continue; // a live process delivers it
      const mine = { owner: this.#runId, until: now + this.#tuning.claimTtlMs };
      if (!await outbox.takeOver(run, entry, mine)) continue;
      this.#adopted.add(run);
      let budget = this.#deliverer.freeHeldBytes;
      const rows = await outbox.listRows(run, (bytes) => {
        if (bytes > budget) return false;
        budget -= bytes;
        return true;
      });
      if (rows.length === 0) {
        this.#adopted.delete(run);
        await outbox.dropClaim(run);
        continue;
      }
      const items = rows.reduce((sum, row) => sum + row.count, 0);
      this.#log(`ingest: took over ${items} items left in the outbox by run ${run}`);
      this.#deliverer.adopt(rows);
    }
  }
}

/** Keeps `work` in `set` until it settles. */
function track<T>(set: Set<Promise<unknown>>, work: Promise<T>): Promise<T> {
  set.add(work);
  const forget = () => set.delete(work);
  work.then(forget, forget);
  return work;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
