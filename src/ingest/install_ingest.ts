/**
 * Wires the job-data ingestion sink into a {@linkcode ClientCore}: one call registers its commands,
 * applies the `ingest` section of the config, and returns what the program calls at exit.
 *
 * @module
 */

import type { ClientCore } from "../client_core.ts";
import { defaultRequestPolicy, type RequestPolicy } from "../rtcv/request_policy.ts";
import { checkIngestServer, type IngestServer } from "./ingest_client.ts";
import { ingestCommands } from "./ingest_commands.ts";
import { IngestService, type IngestTuning } from "./ingest_service.ts";

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
  /** Aborted at SIGTERM / SIGINT: `flush_data` stops waiting. */
  readonly stop?: AbortSignal;
  /** Once input has ended, the drain deadline `flush_data` does not outlast; else null. */
  readonly inputEndedAt?: () => number | null;
}

/** What the program keeps from {@linkcode installIngest}. */
export interface InstalledIngest {
  /** The service behind the commands (for metrics, the health endpoint and tests). */
  readonly service: IngestService;
  /**
   * At exit, after `core.drainOutbox()` and before `core.close()`: stops delivering job data; what is left
   * is delivered after the next start.
   */
  close(): Promise<void>;
}

/**
 * Registers `set_ingest`, `store_data`, `flush_data`, `ingest_status`, `next_keyword` and `get_tokens` on
 * `core.registry`. The outbox lives in the shared store (`core.store.open()`), which is opened on the
 * first ingest command, or at once when the config names an ingest server. Call
 * {@linkcode InstalledIngest.close} before `core.close()`: it needs the store open.
 *
 * Throws a `TypeError` naming the field (`ingest.base_url`, `ingest.token`) when the configured server is
 * malformed, before anything is registered: report it like an invalid config (exit code 2).
 *
 * @example
 * ```ts ignore
 * const ingest = installIngest(core, { timeoutMs: config.timeoutMs, ingest: config.ingest, warn });
 * try {
 *   await serveLines(...);
 * } finally {
 *   await ingest.close();
 *   await core.close();
 * }
 * ```
 */
export function installIngest(core: ClientCore, options: InstallIngestOptions): InstalledIngest {
  if (options.ingest !== null) {
    try {
      checkIngestServer(options.ingest);
    } catch (error) {
      throw new TypeError(`ingest.${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const policy: RequestPolicy = { ...defaultRequestPolicy(options.timeoutMs), ...options.policy };
  const service = new IngestService({
    openStore: () => core.store.open(),
    outbox: () => core.outbox(),
    stop: options.stop,
    inputEndedAt: options.inputEndedAt,
    clock: core.clock,
    policy,
    warn: options.warn,
    log: options.debugLog,
    tuning: options.tuning,
    openDedupe: core.redis ? async () => await (await core.redis!).dedupeIndex() : undefined,
  });
  core.registry.registerAll(ingestCommands(service));
  if (options.ingest !== null) {
    service.configure(options.ingest).catch((error) => {
      options.warn(`ingest: ${error instanceof Error ? error.message : String(error)}`);
    });
  }
  return {
    service,
    close: () => service.close(),
  };
}
