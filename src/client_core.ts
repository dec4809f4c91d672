import type { CachedReferences } from "./cache/cached_references.ts";
import { ReferenceCache } from "./cache/reference_cache.ts";
import { LazyStore } from "./cache/lazy_store.ts";
import type { Clock } from "./clock.ts";
import { DEFAULT_MAX_IN_FLIGHT, DEFAULT_OUTBOX_LEASE_MS } from "./config/config.ts";
import { CommandRegistry, defineBareCommand } from "./commands/registry.ts";
import type { ServerCredentials } from "./commands/session_commands.ts";
import type { LoginUser, RtcvBackend } from "./session/backend.ts";
import { MockBackend } from "./session/mock_backend.ts";
import { Session } from "./session/session.ts";
import type { LiveDeps } from "./rtcv/connect_live.ts";
import type { RedisAddress } from "./store/redis/redis_url.ts";
import type { RedisStore } from "./store/redis/redis_store.ts";
import type { Outbox } from "./outbox/outbox.ts";
import type { OutboxStore } from "./outbox/outbox_store.ts";
import type { RetrySettings } from "./outbox/retry_rules.ts";

/** The outbox's settings (from the config); every field defaults to the config's default. */
export interface OutboxSettings {
  /** `RTCV_SCRAPER_CLIENT_OUTBOX_LEASE_MS`. */
  readonly leaseMs?: number;
  /** Requests in flight per server or stream. */
  readonly maxInFlight?: number;
  /** Retry and dead-letter rules. */
  readonly retry?: Partial<RetrySettings>;
  /** Debug log lines of deliveries. */
  readonly log?: (message: string) => void;
  /** Told about every delivery attempt (metrics). */
  readonly onResult?: (channel: string, ok: boolean, items: number) => void;
}

/**
 * The command types whose handlers (and their zod schemas) load with the first of them, so that the ready
 * line and `ping` need none of it: the session, cache, CV and secret commands (a test holds this list to
 * the groups' own). The session-changing ones are exclusive.
 */
export const LAZY_COMMAND_TYPES: readonly string[] = [
  "set_credentials",
  "set_multiple_credentials",
  "set_mock",
  "set_cached_reference",
  "set_short_cached_reference",
  "has_cached_reference",
  "get_cached_reference",
  "send_cv",
  "send_cv_outcome",
  "send_cvs_list",
  "get_secret",
  "get_login_users",
  "get_users_secret",
  "get_user_secret",
  "outbox_status",
  "dead_letters",
];
const EXCLUSIVE_TYPES = ["set_credentials", "set_multiple_credentials", "set_mock"];

/**
 * Builds a live backend for checked credentials (the RT-CV layer); injected so the core stays offline. The
 * core hands it what live mode uses of the core (the persistent reference cache and the outbox), nothing else.
 */
export type LiveConnector = (servers: ServerCredentials[], deps: LiveDeps) => Promise<RtcvBackend>;

