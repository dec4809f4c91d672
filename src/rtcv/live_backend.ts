import type { ReferenceCache } from "../cache/reference_cache.ts";
import { CommandError } from "../commands/command_error.ts";
import { cvChannel, cvCopies, cvSender } from "../outbox/cv_channel.ts";
import type { Outbox } from "../outbox/outbox.ts";
import type { Cv, RtcvBackend, SecretSource } from "../session/backend.ts";
import { type RtcvApiClient, RtcvApiError } from "./api_client.ts";

/** What a {@link LiveBackend} is built from (see `connectLive`). */
export interface LiveBackendParts {
  readonly primary: RtcvApiClient;
  /**
   * Clients for outbox deliveries (one request per attempt: the outbox retries), the mirrors first, then the
   * primary (it gets what earlier runs left for it while it was a mirror).
   */
  readonly deliveryClients: { readonly mirrors: readonly RtcvApiClient[]; readonly primary: RtcvApiClient };
  readonly references: ReferenceCache;
  /** The one outbox of the client. */
  readonly outbox: Outbox;
  /** Told about each primary scanCV outcome (metrics). */
  readonly onPrimaryResult?: (ok: boolean) => void;
}

/** After this many failed sends in a row the primary counts as failing (the health check answers 503). */
const FAILING_AFTER = 3;

/**
 * Live mode: CVs go to every server at once. The primary's answer is the command's answer; each mirror
 * gets its copy through the durable outbox (committed before the command answers, whatever the primary
 * answers), so a slow or dead mirror neither delays nor changes the answer and never loses a CV.
 */
export class LiveBackend implements RtcvBackend {
  /** Always `live`. */
  readonly kind = "live";
  /** The persistent reference cache. */
  readonly references: ReferenceCache;
  readonly #parts: LiveBackendParts;
  readonly #mirrorChannels: string[];
  #primaryFailuresInARow = 0;

  /** Creates the backend over checked servers. */
  constructor(parts: LiveBackendParts) {
    this.#parts = parts;
    this.references = parts.references;
    this.#mirrorChannels = parts.deliveryClients.mirrors.map(cvChannel);
  }

  /** The primary server's origin. */
  get primaryOrigin(): string {
    return this.#parts.primary.origin;
  }

  /** Every server's origin, the primary first. */
  get origins(): string[] {
    return [
      this.#parts.primary.origin,
      ...this.#parts.deliveryClients.mirrors.map((mirror) => mirror.origin),
    ];
  }

  /** Sends the CV to all servers; resolves with the primary's `hasMatches` once mirrors' copies are durable. */
  async sendCv(cv: Cv): Promise<boolean> {
    const queued = this.#parts.outbox.enqueue(cvCopies(this.#mirrorChannels, cv));
    const answer = this.#parts.primary.scanCv(cv);
    const [sent, stored] = await Promise.allSettled([answer, queued]);
    if (stored.status === "rejected") {
      throw new CommandError(`could not store the copies for the mirrors: ${describe(stored.reason)}`);
    }
    if (sent.status === "rejected") {
      this.#primaryFailuresInARow++;
      this.#parts.onPrimaryResult?.(false);
      throw asCommandError("primary", sent.reason);
    }
    this.#primaryFailuresInARow = 0;
    this.#parts.onPrimaryResult?.(true);
    return sent.value;
  }

  /** Why the primary counts as failing (3 or more failed sends in a row), or null while it works. */
  get failing(): string | null {
    return this.#primaryFailuresInARow >= FAILING_AFTER
      ? `primary ${this.primaryOrigin}: ${this.#primaryFailuresInARow} sends failed in a row`
      : null;
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

  /** Delivers the outbox entries of every server named, also those earlier runs left. */
  start(): void {
    const { mirrors, primary } = this.#parts.deliveryClients;
    for (const client of [...mirrors, primary]) this.#parts.outbox.serve(cvChannel(client), cvSender(client));
  }

  /**
   * Stops delivering to these servers: requests in flight are aborted and their entries freed for the next
   * process (the shared drain at exit happens in the outbox before this).
   */
  async close(_options: { drainMs?: number } = {}): Promise<void> {
    const { mirrors, primary } = this.#parts.deliveryClients;
    await Promise.all([...mirrors, primary].map((client) => this.#parts.outbox.unserve(cvChannel(client))));
  }
}

/** Wraps a server failure as the command's error: `primary <origin> answered 400: ...`. */
export function asCommandError(role: string, error: unknown): Error {
  if (error instanceof RtcvApiError) return new CommandError(`${role} ${error.message}`);
  return error instanceof Error ? error : new Error(String(error));
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
