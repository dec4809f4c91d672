/**
 * Background delivery of the ingest outbox: batching per stream, a short linger for a fuller batch,
 * one request in flight per stream (so a stream arrives in order), backoff on failures, dead letters for
 * refused batches, and waiting for all of it (`flush`, `drain`).
 *
 * @module
 */

import { type RequestPolicy, withDeadline } from "../http/request_policy.ts";
import { IngestApiError, type IngestClient } from "./ingest_client.ts";
import {
  batchBody,
  compareRowKeys,
  type IngestOutbox,
  joinItems,
  type OutboxRow,
  splitItems,
} from "./ingest_outbox.ts";
import type { CommitBatcher } from "../cache/commit_batcher.ts";
import { type StreamId, streamName } from "./streams.ts";

/** How the deliverer batches and retries. */
export interface DelivererSettings {
  /** Most items per request (default 100). */
  readonly batchItems: number;
  /** Most bytes of item text per request (a request holds at least one row, whatever its size). */
  readonly batchBytes: number;
  /** How long a batch that is not full waits for more items (skipped while flushing or draining). */
  readonly lingerMs: number;
  /** First wait after a failed request; doubles per failure in a row. */
  readonly backoffBaseMs: number;
  /** Longest wait between attempts; also the wait after the server refused the token or address. */
  readonly backoffMaxMs: number;
  /** Jitter source in [0, 1): waits are 0.5x to 1.5x. */
  readonly random: () => number;
  /** Timeout per request; its retries are not used (the deliverer keeps its own backoff). */
  readonly policy: RequestPolicy;
  /** Most bytes of item text held in memory; rows beyond it are read back from the store when sent. */
  readonly heldBytes: number;
  /** A warning for a person (stderr). */
  readonly warn: (message: string) => void;
  /** A debug log line. */
  readonly log: (message: string) => void;
}

/** What `flush_data` and `ingest_status` answer. */
export interface IngestCounts {
  /** Items the ingest server accepted, over the life of the store. */
  readonly delivered: number;
  /** Items waiting in the outbox for this process to deliver. */
  readonly pending: number;
  /** Items the ingest server refused, kept as dead letters in the store. */
  readonly dead: number;
}

/**
 * The items of one `store_data` line (or of one line read back from the store): the unit of order.
 * Get one from {@link IngestDeliverer.reserve}.
 */
export interface Slot {
  readonly stream: Stream;
  readonly run: string;
  readonly line: number;
  /** Number for `flush`: slots reserved up to a flush are what it waits for. */
  readonly ord: number;
  /** `waiting` until its rows are committed; only `ready` rows are sent. */
  state: "waiting" | "ready" | "finished";
  rows: OutboxRow[];
  /** Rows handed to a request (in flight or done). */
  sent: number;
  /** Rows whose outcome (delivered or dead) is committed. */
  done: number;
  readyAt: number;
}

interface Stream {
  readonly id: StreamId;
  readonly name: string;
  readonly slots: Slot[];
  head: number;
  inFlight: Promise<void> | null;
  abort: AbortController | null;
  timer: ReturnType<typeof setTimeout> | undefined;
  failures: number;
  holdUntil: number;
  /** Most items per request for now (halved after a 413 answer). */
  maxItems: number;
  /** Outcomes to record, in order; one write per stream at a time keeps rewrites of a row in order. */
  acks: Ack[];
  acking: boolean;
}

interface Ack {
  readonly mutations: Deno.KvMutation[];
  readonly taken: Taken[];
  readonly outcome: "delivered" | "dead";
  readonly items: number;
}

interface FlushWaiter {
  readonly upTo: number;
  remaining: number;
  readonly resolve: () => void;
}

interface Taken {
  readonly slot: Slot;
  readonly rows: OutboxRow[];
}

/**
 * Delivers rows to the ingest server in the background. Rows enter through {@link reserve} /
 * {@link fill} / {@link ready} (a `store_data` line) or {@link adopt} (rows read back from the store);
 * they leave the outbox only when the server answered 2xx, or as dead letters when it refused them.
 */
export class IngestDeliverer {
  readonly #settings: DelivererSettings;
  readonly #streams = new Map<string, Stream>();
  #outbox: IngestOutbox | null = null;
  #writer: CommitBatcher | null = null;
  #client: IngestClient | null = null;
  #delivered = 0;
  #dead = 0;
  #pending = 0;
  #heldBytes = 0;
  #ord = 0;
  #waiters: FlushWaiter[] = [];
  #urgent = 0;
  #stopped = false;
  #lastError: string | null = null;
  readonly #ackWrites = new Set<Promise<void>>();

