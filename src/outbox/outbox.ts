/**
 * The one durable outbox: CV copies for mirrors and job data for the ingest server. Entries are committed
 * to an {@link OutboxStore} before the command that made them answers, leased to this process and sent at
 * once; each entry has its own attempts and backoff ({@link decideRetry}), so one that a server keeps
 * refusing never holds up the others. At most `maxInFlight` requests per channel are in flight, which
 * bounds what a crash can send twice. Leases are renewed while the process lives and released at a clean
 * exit; entries whose lease lapsed (a process that died) are taken over by any process serving the channel.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import type { Lease, LeasedEntry, NewOutboxEntry, OutboxStore } from "./outbox_store.ts";
import { decideRetry, type DeliveryFailure, type RetrySettings } from "./retry_rules.ts";

/** Payload bytes held in memory for sending; entries past it are read back from the store when sent. */
const MAX_HELD_BYTES = 64 * 1024 * 1024;

/** How a channel's entries are delivered (an adapter: CVs to a server, job data to the ingest API). */
export interface ChannelSender {
  /** Sends the entries as one request; rejects on failure (`signal` aborts it at exit). */
  deliver(batch: readonly LeasedEntry[], signal: AbortSignal): Promise<void>;
  /** What a failure of {@link deliver} means for retrying. */
  classify(error: unknown): DeliveryFailure;
  /** Items per request: entries are grouped up to this many (default: one entry per request). */
  readonly batchItems?: number;
  /** How long a request that is not full waits for more entries (default 0). */
  readonly lingerMs?: number;
}

/** What an {@link Outbox} runs with. */
export interface OutboxOptions {
  /** The storage (opened by the caller). */
  readonly store: OutboxStore;
  /** Ages, backoff and leases are measured with it. */
  readonly clock: Clock;
  /** `RTCV_SCRAPER_CLIENT_OUTBOX_LEASE_MS`. */
  readonly leaseMs: number;
  /** Requests in flight per channel. */
  readonly maxInFlight: number;
  /** The retry and dead-letter rules. */
  readonly retry: RetrySettings;
  /** Debug log lines. */
  readonly log?: (message: string) => void;
  /** A warning for a person (stderr): a new dead letter. */
  readonly warn?: (message: string) => void;
  /** Told about every delivery attempt (metrics): channel, ok. */
  readonly onResult?: (channel: string, ok: boolean, items: number) => void;
}

/** One copy of an entry this process holds (queued or in flight), with its current lease. */
interface Holding {
  readonly item: LeasedEntry;
  lease: Lease;
  /** When it was queued (clock time; -Infinity: taken from the store, no lingering). */
  readonly at: number;
  /** The store writes under way on this copy: the next one waits for them (see `#serialized`). */
  writes: Promise<void>;
}

interface Channel {
  readonly name: string;
  sender: ChannelSender;
  queue: Holding[];
  readonly inFlight: Map<Promise<void>, AbortController>;
  timer: ReturnType<typeof setTimeout> | undefined;
  wakeAt: number;
  taking: Promise<void> | null;
  /** A pump is scheduled for the next macrotask (see `#pumpSoon`). */
  soon: boolean;
}

/** The outbox engine over one store; see the module doc. */
export class Outbox {
  /** This process's owner id in leases (random per process). */
  readonly owner = `p-${crypto.randomUUID()}`;
  readonly #options: OutboxOptions;
  readonly #leaseMs: number;
  readonly #maxInFlight: number;
  readonly #channels = new Map<string, Channel>();
  /** The copies this process holds, queued or in flight. */
  readonly #holdings = new Set<Holding>();
  #changed: (() => void)[] = [];
  #urgent = 0;
  #renewal: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #heldBytes = 0;

  /** Creates the engine; nothing is sent until a channel is {@link serve}d. */
  constructor(options: OutboxOptions) {
    this.#options = options;
    this.#leaseMs = options.leaseMs;
    this.#maxInFlight = Math.max(1, options.maxInFlight);
  }

  /** The store behind it (status, dead letters). */
  get store(): OutboxStore {
    return this.#options.store;
  }