/** What the core of the client is built from. */
export interface ClientCoreOptions {
  /** Where the persistent Deno.Kv store lives: a path, `:memory:` or a KV Connect URL. */
  readonly kvLocation: string;
  /**
   * The fleet's Redis server (`RTCV_SCRAPER_CLIENT_KV=redis://...`): the reference cache, the job-data
   * dedupe index and the outbox live there instead of in the Deno.Kv store.
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
  /** How the outbox delivers. */
  readonly outbox?: OutboxSettings;
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
  readonly #outboxSettings: OutboxSettings;
  readonly #warn: (message: string) => void;
  #outbox: Promise<Outbox> | null = null;

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
      // A store that cannot be opened rejects with a StoreError: reported to the scraper, not a crash.
      const { kv, batcher } = await this.store.open();
      return new ReferenceCache(kv, options.clock, { batcher, onLookup: options.onCacheLookup });
    });
    this.registry = new CommandRegistry((type, error) => {
      options.warn(`unexpected error in ${type}: ${error instanceof Error ? error.stack : String(error)}`);
    });
    this.#connectLive = options.connectLive;
    this.#onCacheLookup = options.onCacheLookup;
    this.#outboxSettings = options.outbox ?? {};
    this.#warn = options.warn;
    this.registry
      .registerAll({ ping: defineBareCommand(() => ({ type: "pong" })) })
      .registerLazy(LAZY_COMMAND_TYPES, () => this.#registerCommands(), EXCLUSIVE_TYPES);
  }

  async #registerCommands(): Promise<void> {
    const [session, cache, cv, secret, outbox] = await Promise.all([
      import("./commands/session_commands.ts"),
      import("./commands/cache_commands.ts"),
      import("./commands/cv_commands.ts"),
      import("./commands/secret_commands.ts"),
      import("./commands/outbox_commands.ts"),
    ]);
    this.registry
      .registerAll(session.sessionCommands({
        session: this.session,
        connectLive: (servers) => this.connectLive(servers),
        createMock: (secrets, loginUsers) => this.createMock(secrets, loginUsers),
      }))
      .registerAll(cache.cacheCommands(this.session))
      .registerAll(cv.cvCommands(this.session))
      .registerAll(secret.secretCommands(this.session))
      .registerAll(outbox.outboxCommands(() => this.outbox(), this.clock));
  }

  /** Checks servers and builds a live backend (does not install it). */
  connectLive(servers: ServerCredentials[]): Promise<RtcvBackend> {
    if (this.#connectLive) {
      return this.#connectLive(servers, {
        openReferenceCache: () => this.session.persistentCache(),
        openOutbox: () => this.outbox(),
      });
    }
    return import("./commands/session_commands.ts").then((session) => session.liveModeUnavailable());
  }

  /** Builds the mock backend; its in-memory cache lives as long as the process. */
  async createMock(secrets: Record<string, unknown>, loginUsers: LoginUser[] = []): Promise<RtcvBackend> {
    if (this.#mockCache === null) {
      this.#mockCache = Deno.openKv(":memory:").then((kv) => {
        this.#mockKv = kv;
        return new ReferenceCache(kv, this.clock, { onLookup: this.#onCacheLookup });
      });
    }
    return new MockBackend(await this.#mockCache, secrets, loginUsers);
  }

  /** The one outbox (CV copies and job data), over the store; opened (and loaded) on first use. */
  outbox(): Promise<Outbox> {
    if (this.#outbox === null) {
      const settings = this.#outboxSettings;
      // On a fleet's Redis the outbox is shared there; else it lives in the Deno.Kv store.
      const store: Promise<OutboxStore> = this.redis !== null
        ? this.redis.then((redis) => redis.outboxStore())
        : Promise.all([
          this.store.open(),
          import("./outbox/kv_outbox_store.ts"),
          import("./outbox/kv_legacy_migration.ts"),
        ]).then(async ([{ kv, batcher }, { KvOutboxStore }, legacy]) => {
          const store = new KvOutboxStore(kv, batcher);
          // What an earlier version left waiting moves in before anything is sent or counted.
          const moved = await legacy.migrateLegacyOutbox(kv, store, this.clock.now());
          if (moved.moved + moved.dead > 0) {
            settings.log?.(
              `outbox: moved ${moved.moved} waiting entries and ${moved.dead} dead letters of an earlier version`,
            );
          }
          if (moved.left > 0) {
            this.#warn(
              `outbox: ${moved.left} entries an earlier version left could not move into the outbox now ` +
                "(the store refused them); they are kept, and the next start tries again",
            );
          }
          return store;
        });
      this.#outbox = Promise.all([
        store,
        import("./outbox/outbox.ts"),
        import("./outbox/retry_rules.ts"),
      ]).then(([store, { Outbox }, { DEFAULT_RETRY_SETTINGS }]) =>
        new Outbox({
          store,
          clock: this.clock,
          leaseMs: settings.leaseMs ?? DEFAULT_OUTBOX_LEASE_MS,
          maxInFlight: settings.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
          retry: { ...DEFAULT_RETRY_SETTINGS, ...settings.retry },
          log: settings.log,
          warn: this.#warn,
          onResult: settings.onResult,
        })
      );
      this.#outbox.catch(() => this.#outbox = null);
    }
    return this.#outbox;
  }

  /**
   * Delivers what this process holds in the outbox, every server and stream at once, until `deadline`
   * (clock time), then stops and frees its leases. Without an outbox opened, nothing to do.
   */
  async drainOutbox(deadline: number): Promise<void> {
    const outbox = await this.#outbox?.catch(() => null);
    await outbox?.close(deadline);
  }

  /** Finishes background work, waits for every write, and closes the stores; later calls wait for the first. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.drainOutbox(0);
      await this.session.close();
      await this.store.close();
      await (await this.redis)?.close();
      this.#mockKv?.close();
    })();
    return this.#closing;
  }
}