  /** Creates an idle deliverer; it sends nothing before {@link attach} and {@link setClient}. */
  constructor(settings: DelivererSettings) {
    this.#settings = settings;
  }

  /** Connects the store; `counters` are the persisted totals. */
  attach(outbox: IngestOutbox, writer: CommitBatcher, counters: { delivered: number; dead: number }) {
    this.#outbox = outbox;
    this.#writer = writer;
    this.#delivered = counters.delivered;
    this.#dead = counters.dead;
    this.#pumpAll();
  }

  /** Delivers to `client` from now on (null: hold everything); failed streams try again at once. */
  setClient(client: IngestClient | null): void {
    this.#client = client;
    for (const stream of this.#streams.values()) {
      stream.failures = 0;
      stream.holdUntil = 0;
    }
    this.#lastError = null;
    this.#pumpAll();
  }

  /** The counts right now. */
  get counts(): IngestCounts {
    return { delivered: this.#delivered, pending: this.#pending, dead: this.#dead };
  }

  /** The last delivery error, while items are pending; null once a request succeeds. */
  get lastError(): string | null {
    return this.#pending > 0 ? this.#lastError : null;
  }

  /** Takes the next place in `stream` for a line; later lines of the stream are delivered after it. */
  reserve(id: StreamId, run: string, line: number): Slot {
    const stream = this.#stream(id);
    const slot: Slot = {
      stream,
      run,
      line,
      ord: ++this.#ord,
      state: "waiting",
      rows: [],
      sent: 0,
      done: 0,
      readyAt: 0,
    };
    stream.slots.push(slot);
    return slot;
  }

  /** Gives a reserved slot its rows (being committed); their data is held within the memory budget. */
  fill(slot: Slot, rows: OutboxRow[]): void {
    slot.rows = rows;
    for (const row of rows) {
      this.#pending += row.count;
      this.#hold(row);
    }
  }

  /** The slot's rows are committed: they may be sent. */
  ready(slot: Slot): void {
    if (slot.state !== "waiting") return;
    slot.state = "ready";
    slot.readyAt = Date.now();
    if (slot.rows.length === 0) this.#finish(slot);
    this.#pump(slot.stream);
  }

  /** The slot's line failed (nothing was committed): it is dropped. */
  cancel(slot: Slot): void {
    if (slot.state === "finished") return;
    for (const row of slot.rows) {
      this.#pending -= row.count;
      this.#release(row);
    }
    slot.rows = [];
    this.#finish(slot);
    this.#pump(slot.stream);
  }

  /** Takes on rows read back from the store (an earlier run's), before newer rows not yet sent. */
  adopt(rows: OutboxRow[]): void {
    const sorted = [...rows].sort((a, b) => compareRowKeys(a.key, b.key));
    const touched = new Set<Stream>();
    let current: Slot | null = null;
    for (const row of sorted) {
      const stream = this.#stream(row.key);
      if (
        current === null || current.stream !== stream || current.run !== row.key.run ||
        current.line !== row.key.line
      ) {
        current = {
          stream,
          run: row.key.run,
          line: row.key.line,
          ord: ++this.#ord,
          state: "ready",
          rows: [],
          sent: 0,
          done: 0,
          readyAt: Date.now(),
        };
        insertSlot(stream, current);
        touched.add(stream);
      }
      current.rows.push(row);
      this.#pending += row.count;
      if (row.data !== null) this.#heldBytes += row.bytes;
    }
    for (const stream of touched) this.#pump(stream);
  }

  /** True while rows of `run` are still to be delivered. */
  hasRun(run: string): boolean {
    for (const stream of this.#streams.values()) {
      for (let index = stream.head; index < stream.slots.length; index++) {
        const slot = stream.slots[index];
        if (slot.run === run && slot.state !== "finished" && slot.rows.length > 0) return true;
      }
    }
    return false;
  }

  /** Bytes of item text the memory budget still has room for (rows read back from the store). */
  get freeHeldBytes(): number {
    return Math.max(0, this.#settings.heldBytes - this.#heldBytes);
  }

  /**
   * Resolves once every slot reserved so far is delivered or dead-lettered (and that is committed), or at
   * `deadline` (ms since the epoch), whichever is first. Batches go out without lingering meanwhile.
   */
  async flush(deadline: number): Promise<void> {
    const upTo = this.#ord;
    let remaining = 0;
    for (const stream of this.#streams.values()) {
      for (let index = stream.head; index < stream.slots.length; index++) {
        const slot = stream.slots[index];
        if (slot.ord <= upTo && slot.state !== "finished") remaining++;
      }
    }
    if (remaining === 0) return;
    let resolve = () => {};
    const done = new Promise<void>((wake) => resolve = wake);
    const waiter: FlushWaiter = { upTo, remaining, resolve };
    this.#waiters.push(waiter);
    this.#urgent++;
    this.#pumpAll();
    try {
      await withDeadline(done, deadline);
    } finally {
      this.#urgent--;
      this.#waiters = this.#waiters.filter((other) => other !== waiter);
    }
  }

  /** Stops sending: aborts requests in flight (their rows stay in the outbox) and waits for commits. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const inFlight: Promise<void>[] = [];
    for (const stream of this.#streams.values()) {
      clearTimeout(stream.timer);
      stream.timer = undefined;
      stream.abort?.abort(new DOMException("the client is closing", "AbortError"));
      if (stream.inFlight) inFlight.push(stream.inFlight);
    }
    await Promise.allSettled(inFlight);
    // Outcomes are written one write per stream at a time: wait until none is queued or committing.
    while (this.#ackWrites.size > 0) await Promise.allSettled([...this.#ackWrites]);
  }

  #stream(id: StreamId): Stream {
    const name = streamName(id);
    let stream = this.#streams.get(name);
    if (stream === undefined) {
      stream = {
        id: { dataType: id.dataType, platform: id.platform },
        name,
        slots: [],
        head: 0,
        inFlight: null,
        abort: null,
        timer: undefined,
        failures: 0,
        holdUntil: 0,
        maxItems: Infinity,
        acks: [],
        acking: false,
      };
      this.#streams.set(name, stream);
    }
    return stream;
  }

  #hold(row: OutboxRow): void {
    if (row.data === null) return;
    if (this.#heldBytes + row.bytes > this.#settings.heldBytes) {
      row.data = null; // committed before it is sent: read it back then
      return;
    }
    this.#heldBytes += row.bytes;
  }

  #release(row: OutboxRow): void {
    if (row.data !== null) this.#heldBytes -= row.bytes;
    row.data = null;
  }

  #pumpAll(): void {
    for (const stream of this.#streams.values()) this.#pump(stream);
  }

  #pump(stream: Stream): void {
    if (this.#outbox === null || this.#client === null || this.#stopped || stream.inFlight !== null) return;
    const now = Date.now();
    if (stream.holdUntil > now) {
      this.#wakeAt(stream, stream.holdUntil);
      return;
    }
    const { batchBytes, lingerMs } = this.#settings;
    const batchItems = Math.min(this.#settings.batchItems, stream.maxItems);
    const taken: Taken[] = [];
    let rows = 0;
    let items = 0;
    let bytes = 0;
    let full = false;
    let firstReadyAt = 0;
    const take = (slot: Slot, row: OutboxRow) => {
      const last = taken[taken.length - 1];
      if (last?.slot === slot) last.rows.push(row);
      else taken.push({ slot, rows: [row] });
      if (firstReadyAt === 0) firstReadyAt = slot.readyAt;
      rows++;
      items += row.count;
      bytes += row.bytes;
    };
    collect: for (let index = stream.head; index < stream.slots.length; index++) {
      const slot = stream.slots[index];
      if (slot.state === "finished") continue;
      if (slot.state === "waiting") break;
      for (let r = slot.sent; r < slot.rows.length; r++) {
        const row = slot.rows[r];
        if (rows > 0 && bytes + row.bytes > batchBytes) {
          full = true;
          break collect;
        }
        if (items + row.count > batchItems) {
          // Fill the request up with the first items of the row; the rest goes in the next one.
          const head = this.#split(slot, r, batchItems - items);
          if (head !== null) take(slot, head);
          else if (rows === 0) take(slot, row); // cannot split (not in memory): send it whole
          full = true;
          break collect;
        }
        take(slot, row);
      }
    }
    if (rows === 0) return;
    if (!full && items < batchItems && this.#urgent === 0 && now < firstReadyAt + lingerMs) {
      this.#wakeAt(stream, firstReadyAt + lingerMs);
      return;
    }
    clearTimeout(stream.timer);
    stream.timer = undefined;
    for (const entry of taken) entry.slot.sent += entry.rows.length;
    const abort = new AbortController();
    stream.abort = abort;
    stream.inFlight = this.#send(stream, taken, items, this.#client, abort.signal).finally(() => {
      stream.inFlight = null;
      stream.abort = null;
      this.#pump(stream);
    });
  }

  /**
   * Splits row `index` of `slot` after `count` items into two rows of the slot; returns the first, or
   * null when the row cannot be split (its data is not in memory, or it has no more than `count` items).
   */
  #split(slot: Slot, index: number, count: number): OutboxRow | null {
    const row = slot.rows[index];
    if (count < 1 || row.data === null || row.count <= count) return null;
    const pieces = splitItems(row.data, count);
    if (pieces === null) return null;
    const rest: OutboxRow = {
      key: row.key,
      count: row.count - count,
      parts: 0,
      bytes: pieces[1].byteLength,
      data: pieces[1],
    };
    const head: OutboxRow = {
      key: row.key,
      count,
      parts: 0,
      bytes: pieces[0].byteLength,
      data: pieces[0],
    };
    this.#heldBytes += head.bytes + rest.bytes - row.bytes;
    slot.rows.splice(index, 1, head, rest);
    return head;
  }

  #wakeAt(stream: Stream, at: number): void {
    if (stream.timer !== undefined) return;
    stream.timer = setTimeout(() => {
      stream.timer = undefined;
      this.#pump(stream);
    }, Math.max(0, at - Date.now()));
  }

