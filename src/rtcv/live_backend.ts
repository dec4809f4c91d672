import type { CachedReferences } from "../cache/cached_references.ts";
import { cvChannel, cvCopies, cvDocumentCopies, cvListCopies, cvSender } from "../outbox/cv_channel.ts";
import type { Outbox } from "../outbox/outbox.ts";
import type { NewOutboxEntry } from "../outbox/outbox_store.ts";
import {
  type Cv,
  type CvDocument,
  type LoginUser,
  MirrorCopiesError,
  NoKeyPairError,
  NoListRouteError,
  NoSecretsRouteError,
  type RtcvBackend,
  type SecretSource,
} from "../session/backend.ts";
import { type RtcvApiClient, RtcvApiError } from "./api_client.ts";
import {
  KEY_PAIR_HINT,
  type LoginKeyPair,
  LoginUsersError,
  type LoginUsersRoute,
  readLoginUsers,
} from "./login_users.ts";
import type { SocketGroup } from "./server_requests.ts";

/** What a {@link LiveBackend} is built from (see `connectLive`). */
export interface LiveBackendParts {
  readonly primary: RtcvApiClient;
  /**
   * Clients for outbox deliveries (one request per attempt: the outbox retries): the mirrors, and the primary
   * (it gets what earlier runs left for it while it was a mirror).
   */
  readonly deliveryClients: { readonly mirrors: readonly RtcvApiClient[]; readonly primary: RtcvApiClient };
  readonly references: CachedReferences;
  /** The one outbox of the client. */
  readonly outbox: Outbox;
  /** Told about each primary scanCV outcome (metrics). */
  readonly onPrimaryResult?: (ok: boolean) => void;
  /** The login-users key pair, or null when none is set. */
  readonly keyPair?: LoginKeyPair | null;
  /** What `set_credentials` found out about the primary's scraperUsers route. */
  readonly loginUsersRoute?: LoginUsersRoute;
  /** Warnings for a person (a login user left out). */
  readonly warn?: (message: string) => void;
  /** The websockets to the servers (requests from RT-CV), opened at start and closed at close. */
  readonly sockets?: SocketGroup;
}

/**
 * A primary that has not answered `send_cv` within this many ms has the mirrors' copies committed and sent
 * while it is awaited; before that, they wait for its answer and share one commit with a match's cache entry.
 */
