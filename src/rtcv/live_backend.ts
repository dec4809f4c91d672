import type { CachedReferences } from "../cache/cached_references.ts";
import { CommandError } from "../commands/command_error.ts";
import type { DurableQueue } from "../outbox/durable_queue.ts";
import type { Cv, RtcvBackend, SecretSource } from "../session/backend.ts";
import { type RtcvApiClient, RtcvApiError } from "./api_client.ts";
import type { MirrorDelivery } from "./mirror_delivery.ts";

/** What a {@link LiveBackend} is built from (see `connectLive`). */
export interface LiveBackendParts {
  readonly primary: RtcvApiClient;
  readonly mirrors: readonly MirrorDelivery[];
  /** Deliveries of outbox entries left by earlier runs for the other servers (the primary's backlog). */
  readonly backlogs: readonly MirrorDelivery[];
  readonly references: CachedReferences;
  readonly outbox: DurableQueue;
  /** How long `close` waits for mirrors to catch up before leaving the rest in the outbox. */
  readonly drainBudgetMs: number;
  /** Told about each primary scanCV outcome (metrics). */
  readonly onPrimaryResult?: (ok: boolean) => void;
}

/** After this many failed sends in a row the primary counts as failing (the health check answers 503). */
const FAILING_AFTER = 3;

/**
 * Live mode: CVs go to every server at once. The primary's answer is the command's answer; mirrors get
 * the CV through a durable outbox, so a slow or dead mirror neither delays nor changes the answer and
 * never loses a CV.
 */
export class LiveBackend implements RtcvBackend {
  /** Always `live`. */
  readonly kind = "live";
  /** The persistent reference cache. */
  readonly references: CachedReferences;
  readonly #parts: LiveBackendParts;
  #primaryFailuresInARow = 0;

  /** Creates the backend over checked servers. */
  constructor(parts: LiveBackendParts) {
    this.#parts = parts;
    this.references = parts.references;
  }

  /** The primary server's origin. */
  get primaryOrigin(): string {
    return this.#parts.primary.origin;
  }

  /** Every server's origin, the primary first. */
  get origins(): string[] {
    return [this.#parts.primary.origin, ...this.#parts.mirrors.map((mirror) => mirror.origin)];
  }

  /** Sends the CV to all servers; resolves with the primary's `hasMatches` once mirrors' copies are durable. */
  async sendCv(cv: Cv): Promise<boolean> {
    const { primary, mirrors, outbox } = this.#parts;
    let queued: Promise<void> = Promise.resolve();
    if (mirrors.length > 0) {
      const payload = JSON.stringify(cv);
      const { entries, committed } = outbox.put(
        mirrors.map((mirror) => ({ channel: mirror.channel, payload })),
      );
      queued = committed;
      mirrors.forEach((mirror, index) => mirror.sendNow(entries[index], cv, committed));
    }
    const answer = primary.scanCv(cv).then(
      (matched) => {
        this.#primaryFailuresInARow = 0;
        this.#parts.onPrimaryResult?.(true);
        return matched;
      },
      (error) => {
        this.#primaryFailuresInARow++;
        this.#parts.onPrimaryResult?.(false);
        throw asCommandError("primary", error);
      },
    );
    const [matched] = await Promise.all([answer, queued]);
    return matched;
  }

  /** Why the primary counts as failing (3 or more failed sends in a row), or null while it works. */
  get failing(): string | null {
    return this.#primaryFailuresInARow >= FAILING_AFTER
      ? `primary ${this.primaryOrigin}: ${this.#primaryFailuresInARow} sends failed in a row`
      : null;
  }

  /** How many CVs wait in the outbox for mirrors (counted once, then followed). */
  outboxSize(): Promise<number> {
    return this.#parts.outbox.size();
  }

  /** Reads a secret from the primary. */
  async getSecret(key: string, encryptionKey: string): Promise<unknown> {
    try {
      return await this.#parts.primary.getSecret(key, encryptionKey);
    } catch (error) {
      throw asCommandError("primary", error);
    }
  }

  /** Names the primary as the secret's source. */
  describeSecretSource(key: string): SecretSource {
    return {
      source: `the secret ${JSON.stringify(key)} from primary ${this.#parts.primary.origin}`,
      hint: "store it in RT-CV in that shape",
    };
  }

  /** Starts delivering what earlier runs left in the outbox, to every server named again. */
  start(): void {
    for (const delivery of [...this.#parts.mirrors, ...this.#parts.backlogs]) delivery.resume();
  }

  /** Gives mirrors a bounded time to catch up; the rest waits in the outbox for the next start. */
  async close(options: { drainMs?: number } = {}): Promise<void> {
    const budget = options.drainMs ?? this.#parts.drainBudgetMs;
    const deliveries = [...this.#parts.mirrors, ...this.#parts.backlogs];
    await Promise.all(deliveries.map((delivery) => delivery.close(budget)));
  }
}

/** Wraps a server failure as the command's error: `primary <origin> answered 400: ...`. */
export function asCommandError(role: string, error: unknown): Error {
  if (error instanceof RtcvApiError) return new CommandError(`${role} ${error.message}`);
  return error instanceof Error ? error : new Error(String(error));
}