  async #send(
    stream: Stream,
    taken: Taken[],
    items: number,
    client: IngestClient,
    signal: AbortSignal,
  ): Promise<void> {
    const outbox = this.#outbox!;
    const rows = taken.flatMap((entry) => entry.rows);
    let data: Uint8Array[];
    try {
      data = await Promise.all(rows.map((row) => row.data ?? outbox.readData(row)));
    } catch (error) {
      // A row vanished from the store (another process delivered it): nothing to send for it.
      this.#settings.warn(`ingest: ${describe(error)}; skipping ${stream.name} rows that are gone`);
      this.#complete(taken, "gone", items);
      return;
    }
    const started = performance.now();
    try {
      await client.storeBatch(batchBody(stream.id, data), {
        signal,
        policy: { ...this.#settings.policy, maxRetries: 0 },
      });
    } catch (error) {
      if (signal.aborted) {
        this.#unsend(taken);
        return;
      }
      this.#failed(stream, taken, data, items, error);
      return;
    }
    const ms = Math.round(performance.now() - started);
    this.#settings.log(`ingest: delivered ${items} ${stream.name} items to ${client.origin} in ${ms} ms`);
    stream.failures = 0;
    stream.maxItems = Infinity;
    this.#lastError = null;
    const sent = new Set(rows);
    const mutations = taken.flatMap((entry) =>
      entry.rows.flatMap((row) => this.#removal(entry.slot, row, sent))
    );
    mutations.push(outbox.countMutation("delivered", items));
    this.#record(stream, { mutations, taken, outcome: "delivered", items });
  }

  /**
   * Removes a delivered (or dead) row from the store; for the first piece of a row split between
   * requests, rewrites the stored row to hold the pieces after it (they follow it in the slot). When
   * the next piece went in the same request, that piece's removal says it all: nothing for this one.
   */
  #removal(slot: Slot, row: OutboxRow, sent: Set<OutboxRow>): Deno.KvMutation[] {
    const outbox = this.#outbox!;
    const rest: Uint8Array[] = [];
    let count = 0;
    for (let index = slot.rows.indexOf(row) + 1; index < slot.rows.length; index++) {
      const piece = slot.rows[index];
      if (piece.key !== row.key) break;
      if (sent.has(piece)) return [];
      rest.push(piece.data!); // pieces come from data in memory, and stay there until delivered
      count += piece.count;
    }
    if (rest.length === 0) return outbox.deleteMutations(row);
    return outbox.rowMutations(row.key, joinItems(rest), count);
  }

  #failed(stream: Stream, taken: Taken[], data: Uint8Array[], items: number, error: unknown): void {
    const message = describe(error);
    const failure = error instanceof IngestApiError ? error.failure : "transient";
    if (failure === "rejected" && error instanceof IngestApiError && error.status === 413 && items > 1) {
      stream.maxItems = Math.ceil(items / 2);
      this.#settings.log(`ingest: ${message}; sending ${stream.name} in batches of ${stream.maxItems}`);
      this.#unsend(taken);
      return;
    }
    if (failure === "rejected") {
      const status = error instanceof IngestApiError ? error.status : null;
      this.#settings.warn(
        `ingest: ${message}; ${items} ${stream.name} items were refused and are kept as dead letters in the store`,
      );
      const outbox = this.#outbox!;
      const at = Date.now();
      let index = 0;
      const sent = new Set(taken.flatMap((entry) => entry.rows));
      const mutations = taken.flatMap((entry) =>
        entry.rows.flatMap((row) => [
          ...outbox.deadLetterMutations(row.key, data[index++], row.count, { status, error: message, at }),
          ...this.#removal(entry.slot, row, sent),
        ])
      );
      mutations.push(outbox.countMutation("dead", items));
      this.#record(stream, { mutations, taken, outcome: "dead", items });
      return;
    }
    this.#unsend(taken);
    stream.failures++;
    const { backoffBaseMs, backoffMaxMs, random } = this.#settings;
    let delay = failure === "config"
      ? backoffMaxMs
      : Math.min(backoffMaxMs, backoffBaseMs * 2 ** Math.min(stream.failures - 1, 30)) * (0.5 + random());
    if (error instanceof IngestApiError && error.retryAfterMs !== null) {
      delay = Math.min(Math.max(delay, error.retryAfterMs), backoffMaxMs);
    }
    delay = Math.round(delay);
    stream.holdUntil = Date.now() + delay;
    this.#lastError = message;
    const line =
      `ingest: delivering ${items} ${stream.name} items failed: ${message}; trying again in ${delay} ms`;
    this.#settings.log(line);
    if (stream.failures === 1 || failure === "config") this.#settings.warn(line);
  }

  #unsend(taken: Taken[]): void {
    for (const entry of taken) entry.slot.sent -= entry.rows.length;
  }

  /** Queues an outcome for the store; a stream's outcomes are written one write at a time, in order. */
  #record(stream: Stream, ack: Ack): void {
    stream.acks.push(ack);
    if (!stream.acking) this.#writeAcks(stream);
  }

  #writeAcks(stream: Stream): void {
    const acks = stream.acks;
    stream.acks = [];
    stream.acking = true;
    const settle = (error?: unknown) => {
      for (const ack of acks) {
        if (error !== undefined) {
          this.#settings.warn(
            `ingest: could not record ${ack.items} ${ack.outcome} ${stream.name} items in the store ` +
              `(${describe(error)}); they may be sent again after a restart`,
          );
        }
        this.#complete(ack.taken, ack.outcome, ack.items);
      }
      stream.acking = false;
      if (stream.acks.length > 0) this.#writeAcks(stream);
    };
    const write = this.#writer!.write(acks.flatMap((ack) => ack.mutations)).then(() => settle(), settle);
    this.#ackWrites.add(write);
    write.finally(() => this.#ackWrites.delete(write));
  }

  #complete(taken: Taken[], outcome: "delivered" | "dead" | "gone", items: number): void {
    if (outcome === "delivered") this.#delivered += items;
    else if (outcome === "dead") this.#dead += items;
    this.#pending -= items;
    for (const entry of taken) {
      for (const row of entry.rows) this.#release(row);
      entry.slot.done += entry.rows.length;
      if (entry.slot.done >= entry.slot.rows.length) this.#finish(entry.slot);
    }
  }

  #finish(slot: Slot): void {
    if (slot.state === "finished") return;
    slot.state = "finished";
    const stream = slot.stream;
    while (stream.head < stream.slots.length && stream.slots[stream.head].state === "finished") stream.head++;
    if (stream.head > 1024 && stream.head * 2 > stream.slots.length) {
      stream.slots.splice(0, stream.head);
      stream.head = 0;
    }
    for (const waiter of this.#waiters) {
      if (slot.ord <= waiter.upTo && --waiter.remaining === 0) waiter.resolve();
    }
  }
}

/** Puts an adopted slot before slots of later lines that have not started sending. */
function insertSlot(stream: Stream, slot: Slot): void {
  let index = stream.slots.length;
  while (index > stream.head) {
    const before = stream.slots[index - 1];
    if (before.sent > 0 || before.state === "finished") break;
    if (before.run < slot.run || (before.run === slot.run && before.line < slot.line)) break;
    index--;
  }
  stream.slots.splice(index, 0, slot);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
