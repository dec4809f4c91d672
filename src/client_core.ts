import type { CachedReferences } from "./cache/cached_references.ts";
import { ReferenceCache } from "./cache/reference_cache.ts";
import { LazyStore } from "./cache/lazy_store.ts";
import { StoreError } from "./cache/kv_store.ts";
import { CommandError } from "./commands/command_error.ts";
import type { Clock } from "./clock.ts";
import { cacheCommands } from "./commands/cache_commands.ts";
import { cvCommands } from "./commands/cv_commands.ts";
import { CommandRegistry } from "./commands/registry.ts";
import { secretCommands } from "./commands/secret_commands.ts";
import { liveModeUnavailable, type ServerCredentials, sessionCommands } from "./commands/session_commands.ts";
import type { RtcvBackend } from "./session/backend.ts";
import { MockBackend } from "./session/mock_backend.ts";
import { Session } from "./session/session.ts";
import type { RedisAddress } from "./store/redis/redis_url.ts";
import type { RedisStore } from "./store/redis/redis_store.ts";

/** Builds a live backend for checked credentials (the RT-CV layer); injected so the core stays offline. */
export type LiveConnector = (servers: ServerCredentials[], core: ClientCore) => Promise<RtcvBackend>;

/** What the core of the client is built from. */
export interface ClientCoreOptions {
  /** Where the persistent Deno.Kv store lives: a path, `:memory:` or a KV Connect URL. */
  readonly kvLocation: string;
  /**
   * The fleet's Redis server (`RTCV_SCRAPER_CLIENT_KV=redis://...`): the reference cache and the job-data
   * dedupe index live there instead of in the Deno.Kv store.
   */
  readonly redis?: RedisAddress;
  /** How long a Redis command may wait for its answer (`RTCV_SCRAPER_CLIENT_TIMEOUT_MS`); default 20 s. */
  readonly timeoutMs?: number;
  /** Decides what has expired. */
  readonly clock: Clock;
  /** Prints a warning for a person (stderr in the program). */
  readonly warn: (message: string) => void;
  /** Connects to live servers; without it, credential lines answer that live mode is unavailable. */
  readonly connectLive?: LiveConnector;
  /** Told about every reference cache lookup (metrics). */
  readonly onCacheLookup?: (hit: boolean) => void;
}

/**
 * The client without its stdio: the command registry, the session state and the store. The line server
 * and replay both drive it, so replayed commands go through the same handlers as live ones.
 */
export class ClientCore {
  /** Routes parsed lines to handlers. */
  readonly registry: CommandRegistry;
  /** Mode, backend and caches of this session. */
  readonly session: Session;
  /** The persistent store (reference cache and outboxes), opened on first use. */
  readonly store: LazyStore;
  /** The clock every lifetime is measured with. */
  readonly clock: Clock;
  /** The fleet's Redis store when `RTCV_SCRAPER_CLIENT_KV` is a Redis URL, else null (opened on first use). */
  readonly redis: Promise<RedisStore> | null;
  readonly #connectLive: LiveConnector | undefined;
  #mockCache: Promise<ReferenceCache> | null = null;
  #mockKv: Deno.Kv | null = null;
  #closing: Promise<void> | null = null;
  readonly #onCacheLookup: ((hit: boolean) => void) | undefined;

  /** Wires the registry, the session and the store. */
  constructor(options: ClientCoreOptions) {
    this.clock = options.clock;
    this.store = new LazyStore(options.kvLocation, { warn: options.warn });
    const redis = options.redis;
    // Loaded only for a Redis store, so the default start-up does not pay for the Redis client.
    this.redis = redis === undefined
      ? null
      : import("./store/redis/redis_store.ts").then(({ RedisStore }) =>
        new RedisStore(redis, { timeoutMs: options.timeoutMs ?? 20_000, warn: options.warn })
      );
    const openRedisCache = async (store: Promise<RedisStore>): Promise<CachedReferences> =>
      await (await store).references(options.onCacheLookup);
    this.session = new Session(async () => {
      if (this.redis !== null) return await openRedisCache(this.redis);
      try {
        const { kv, batcher } = await this.store.open();
        return new ReferenceCache(kv, options.clock, { batcher, onLookup: options.onCacheLookup });
      } catch (error) {
        // A store that cannot be opened is a problem to report to the scraper, not a crash.
        if (error instanceof StoreError) throw new CommandError(error.message);
        throw error;
      }
    });
    this.registry = new CommandRegistry((type, error) => {
      options.warn(`unexpected error in ${type}: ${error instanceof Error ? error.stack : String(error)}`);
    });
    this.#connectLive = options.connectLive;
    this.#onCacheLookup = options.onCacheLookup;
    this.registry
      .registerAll(sessionCommands({
        session: this.session,
        connectLive: (servers) => this.connectLive(servers),
        createMock: (secrets) => this.createMock(secrets),
      }))
      .registerAll(cacheCommands(this.session))
      .registerAll(cvCommands(this.session))
      .registerAll(secretCommands(this.session));
  }

  /** Checks servers and builds a live backend (does not install it). */
  connectLive(servers: ServerCredentials[]): Promise<RtcvBackend> {
    return this.#connectLive ? this.#connectLive(servers, this) : liveModeUnavailable();
  }

  /** Builds the mock backend; its in-memory cache lives as long as the process. */
  async createMock(secrets: Record<string, unknown>): Promise<RtcvBackend> {
    if (this.#mockCache === null) {
      this.#mockCache = Deno.openKv(":memory:").then((kv) => {
        this.#mockKv = kv;
        return new ReferenceCache(kv, this.clock, { onLookup: this.#onCacheLookup });
      });
    }
    return new MockBackend(await this.#mockCache, secrets);
  }

  /** Finishes background work, waits for every write, and closes the stores; later calls wait for the first. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.session.close();
      await this.store.close();
      await (await this.redis)?.close();
      this.#mockKv?.close();
    })();
    return this.#closing;
  }
}
