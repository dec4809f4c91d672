/**
 * Test helper for the ingestion sink: a {@linkcode ClientCore} on a Kv file in a temp dir with the sink
 * installed (short linger and backoff), driven by input lines through the registry like the line server
 * does, with every answer, warning and debug log line kept for assertions (and for the token grep).
 *
 * @module
 */

import { join } from "node:path";
import { ClientCore, type OutboxSettings } from "../src/client_core.ts";
import { type Clock, systemClock } from "../src/clock.ts";
import { type InstalledIngest, installIngest } from "../src/ingest/install_ingest.ts";
import type { IngestTuning } from "../src/ingest/ingest_service.ts";
import type { Answer } from "../src/protocol/answers.ts";
import { readCommandLine } from "../src/protocol/command_line.ts";

/** Waits that keep tests fast: 5 ms linger. */
export const FAST_TUNING: Partial<IngestTuning> = {
  lingerMs: 5,
  flushTimeoutMs: 5000,
};

/** Outbox settings that keep tests fast: backoff from 10 ms up to 100 ms, no jitter. */
export const FAST_OUTBOX: OutboxSettings = {
  retry: { retryMs: 10, maxDelayMs: 100, random: () => 0.5 },
};

/** Options of {@linkcode IngestSession.open}. */
export interface IngestSessionOptions {
  /** The store file; default `ingest.kv` in a fresh temp dir. */
  readonly kvPath?: string;
  /** Tuning on top of {@linkcode FAST_TUNING}. */
  readonly tuning?: Partial<IngestTuning>;
  /** The config's ingest server. */
  readonly ingest?: { baseUrl: string; token: string } | null;
  /** Per-attempt request timeout, default 2000 ms. */
  readonly timeoutMs?: number;
  /** The clock of the core (dedupe lifetimes); default the system clock. */
  readonly clock?: Clock;
  /** Outbox settings on top of {@linkcode FAST_OUTBOX}. */
  readonly outbox?: OutboxSettings;
}

/** A client core with the sink, as a scraper session seen from the registry. */
export class IngestSession implements AsyncDisposable {
  readonly core: ClientCore;
  readonly ingest: InstalledIngest;
  readonly kvPath: string;
  /** Warnings (stderr in the program). */
  readonly warnings: string[] = [];
  /** Debug log lines. */
  readonly debugLines: string[] = [];
  /** Every answer, JSON-encoded, in order. */
  readonly answers: string[] = [];
  readonly #tempDir: string | null;
  #closed = false;

  private constructor(kvPath: string, tempDir: string | null, options: IngestSessionOptions) {
    this.kvPath = kvPath;
    this.#tempDir = tempDir;
    const warn = (message: string) => this.warnings.push(message);
    this.core = new ClientCore({
      kvLocation: kvPath,
      clock: options.clock ?? systemClock(),
      warn,
      outbox: { ...FAST_OUTBOX, log: (message) => this.debugLines.push(message), ...options.outbox },
    });
    const core = this.core;
    this.ingest = installIngest({
      openStore: () => core.store.open(),
      openOutbox: () => core.outbox(),
      clock: core.clock,
      // On a fleet's Redis the dedupe index lives there.
      openDedupe: core.redis ? async () => await (await core.redis!).dedupeIndex() : undefined,
    }, {
      timeoutMs: options.timeoutMs ?? 2000,
      ingest: options.ingest ?? null,
      warn,
      debugLog: (message) => this.debugLines.push(message),
      policy: { sleep: () => Promise.resolve(), random: () => 0.5 },
      tuning: { ...FAST_TUNING, ...options.tuning },
    });
    core.registry.registerAll(this.ingest.commands);
  }

  /** Opens a session; without `kvPath`, on a fresh temp dir removed by {@linkcode close}. */
  static async open(options: IngestSessionOptions = {}): Promise<IngestSession> {
    if (options.kvPath !== undefined) return new IngestSession(options.kvPath, null, options);
    const dir = await Deno.makeTempDir({ prefix: "ingest_test_" });
    return new IngestSession(join(dir, "ingest.kv"), dir, options);
  }

  /** Sends one command line and waits for its answer. */
  async send(type: string, content?: unknown): Promise<Answer> {
    return (await this.sendAll([{ type, content }]))[0];
  }

  /** Sends raw lines (strings) or commands as one pipelined burst; resolves with the answers in order. */
  async sendAll(lines: (string | { type: string; content?: unknown })[]): Promise<Answer[]> {
    const pending = lines.map((line) =>
      this.core.registry.dispatch(readCommandLine({
        kind: "text",
        text: typeof line === "string" ? line : JSON.stringify(line),
      }))
    );
    const answers = await Promise.all(pending);
    for (const answer of answers) this.answers.push(JSON.stringify(answer));
    return answers;
  }

  /** Everything the session wrote where a person or a scraper could see it. */
  get transcript(): string {
    return [...this.answers, ...this.warnings, ...this.debugLines].join("\n");
  }

  /** Closes the sink (delivering for at most `drainMs`, default none) and the core. */
  async close(drainMs = 0): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.core.drainOutbox(this.core.clock.now() + drainMs);
    await this.ingest.close();
    await this.core.close();
    if (this.#tempDir !== null) await Deno.remove(this.#tempDir, { recursive: true }).catch(() => {});
  }

  /** Same as {@linkcode close} with no drain. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** `count` job items with ids `<prefix>-<start + i>`, a little Chinese text like the real data. */
export function jobItems(count: number, prefix = "job", start = 0): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, i) => ({
    job_id: `${prefix}-${start + i}`,
    job_name: "高级软件工程师",
    salary: "25-40K",
    city: "上海",
    seq: start + i,
  }));
}