const MIRRORS_AFTER_MS = 10;

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
  readonly #mirrorChannels: string[];
  #primaryFailuresInARow = 0;
  /** Why the primary has no secrets route, once it said so. */
  #noSecretsRoute: string | null = null;

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

  /**
   * Sends the CV to the primary; resolves with its `hasMatches` once the mirrors' copies (whatever it
   * answered) and, for a match, the reference's 72-hour cache entry are committed. A primary answering
   * within {@link MIRRORS_AFTER_MS} has both committed in one commit after its answer; a slower one has the
   * copies committed and sent while it is awaited, and the cache entry after its answer.
   */
  async sendCv(cv: Cv): Promise<boolean> {
    const primary = this.#countPrimary(this.#parts.primary.scanCv(cv));
    let copies: NewOutboxEntry[] = [];
    let early: Promise<void> | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (this.#mirrorChannels.length > 0) {
      // The primary's request goes out in the next microtask (after its in-flight slot): let it, and only
      // then build the mirrors' copies, so their work is not on the answer's path.
      await Promise.resolve();
      copies = cvCopies(this.#mirrorChannels, cv);
      timer = setTimeout(() => {
        early = this.#parts.outbox.enqueue(copies);
        early.catch(() => {}); // awaited once the primary answered
      }, MIRRORS_AFTER_MS);
    }
    const [answer] = await Promise.allSettled([primary]);
    clearTimeout(timer);
    const matched = answer.status === "fulfilled" && answer.value;
    await this.#store(
      copies,
      early,
      matched ? cv.referenceNumber : null,
      "could not store the copies for the mirrors",
    );
    if (answer.status === "rejected") throw answer.reason;
    return matched;
  }

  /**
   * Commits the mirrors' copies with the 72-hour cache entry of `cached` (a match; null: none) in one commit;
   * when `early` is committing the copies already, the entry after them. Throws {@link MirrorCopiesError}
   * (`failure` and why) when the copies were not stored.
   */
  async #store(
    copies: NewOutboxEntry[],
    early: Promise<void> | null,
    cached: string | null,
    failure: string,
  ) {
    const outbox = this.#parts.outbox;
    if (copies.length > 0) {
      try {
        if (early !== null) await early;
        else if (cached === null) await outbox.enqueue(copies);
        else return await this.references.setLongWith(cached, (write) => outbox.enqueue(copies, write));
      } catch (error) {
        throw new MirrorCopiesError(`${failure}: ${describe(error)}`);
      }
    }
    if (cached !== null) await this.references.setLong(cached);
  }

  /** Sends a list to every server (`allCVs`): the primary's answer counts, mirrors get it through the outbox. */
  async sendCvsList(cvs: readonly Cv[]): Promise<void> {
    const { primary } = this.#parts;
    const sent = primary.scanCvList(cvs).catch((error) => {
      if (!(error instanceof RtcvApiError && error.missingRoute)) throw error;
      throw new NoListRouteError(
        `primary ${primary.origin} has no allCVs route (an older RT-CV server; it ` +
          `${error.detail}); send the CVs one by one with send_cv there`,
      );
    });
    await this.#sendAll(sent, cvListCopies(this.#mirrorChannels, cvs));
  }

  /**
   * Sends a CV document to the primary (`scanCVDocument`); only once it accepted it (documents are expensive
   * for a server to read) do the mirrors' copies go into the outbox. Resolves with the primary's
   * `hasMatches` once they are committed, in one commit with a match's 72-hour cache entry.
   */
  async sendCvDocument(document: CvDocument): Promise<boolean> {
    const matched = await this.#countPrimary(
      this.#parts.primary.scanCvDocument(document.cv, document.file, document.contentType),
    );
    await this.#store(
      cvDocumentCopies(this.#mirrorChannels, document),
      null,
      matched ? document.cv.referenceNumber : null,
      "the primary accepted the document, but the copies for the mirrors could not be stored",
    );
    return matched;
  }

  /**
   * Waits for the primary's answer and for the mirrors' copies to be committed to the outbox (before the
   * command answers, whatever the primary answered); the copies are sent at once.
   */
  async #sendAll<T>(primary: Promise<T>, copies: NewOutboxEntry[]): Promise<T> {
    const queued = this.#parts.outbox.enqueue(copies);
    const [sent, stored] = await Promise.allSettled([this.#countPrimary(primary), queued]);
    if (stored.status === "rejected") {
      throw new MirrorCopiesError(`could not store the copies for the mirrors: ${describe(stored.reason)}`);
    }
    if (sent.status === "rejected") throw sent.reason;
    return sent.value;
  }

  /** Follows the primary's outcome (failing state, metrics); its failure names the primary's role. */
  #countPrimary<T>(request: Promise<T>): Promise<T> {
    return request.then(
      (value) => {
        this.#primaryFailuresInARow = 0;
        this.#parts.onPrimaryResult?.(true);
        return value;
      },
      (error) => {
        this.#primaryFailuresInARow++;
        this.#parts.onPrimaryResult?.(false);
        throw primaryFailure(error);
      },
    );
  }

  /** The primary's login users with their passwords opened; needs a key pair. */
  async getLoginUsers(): Promise<LoginUser[]> {
    const { primary, keyPair } = this.#parts;
    if (this.#parts.loginUsersRoute === "missing") {
      throw new LoginUsersError(
        `primary ${primary.origin} has no login-users route (scraperUsers): it is an older RT-CV server; ` +
          "use get_users_secret / get_user_secret there",
      );
    }
    if (!keyPair) {
      throw new NoKeyPairError(`login users need the scraper's key pair: ${KEY_PAIR_HINT}`);
    }
    return await readLoginUsers(primary, keyPair, this.#parts.warn ?? (() => {}));
  }

  /** Why the primary counts as failing (3 or more failed sends in a row), or null while it works. */
  get failing(): string | null {
    return this.#primaryFailuresInARow >= FAILING_AFTER
      ? `primary ${this.primaryOrigin}: ${this.#primaryFailuresInARow} sends failed in a row`
      : null;
  }

  /** Reads a secret from the primary; {@link NoSecretsRouteError} when the primary has no secrets route. */
  async getSecret(key: string, encryptionKey: string): Promise<unknown> {
    // Once the primary said it has no secrets route, it is not asked again (each ask is a 500 in its log).
    if (this.#noSecretsRoute !== null) throw new NoSecretsRouteError(this.#noSecretsRoute);
    try {
      return await this.#parts.primary.getSecret(key, encryptionKey);
    } catch (error) {
      if (error instanceof RtcvApiError && error.missingRoute) {
        this.#noSecretsRoute =
          `primary ${this.#parts.primary.origin} has no secrets route (the newest RT-CV ` +
          `removed it; GET /api/v1/secrets/myKey/... answered ${error.status}); its login users replace the ` +
          "users secrets (get_login_users)";
        throw new NoSecretsRouteError(this.#noSecretsRoute);
      }
      throw primaryFailure(error);
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
    this.#parts.sockets?.start();
  }

  /**
   * Stops delivering to these servers: requests in flight are aborted and their entries freed for the next
   * process (the shared drain at exit happens in the outbox before this).
   */
  async close(_options: { drainMs?: number } = {}): Promise<void> {
    const { mirrors, primary } = this.#parts.deliveryClients;
    await Promise.all([
      ...[...mirrors, primary].map((client) => this.#parts.outbox.unserve(cvChannel(client))),
      this.#parts.sockets?.close(),
    ]);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A failure of the primary, as it is answered: an RT-CV error gets its role (`primary <origin> answered ...`). */
function primaryFailure(error: unknown): Error {
  if (error instanceof RtcvApiError) return error.withRole("primary");
  return error instanceof Error ? error : new Error(String(error));
}
