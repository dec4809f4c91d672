/**
 * Builds the job-data ingestion sink from what it uses of the client (the store, the one outbox, the
 * clock): one call applies the `ingest` section of the config and returns the sink's command group, for
 * the program to register, and what it calls at exit.
 *
 * @module
 */

import type { OpenedStore } from "../cache/lazy_store.ts";
import type { Clock } from "../clock.ts";
import type { CommandDefinition } from "../commands/registry.ts";
import { defaultRequestPolicy, type RequestPolicy } from "../http/request_policy.ts";
import type { Outbox } from "../outbox/outbox.ts";
import { checkIngestServer, type IngestServer } from "./ingest_client.ts";
import { ingestCommands } from "./ingest_commands.ts";
import { IngestService, type IngestServiceOptions, type IngestTuning } from "./ingest_service.ts";

/** What the sink uses of the rest of the client. */
export interface IngestDeps {
  /** Opens (once) the shared store, for the dedupe index. */
  readonly openStore: () => Promise<OpenedStore>;
  /** Opens (once) the client's one outbox, whose stream channels carry the items. */
  readonly openOutbox: () => Promise<Outbox>;
  /** Decides what has expired (the dedupe index's 72 hours) and the flush deadlines. */
  readonly clock: Clock;
  /** Opens the dedupe index when it lives elsewhere than the store (a fleet's Redis); default: in the store. */
  readonly openDedupe?: IngestServiceOptions["openDedupe"];
}

/** What {@linkcode installIngest} needs. */
export interface InstallIngestOptions {
  /** Per-attempt request timeout (`config.timeoutMs`); also how long `flush_data` waits by default. */
  readonly timeoutMs: number;
  /** The config's `ingest` section (`config.ingest`), or null: then `set_ingest` names the server. */
  readonly ingest: IngestServer | null;
  /** A warning for a person (stderr and the debug log). */
  readonly warn: (message: string) => void;
  /** Debug log lines (deliveries, retries, take-overs). */
  readonly debugLog?: (message: string) => void;
  /** Changes to the request policy (e.g. `onRetry` for the debug log; `sleep`/`random` in tests). */
  readonly policy?: Partial<RequestPolicy>;
  /** Changes to batching, linger and the flush wait; see {@linkcode IngestTuning}. */
  readonly tuning?: Partial<IngestTuning>;
  /** Aborted at SIGTERM / SIGINT or at end of input: `flush_data` stops waiting and answers its counts. */
  readonly stop?: AbortSignal;
}

/** What the program keeps from {@linkcode installIngest}. */
export interface InstalledIngest {
  /** The service behind the commands (for metrics, the health endpoint and tests). */
  readonly service: IngestService;
  /**
   * `set_ingest`, `store_data`, `flush_data`, `ingest_status`, `next_keyword` and `get_tokens`, for
   * `registry.registerAll(installed.commands)`.
   */
  readonly commands: Record<string, CommandDefinition>;
  /**
   * At exit, after `core.drainOutbox()` and before `core.close()`: stops delivering job data; what is left
   * is delivered after the next start.
   */
  close(): Promise<void>;
}

/**
 * Builds the sink and its command group (`set_ingest`, `store_data`, `flush_data`, `ingest_status`,
 * `next_keyword`, `get_tokens`); registering the group is the caller's. The items go to the one outbox
 * and the dedupe index to the shared store, which are opened on the first ingest command, or at once when
 * the config names an ingest server. Call {@linkcode InstalledIngest.close} before the store closes.
 *
 * Throws a `TypeError` naming the field (`ingest.base_url`, `ingest.token`) when the configured server is
 * malformed, before anything is built: report it like an invalid config (exit code 2).
 *
 * @example
 * ```ts ignore
 * const ingest = installIngest(
 *   { openStore: () => core.store.open(), openOutbox: () => core.outbox(), clock: core.clock },
 *   { timeoutMs: config.timeoutMs, ingest: config.ingest, warn },
 * );
 * core.registry.registerAll(ingest.commands);
 * try {
 *   await serveLines(...);
 * } finally {
 *   await ingest.close();
 *   await core.close();
 * }
 * ```
 */
export function installIngest(deps: IngestDeps, options: InstallIngestOptions): InstalledIngest {
  if (options.ingest !== null) {
    try {
      checkIngestServer(options.ingest);
    } catch (error) {
      throw new TypeError(`ingest.${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const policy: RequestPolicy = { ...defaultRequestPolicy(options.timeoutMs), ...options.policy };
  const service = new IngestService({
    openStore: deps.openStore,
    outbox: deps.openOutbox,
    stop: options.stop,
    clock: deps.clock,
    policy,
    warn: options.warn,
    log: options.debugLog,
    tuning: options.tuning,
    openDedupe: deps.openDedupe,
  });
  if (options.ingest !== null) {
    service.configure(options.ingest).catch((error) => {
      options.warn(`ingest: ${error instanceof Error ? error.message : String(error)}`);
    });
  }
  return {
    service,
    commands: ingestCommands(service),
    close: () => service.close(),
  };
}
