/**
 * Sends the Redis commands issued in one turn of the event loop as one pipeline (a scraper's pipelined
 * lines then cost one round trip per batch, not one per line), in issue order on one connection, so a
 * lookup issued after a write sees it.
 *
 * ioredis has an auto-pipelining mode that does the same; measured here on 100k commands it took ~1.5×
 * the time of explicit pipelines (a promise and a queue entry per command), so the batches are built
 * explicitly.
 *
 * @module
 */

import type { ChainableCommander } from "ioredis";
import type { RedisConnection } from "./redis_connection.ts";

/** The most commands one pipeline carries; a bigger turn is split into several, sent in order. */
const MAX_COMMANDS_PER_PIPELINE = 10_000;

interface QueuedOp {
  readonly add: (pipeline: ChainableCommander) => void;
  readonly count: number;
  readonly resolve: (replies: unknown[]) => void;
  readonly reject: (error: unknown) => void;
}

/** Batches commands into pipelines, one per turn; see the module documentation. */
export class RedisBatcher {
  readonly #connection: RedisConnection;
  #queue: QueuedOp[] = [];
  #scheduled = false;
  readonly #inFlight = new Set<Promise<void>>();

  /** Sends through `connection`. */
  constructor(connection: RedisConnection) {
    this.#connection = connection;
  }

  /**
   * Queues `count` commands added by `add`; resolves with their replies once Redis answered them (an
   * `ok` answered after that means the write is in Redis), or rejects naming the server.
   */
  run(count: number, add: (pipeline: ChainableCommander) => void): Promise<unknown[]> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ add, count, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    });
  }

  /** Resolves once every pipeline sent so far has its answer. */
  async drained(): Promise<void> {
    while (this.#inFlight.size > 0 || this.#scheduled) {
      await Promise.all([...this.#inFlight, Promise.resolve()]);
      await new Promise<void>((resolve) => queueMicrotask(resolve));
    }
  }

  #flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    let start = 0;
    while (start < queue.length) {
      let end = start;
      let commands = 0;
      while (
        end < queue.length && (end === start || commands + queue[end].count <= MAX_COMMANDS_PER_PIPELINE)
      ) {
        commands += queue[end].count;
        end++;
      }
      this.#send(queue.slice(start, end));
      start = end;
    }
  }

  #send(ops: QueuedOp[]): void {
    const sent = this.#connection.pipeline((pipeline) => {
      for (const op of ops) op.add(pipeline);
    }).then(
      (replies) => {
        let offset = 0;
        for (const op of ops) {
          op.resolve(replies.slice(offset, offset + op.count));
          offset += op.count;
        }
      },
      (error) => {
        for (const op of ops) op.reject(error);
      },
    );
    this.#inFlight.add(sent);
    sent.finally(() => this.#inFlight.delete(sent));
  }
}
