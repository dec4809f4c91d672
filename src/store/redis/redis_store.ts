/**
 * The fleet's shared store on one Redis server: one connection, one pipeline batcher, and the parts that
 * live there (the reference cache, the dedupe index of job data, the outbox). Opened on first use, closed
 * once at exit.
 *
 * @module
 */

import { RedisOutboxStore } from "../../outbox/redis_outbox_store.ts";
import { RedisBatcher } from "./redis_batcher.ts";
import { RedisConnection, type RedisConnectionOptions } from "./redis_connection.ts";
import { RedisDedupeIndex } from "./redis_dedupe_index.ts";
import { RedisReferenceCache } from "./redis_reference_cache.ts";
import type { RedisAddress } from "./redis_url.ts";

/** An open connection and the batcher every part sends through. */
export interface OpenedRedis {
  readonly connection: RedisConnection;
  readonly batcher: RedisBatcher;
}

/** The Redis store named by `RTCV_SCRAPER_CLIENT_KV=redis://...`; see the module documentation. */
export class RedisStore {
  /** `host:port` of the server (never the password). */
  readonly address: string;
  readonly #redis: RedisAddress;
  readonly #options: RedisConnectionOptions;
  #opening: Promise<OpenedRedis> | null = null;
  #closed = false;

  /** Describes the store; nothing is connected yet. */
  constructor(redis: RedisAddress, options: RedisConnectionOptions) {
    this.#redis = redis;
    this.address = redis.address;
    this.#options = options;
  }

  /** Connects on first call (waiting at most the timeout for the server), or returns the connection. */
  open(): Promise<OpenedRedis> {
    if (this.#closed) return Promise.reject(new Error("the Redis store is closed"));
    if (this.#opening === null) {
      this.#opening = RedisConnection.open(this.#redis, this.#options).then((connection) => ({
        connection,
        batcher: new RedisBatcher(connection),
      }));
      this.#opening.catch(() => {
        this.#opening = null;
      });
    }
    return this.#opening;
  }

  /** The reference cache on this server; `onLookup` counts hits and misses. */
  async references(onLookup?: (hit: boolean) => void): Promise<RedisReferenceCache> {
    const { batcher } = await this.open();
    return new RedisReferenceCache(batcher, onLookup);
  }

  /** The job-data dedupe index on this server. */
  async dedupeIndex(): Promise<RedisDedupeIndex> {
    const { batcher } = await this.open();
    return new RedisDedupeIndex(batcher);
  }

  /** The fleet's one outbox on this server (CV copies for mirrors and job data). */
  async outboxStore(): Promise<RedisOutboxStore> {
    const { connection, batcher } = await this.open();
    return new RedisOutboxStore(connection, batcher);
  }

  /** Waits for the commands in flight, then closes the connection if it was opened. */
  async close(): Promise<void> {
    this.#closed = true;
    const opened = await this.#opening?.catch(() => null);
    if (!opened) return;
    await opened.batcher.drained();
    await opened.connection.close();
  }
}