  /** Starts (or re-targets) delivery of `channel`'s entries, also those left by earlier runs. */
  serve(channel: string, sender: ChannelSender): void {
    if (this.#closed) return;
    const known = this.#channels.get(channel);
    if (known) {
      known.sender = sender;
      this.#pump(known);
      return;
    }
    const state: Channel = {
      name: channel,
      sender,
      queue: [],
      inFlight: new Map(),
      timer: undefined,
      wakeAt: Infinity,
      taking: null,
      soon: false,
    };
    this.#channels.set(channel, state);
    this.#renewal ??= setInterval(() => this.#renew(), Math.max(50, this.#leaseMs / 3));
    // From the next macrotask, as every pump: the first setImmediate loads its code (~6 ms), here rather
    // than on the answer path of the first send.
    setImmediate(() => this.#take(state));
  }

  /** Stops delivering `channel` (its server is no longer named): aborts requests, frees its leases. */
  async unserve(channel: string): Promise<void> {
    const state = this.#channels.get(channel);
    if (!state) return;
    this.#channels.delete(channel);
    await this.#stopChannel(state);
  }

  /** True while `channel` is served. */
  serves(channel: string): boolean {
    return this.#channels.has(channel);
  }

  /**
   * Commits entries (leased to this process when their channel is served, else free for whoever serves
   * it) and sends them from the next macrotask (after the caller's answer); resolves once they are
   * durable. `alsoCommit` goes to
   * {@link OutboxStore.put} with the entries (store-specific writes that must land with them).
   */
  async enqueue(entries: readonly NewOutboxEntry[], alsoCommit?: unknown): Promise<void> {
    if (entries.length === 0 && alsoCommit === undefined) return;
    const now = this.#options.clock.now();
    // Held in memory up to a budget; past it, entries wait in the store and are taken when there is room.
    let room = MAX_HELD_BYTES - this.#heldBytes;
    const held = (entry: NewOutboxEntry) =>
      this.#channels.has(entry.channel) && (room -= entry.payload.byteLength) >= 0;
    const served = entries.filter(held);
    const others = entries.filter((entry) => !served.includes(entry));
    // `alsoCommit` must not land before any entry: the entries not held are committed first then.
    const free = others.length > 0 ? this.#options.store.put(others, "", 0, now) : null;
    if (free !== null && alsoCommit !== undefined) await free;
    const [leased] = await Promise.all([
      this.#options.store.put(served, this.owner, now + this.#leaseMs, now, alsoCommit),
      free,
    ]);
    for (const item of leased) {
      const state = this.#channels.get(item.entry.channel);
      if (!state || this.#closed) {
        this.#options.store.release([item.lease], this.owner).catch(() => {});
        continue;
      }
      // The same key queued here: the newer copy replaces it (one in flight ends with a stale lease).
      for (const queued of state.queue) {
        if (queued.item.entry.id === item.entry.id) this.#drop(queued);
      }
      state.queue = state.queue.filter((queued) => queued.item.entry.id !== item.entry.id);
      state.queue.push(this.#hold(item, now));
    }
    for (const state of new Set(leased.map((item) => this.#channels.get(item.entry.channel)))) {
      if (state) this.#pumpSoon(state);
    }
  }

  /**
   * Resolves once every entry this process put or took in the channels `accepts` picks is delivered or
   * dead, or at `deadline` (clock time), or when `signal` aborts. Requests do not linger meanwhile.
   */
  async flush(
    accepts: (channel: string) => boolean,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<void> {
    if (signal?.aborted || this.#options.clock.now() >= deadline) return;
    this.#urgent++;
    try {
      // Entries others left (a released or lapsed lease) count too: look for them first.
      const channels = [...this.#channels.values()].filter((state) => accepts(state.name));
      await Promise.all(channels.map((state) => this.#take(state)));
      while (!signal?.aborted && this.#options.clock.now() < deadline) {
        const mine = [...this.#holdings].some((holding) => accepts(holding.item.entry.channel));
        if (!mine) {
          // Entries in backoff, or held by other processes (or one that died), count until they are done.
          let others = 0;
          for (const [channel, counts] of await this.#options.store.status()) {
            if (accepts(channel) && this.#channels.has(channel)) others += counts.pending; // served here only
          }
          if (others === 0) return;
          await Promise.all(channels.map((state) => this.#take(state)));
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(finish, Math.max(0, Math.min(100, deadline - this.#options.clock.now())));
          signal?.addEventListener("abort", finish, { once: true });
          this.#changed.push(finish);
          function finish() {
            clearTimeout(timer);
            signal?.removeEventListener("abort", finish);
            resolve();
          }
        });
      }
    } finally {
      this.#urgent--;
    }
  }

  /**
   * Delivers until everything this process holds is done or `deadline` (clock time), in every channel at
   * once; then stops, aborting requests in flight, and releases its leases (the rest waits in the store).
   */
  async close(deadline: number): Promise<void> {
    if (this.#closed) return;
    await this.flush(() => true, deadline);
    this.#closed = true;
    clearInterval(this.#renewal);
    const channels = [...this.#channels.values()];
    this.#channels.clear();
    await Promise.all(channels.map((state) => this.#stopChannel(state)));
  }

  async #stopChannel(state: Channel): Promise<void> {
    clearTimeout(state.timer);
    state.timer = undefined;
    await state.taking; // a take in progress frees what it got
    for (const abort of state.inFlight.values()) {
      abort.abort(new DOMException("the client is closing", "AbortError"));
    }
    await Promise.allSettled([...state.inFlight.keys()]);
    const holdings = [...this.#holdings].filter((holding) => holding.item.entry.channel === state.name);
    for (const holding of holdings) this.#drop(holding);
    state.queue = [];
    await this.#serialized(
      holdings,
      () => this.#options.store.release(holdings.map((h) => h.lease), this.owner),
    )
      .catch((error) =>
        this.#log(`outbox: could not release ${holdings.length} leases of ${state.name}: ${describe(error)}`)
      );
  }

  #hold(item: LeasedEntry, at: number): Holding {
    const holding: Holding = { item, lease: item.lease, at, writes: Promise.resolve() };
    this.#holdings.add(holding);
    this.#heldBytes += item.payload.byteLength;
    return holding;
  }

  #drop(holding: Holding): void {
    if (this.#holdings.delete(holding)) this.#heldBytes -= holding.item.payload.byteLength;
  }

  /** The copy is done here (delivered, dead, rescheduled, or no longer ours): wake flushes. */
  #settle(holding: Holding): void {
    this.#drop(holding);
    const wake = this.#changed;
    this.#changed = [];
    for (const finish of wake) finish();
  }

  /**
   * Pumps in the next macrotask: the command that put the entries answers first (its answer is written in
   * the microtasks that follow the commit), then the requests are built and sent.
   */
  #pumpSoon(state: Channel): void {
    if (state.soon) return;
    state.soon = true;
    setImmediate(() => {
      state.soon = false;
      this.#pump(state);
    });
  }

  #pump(state: Channel): void {
    if (this.#closed || this.#channels.get(state.name) !== state) return;
    const batchItems = state.sender.batchItems ?? 0;
    const now = this.#options.clock.now();
    while (state.inFlight.size < this.#maxInFlight && state.queue.length > 0) {
      let count = 0;
      let end = 0;
      if (batchItems > 0) {
        while (
          end < state.queue.length && (end === 0 || count + state.queue[end].item.entry.count <= batchItems)
        ) {
          count += state.queue[end++].item.entry.count;
        }
        const lingerUntil = state.queue[0].at + (state.sender.lingerMs ?? 0);
        if (count < batchItems && this.#urgent === 0 && now < lingerUntil) {
          this.#wake(state, lingerUntil);
          break;
        }
      } else {
        end = 1;
      }
      this.#send(state, state.queue.splice(0, end));
    }
    if (state.queue.length === 0 && state.inFlight.size < this.#maxInFlight) this.#wake(state, state.wakeAt);
  }

  /** Looks for due entries in the store at `at` (at once when `at` has passed). */
  #wake(state: Channel, at: number): void {
    const delay = Math.max(
      0,
      Math.min(at, this.#options.clock.now() + this.#rescanMs()) - this.#options.clock.now(),
    );
    clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      if (state.queue.length > 0) this.#pump(state);
      else this.#take(state);
    }, delay);
  }

  /** How often a channel looks for entries freed by others (a lapsed lease, a retry that came due). */
  #rescanMs(): number {
    return Math.min(5000, this.#leaseMs / 2);
  }

  #take(state: Channel): Promise<void> {
    if (state.taking) return state.taking;
    if (this.#closed || this.#channels.get(state.name) !== state) return Promise.resolve();
    const now = this.#options.clock.now();
    const limit = 2 * this.#maxInFlight;
    state.taking = this.#options.store.take(state.name, {
      owner: this.owner,
      now,
      until: now + this.#leaseMs,
      limit,
      skip: new Set([...this.#holdings].map((holding) => holding.item.entry.id)),
    }).then(({ taken, nextCheckAt }) => {
      state.taking = null;
      if (this.#closed || this.#channels.get(state.name) !== state) {
        // Stopped meanwhile: free them now (the stop waits for this, before the store closes).
        return this.#options.store.release(taken.map((item) => item.lease), this.owner).catch(() => {});
      }
      for (const item of taken) state.queue.push(this.#hold(item, -Infinity)); // left over: no lingering
      if (taken.length > 0) this.#log(`outbox: took ${taken.length} waiting entries of ${state.name}`);
      state.wakeAt = taken.length >= limit ? now : nextCheckAt ?? Infinity;
      this.#pump(state);
      return Promise.resolve();
    }, (error) => {
      state.taking = null;
      this.#log(`outbox: could not read the entries of ${state.name}: ${describe(error)}`);
      state.wakeAt = now + this.#options.retry.retryMs;
      this.#pump(state);
    });
    return state.taking;
  }

  #send(state: Channel, batch: Holding[]): void {
    const abort = new AbortController();
    const items = batch.reduce((sum, holding) => sum + holding.item.entry.count, 0);
    const work = (async () => {
      try {
        await state.sender.deliver(batch.map((holding) => holding.item), abort.signal);
      } catch (error) {
        if (abort.signal.aborted) return; // stopping: the leases are released
        this.#options.onResult?.(state.name, false, items);
        await this.#failed(state, batch, state.sender.classify(error));
        return;
      }
      this.#options.onResult?.(state.name, true, items);
      await this.#persist(
        state,
        () => this.#serialized(batch, () => this.#options.store.ack(batch.map((h) => h.lease), this.owner)),
      );
      for (const holding of batch) this.#settle(holding);
      this.#log(`outbox: delivered ${items} item(s) of ${batch.length} entries to ${state.name}`);
    })();
    state.inFlight.set(work, abort);
    work.catch((error) => this.#log(`outbox: delivery to ${state.name} failed: ${describe(error)}`))
      .finally(() => {
        state.inFlight.delete(work);
        this.#pump(state);
      });
  }

  async #failed(state: Channel, batch: Holding[], failure: DeliveryFailure): Promise<void> {
    const now = this.#options.clock.now();
    for (const holding of batch) {
      const item = holding.item;
      const decision = decideRetry(item.entry, failure, now, this.#options.retry);
      const lease = () => holding.lease;
      if ("dead" in decision) {
        await this.#persist(
          state,
          () =>
            this.#serialized(
              [holding],
              () => this.#options.store.bury(lease(), this.owner, decision.dead, now),
            ),
        );
        this.#options.warn?.(
          `outbox: ${state.name} refused ${item.entry.count} item(s) (${item.entry.label}); ` +
            `kept as a dead letter (see dead_letters): ${decision.dead}`,
        );
        this.#settle(holding);
      } else {
        await this.#persist(
          state,
          () =>
            this.#serialized(
              [holding],
              () => this.#options.store.reschedule(lease(), this.owner, decision.retry),
            ),
        );
        this.#log(
          `outbox: delivery of ${item.entry.label} to ${state.name} failed (${failure.message}); ` +
            `again in ${decision.retry.nextAt - now} ms`,
        );
        this.#settle(holding);
        state.wakeAt = Math.min(state.wakeAt, decision.retry.nextAt);
      }
    }
  }

  /** Runs a store write until it succeeds, with the same backoff as deliveries (the lease is renewed meanwhile). */
  async #persist(state: Channel, write: () => Promise<void>): Promise<void> {
    for (let failures = 0;; failures++) {
      try {
        return await write();
      } catch (error) {
        if (this.#closed || this.#channels.get(state.name) !== state) throw error;
        const delay = Math.min(
          this.#options.retry.maxDelayMs,
          this.#options.retry.retryMs * 2 ** Math.min(failures, 20),
        );
        this.#log(
          `outbox: a store write for ${state.name} failed (${describe(error)}); again in ${delay} ms`,
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /**
   * Runs a store write on `holdings` after the writes already under way on them, and reads their leases only
   * then. Every write changes a lease's token: an ack sent with the token of before a renewal that was still
   * being committed would do nothing, and the copy would be sent again once its lease lapsed.
   */
  #serialized<T>(holdings: readonly Holding[], write: () => Promise<T>): Promise<T> {
    const run = Promise.all(holdings.map((holding) => holding.writes)).then(write);
    const settled = run.then(() => {}, () => {});
    for (const holding of holdings) holding.writes = settled;
    return run;
  }

  /** Extends every lease held; a copy whose lease was lost (taken over) is dropped from the queue. */
  #renew(): void {
    const holdings = [...this.#holdings];
    if (holdings.length === 0) return;
    const until = this.#options.clock.now() + this.#leaseMs;
    this.#serialized(holdings, async () => {
      const current = holdings.filter((holding) => this.#holdings.has(holding)); // not done meanwhile
      const renewed = await this.#options.store.renew(
        current.map((holding) => holding.lease),
        this.owner,
        until,
      );
      current.forEach((holding, index) => {
        const next = renewed[index];
        if (next) {
          holding.lease = next;
          return;
        }
        if (!this.#holdings.has(holding)) return; // done meanwhile
        const state = this.#channels.get(holding.item.entry.channel);
        if (state?.queue.includes(holding)) {
          state.queue = state.queue.filter((queued) => queued !== holding);
          this.#settle(holding);
        }
      });
    }).catch((error) => this.#log(`outbox: could not renew leases: ${describe(error)}`));
  }

  #log(message: string): void {
    this.#options.log?.(message);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
